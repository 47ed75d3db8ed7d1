"""``agora play`` and ``agora arenas`` with adapted games and coop_code_v0: scripted, remote (a stand-in
OpenAI-compatible server on loopback) and SmolLM2 (slow) players, transcripts written."""

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from league.cli import main

pytest.importorskip("textarena")

KEYS = {"episode", "step", "agent", "observation", "raw_action", "parsed_action", "valid", "rewards",
        "messages_sent", "messages_delivered", "private"}


def said(capsys, stream="err"):
    """What the command printed, with rich's line wrapping undone."""
    return " ".join(getattr(capsys.readouterr(), stream).split())


def rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_play_textarena_with_random_policies_writes_the_default_transcript(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["play", "textarena:TicTacToe-v0", "--policy", "random", "--policy", "random", "--episodes", "3",
                 "--seed", "1"]) == 0
    path = tmp_path / "transcripts" / "textarena_TicTacToe-v0.jsonl"
    lines = rows(path)
    assert {r["episode"] for r in lines} == {0, 1, 2} and all(set(r) == KEYS for r in lines)
    assert all(r["valid"] for r in lines)  # random picks among the moves the game lists
    assert lines[0]["agent"] == "player_0" and "TextArena game TicTacToe-v0" in lines[0]["observation"]
    assert re.fullmatch(r"\[\d\]", lines[0]["raw_action"]) and lines[0]["parsed_action"] == lines[0]["raw_action"]
    last = [r for r in lines if r["episode"] == 0][-1]
    assert sorted(last["rewards"].values()) in ([-1.0, 1.0], [0.0, 0.0])  # TextArena's final rewards
    assert "mean return" in capsys.readouterr().out


def test_play_openspiel_and_coop_code(tmp_path):
    out = tmp_path / "kuhn.jsonl"
    assert main(["play", "openspiel:kuhn_poker", "--policy", "random", "--episodes", "4", "--out", str(out)]) == 0
    lines = rows(out)
    assert {r["parsed_action"] for r in lines} <= {"Pass", "Bet"} and "OpenSpiel game Kuhn Poker" in lines[0]["observation"]
    out = tmp_path / "code.jsonl"
    assert main(["play", "coop_code_v0", "--policy", "heuristic", "--episodes", "2", "--out", str(out)]) == 0
    lines = rows(out)
    assert [r["agent"] for r in lines] == ["helper", "main"] * 2
    assert all(r["rewards"] == {"helper": 4.0, "main": 4.0} for r in lines if r["agent"] == "main")


def test_unsupported_and_listed(capsys):
    assert main(["play", "textarena:Debate-v0"]) == 2
    assert "LLM reached over the network" in said(capsys)
    assert main(["play", "openspiel:goofspiel"]) == 2
    assert "simultaneous-move" in said(capsys)
    assert main(["play", "textarena:NoSuchGame-v0"]) == 2
    assert "TextArena has no game" in said(capsys)
    assert main(["arenas"]) == 0
    out = said(capsys, "out")
    assert "textarena:TicTacToe-v0" in out and "openspiel:kuhn_poker" in out and "coop_cod" in out  # names are cut to the width
    assert main(["arenas", "--adapter", "textarena"]) == 0
    assert "textarena:TicTacToe-v0" in said(capsys, "out")
    assert main(["arenas", "--adapter", "nope"]) == 2
    assert "unknown adapter" in said(capsys)


class FakeChat(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat endpoint that plays the first move the prompt lists, inside answer tags."""

    prompts: list[str] = []

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][-1]["content"]
        FakeChat.prompts.append(prompt)
        listed = re.search(r"Moves the game lists: (.*?)\.", prompt)
        move = listed.group(1).split(", ")[0] if listed else "[0]"
        reply = {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                 "choices": [{"index": 0, "finish_reason": "stop",
                              "message": {"role": "assistant", "content": f"I will play {move}. <answer>{move}"}}],
                 "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_a_remote_agent_plays_a_textarena_game(tmp_path):
    pytest.importorskip("openai")
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeChat)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        out = tmp_path / "remote.jsonl"
        assert main(["play", "textarena:TicTacToe-v0", "--policy", f"remote:stand-in@{url}", "--policy", "random",
                     "--episodes", "2", "--out", str(out)]) == 0
    finally:
        server.shutdown()
    lines = rows(out)
    remote = [r for r in lines if r["agent"] == "player_0"]
    assert remote and all(r["valid"] for r in remote)
    assert all(r["raw_action"].endswith("</answer>") for r in remote)  # the stop string the server dropped is restored
    assert len(FakeChat.prompts) == len(remote) and "It is your turn" in FakeChat.prompts[0]


@pytest.mark.slow
def test_smollm2_plays_a_textarena_game(tmp_path):
    pytest.importorskip("gguf")
    out = tmp_path / "smol.jsonl"
    assert main(["play", "textarena:TicTacToe-v0", "--policy", "smollm2", "--policy", "random", "--episodes", "1",
                 "--out", str(out)]) == 0
    lines = rows(out)
    assert lines and {r["agent"] for r in lines} <= {"player_0", "player_1"}
    assert any(r["agent"] == "player_0" for r in lines)
