"""The remote backend against a real OpenAI-compatible server (``transformers serve``) on loopback."""

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from marl.remote import RemotePolicy


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_gives_a_clear_error():
    policy = RemotePolicy(f"http://127.0.0.1:{free_port()}/v1", "any", timeout=2, max_retries=1)
    with pytest.raises(RuntimeError, match="cannot reach the endpoint"):
        policy.generate(["hello"])
    with pytest.raises(TypeError, match="inference only"):
        policy.score(["a"], ["b"])


@pytest.mark.slow
def test_served_smollm2_plays_through_the_policy_interface():
    pytest.importorskip("fastapi")
    from marl.hf import smollm2_path

    model = str(smollm2_path())
    port = free_port()
    cli = Path(sys.executable).with_name("transformers")
    server = subprocess.Popen([str(cli), "serve", model, "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except OSError:
                time.sleep(1)
        policy = RemotePolicy(f"http://127.0.0.1:{port}/v1", model, timeout=120)
        out = policy.generate(["What is 2 + 3? Reply with the number."], max_new_tokens=12, temperature=0)
        assert "5" in out[0].text
    finally:
        server.terminate()
        server.wait(timeout=30)
