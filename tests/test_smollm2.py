"""The real SmolLM2-135M-Instruct (marked slow: the first run converts the packaged GGUF, about 30 s)."""

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smol():
    pytest.importorskip("gguf")
    from marl.policy import load_policy

    return load_policy("smollm2")


def test_smollm2_answers_a_chat_question(smol):
    out = smol.generate(["What is 2 + 3?"], max_new_tokens=12, temperature=0)
    assert "5" in out[0].text


def test_smollm2_generate_matches_score(smol):
    out = smol.generate(["Say hello.", "Name a colour."], max_new_tokens=8, seed=0)
    with torch.no_grad():
        scored = smol.score([c.prompt_ids for c in out], [c.completion_ids for c in out])
    for c, s in zip(out, scored):
        np.testing.assert_allclose(c.logprobs, s.numpy(), atol=1e-3)


def test_smollm2_cache_reloads_fast(smol):
    import time

    from marl.hf import HFPolicy, smollm2_path

    start = time.perf_counter()
    HFPolicy.from_pretrained(smollm2_path())
    assert time.perf_counter() - start < 20
