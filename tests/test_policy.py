"""The policy interface on the tiny and transformers backends: sampling, scoring, saving, cloning."""

import numpy as np
import pytest
import torch

import arenas
from arenas.play import play_episode
from marl.policy import Policy, ScriptedPolicy, TinyPolicy, load_policy, parse_policy, text_policy

PROMPTS = ["Kuhn poker. Your card: King.\nLegal actions: pass, bet.", "Tic-tac-toe.\nLegal actions: 1, 5, 9."]


@pytest.fixture(scope="module")
def tiny():
    return TinyPolicy.create(seed=0, n_layer=2, n_embd=64, n_head=4, block_size=512)


@pytest.fixture(scope="module")
def hf(tiny_hf_model):
    from marl.hf import HFPolicy

    return HFPolicy.from_pretrained(tiny_hf_model)


@pytest.fixture(params=["tiny", "hf"])
def policy(request, tiny, hf):
    return {"tiny": tiny, "hf": hf}[request.param]


def test_protocol(policy):
    assert isinstance(policy, Policy)


def test_seeded_sampling_is_reproducible(policy):
    a = policy.generate(PROMPTS, max_new_tokens=12, seed=3)
    b = policy.generate(PROMPTS, max_new_tokens=12, seed=3)
    c = policy.generate(PROMPTS, max_new_tokens=12, seed=4)
    assert [x.completion_ids for x in a] == [x.completion_ids for x in b]
    assert [x.completion_ids for x in a] != [x.completion_ids for x in c]


def test_generate_logprobs_equal_score(policy):
    out = policy.generate(PROMPTS, max_new_tokens=12, seed=1)
    with torch.no_grad():
        scored = policy.score([c.prompt_ids for c in out], [c.completion_ids for c in out])
    for c, s in zip(out, scored):
        assert len(c.logprobs) == len(c.completion_ids) == len(s) > 0
        np.testing.assert_allclose(c.logprobs, s.numpy(), atol=2e-4)


def test_a_prompt_longer_than_the_tiny_window_scores_as_it_was_sampled():
    """Training must see the positions sampling saw: the returned prompt ids are the window kept."""
    small = TinyPolicy.create(seed=0, n_layer=1, n_embd=32, n_head=2, block_size=64)
    long_prompts = ["x" * 200 + PROMPTS[0], "y" * 90 + PROMPTS[1]]
    out = small.generate(long_prompts, max_new_tokens=20, seed=2)
    assert all(len(c.prompt_ids) == 64 - 20 for c in out)
    with torch.no_grad():
        scored = small.score([c.prompt_ids for c in out], [c.completion_ids for c in out])
    for c, s in zip(out, scored):
        np.testing.assert_allclose(c.logprobs, s.numpy(), atol=2e-4)


def test_a_tiny_policy_with_a_window_reads_the_same_tokens_whatever_the_answer_budget(tmp_path):
    """Positions are absolute: a warm-started model must see its prompt at the positions it learned."""
    small = TinyPolicy(TinyPolicy.create(seed=0, n_layer=1, n_embd=32, n_head=2, block_size=64).model, window=40)
    prompt = ["z" * 100 + PROMPTS[0]]
    a = small.generate(prompt, max_new_tokens=8, seed=5)[0]
    b = small.generate(prompt, max_new_tokens=32, seed=5)[0]  # asks for more than the block leaves: gets 24
    assert len(a.prompt_ids) == len(b.prompt_ids) == 40 and len(b.completion_ids) <= 24
    assert b.completion_ids[:len(a.completion_ids)] == a.completion_ids  # the same window, the same first tokens
    with torch.no_grad():  # a text prompt is scored in the same window
        np.testing.assert_allclose(small.score(prompt, [b.completion_ids])[0].numpy(), b.logprobs, atol=2e-4)
    reloaded = load_policy(str(small.save(tmp_path / "p")))
    assert reloaded.window == 40 and reloaded.clone().window == 40


def test_score_text_ranks_legal_actions_and_has_gradients(policy):
    model = policy.model
    lp = policy.score([PROMPTS[0]] * 2, ["<answer>pass</answer>", "<answer>bet</answer>"])
    total = torch.stack([x.sum() for x in lp])
    assert torch.isfinite(total).all() and (total < 0).all()
    total.sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    model.zero_grad()


def test_save_load_round_trip_and_clone(policy, tmp_path):
    policy.save(tmp_path / "p")
    loaded = load_policy(str(tmp_path / "p"))
    frozen = policy.clone()
    with torch.no_grad():
        want = policy.score(PROMPTS, ["<answer>bet</answer>"] * 2)
        for other in (loaded, frozen):
            got = other.score(PROMPTS, ["<answer>bet</answer>"] * 2)
            for w, g in zip(want, got):
                torch.testing.assert_close(w, g)
    assert not any(p.requires_grad for p in frozen.model.parameters())


def test_stop_strings_cut_completions(tiny):
    out = tiny.generate(PROMPTS, max_new_tokens=40, seed=0, stop=("e",))
    for c in out:
        assert c.text.count("e") <= 1 and (c.text.endswith("e") or "e" not in c.text)
        assert len(c.completion_ids) == len(c.logprobs)
        assert bytes(i for i in c.completion_ids if i < 256).count(b"e") <= 1


def test_hf_stop_strings_cut_completions(hf):
    free = hf.generate(PROMPTS, max_new_tokens=24, seed=0)
    stop = free[0].text.strip()[:2] or "e"  # a string the unconstrained sample contains
    cut = hf.generate(PROMPTS, max_new_tokens=24, seed=0, stop=(stop,))
    assert stop in cut[0].text  # the same draws until the stop string completes
    for c in cut:
        assert len(c.completion_ids) == len(c.logprobs)
        if stop in c.text:
            assert c.text.count(stop) == 1 and c.text.endswith(stop)
            assert stop not in hf.tokenizer.decode(c.completion_ids[:-1], skip_special_tokens=True)


def test_hf_group_shares_its_prompt_and_matches_rows_scored_alone(hf):
    """A MAGRPO batch repeats each prompt G times: one prefill serves the group, with the same samples'
    log-probabilities, scores and gradients as rows handled one by one."""
    prompts = [PROMPTS[0], PROMPTS[1], PROMPTS[0], PROMPTS[0], PROMPTS[1]]
    out = hf.generate(prompts, max_new_tokens=10, seed=5)
    assert [c.completion_ids for c in out] == [c.completion_ids for c in hf.generate(prompts, max_new_tokens=10, seed=5)]
    assert len({tuple(c.completion_ids) for c in out}) > 1  # the group's rows are sampled independently
    p_ids, c_ids = [c.prompt_ids for c in out], [c.completion_ids for c in out]
    params = [q for q in hf.model.parameters() if q.requires_grad]
    hf.model.zero_grad()
    together = hf.score(p_ids, c_ids)
    torch.stack([x.sum() for x in together]).sum().backward()
    grads = [q.grad.clone() for q in params]
    hf.model.zero_grad()
    alone = [hf.score([p], [c])[0] for p, c in zip(p_ids, c_ids)]
    torch.stack([x.sum() for x in alone]).sum().backward()
    for c, t, a in zip(out, together, alone):
        np.testing.assert_allclose(c.logprobs, t.detach().numpy(), atol=2e-4)
        torch.testing.assert_close(t, a, atol=2e-4, rtol=1e-4)
    for g, q in zip(grads, params):
        torch.testing.assert_close(g, q.grad, atol=1e-4, rtol=1e-3)
    hf.model.zero_grad()
    empty = hf.score(p_ids[:2], [[], c_ids[1]])  # an empty completion scores to an empty tensor
    assert empty[0].numel() == 0 and len(empty[1]) == len(c_ids[1])


def test_token_logprobs_equal_log_softmax_with_gradients(monkeypatch):
    from marl.hf import _TokenLogProb, token_logprobs

    monkeypatch.setattr(_TokenLogProb, "BLOCK_ELEMENTS", 40)  # several row blocks of a 13-wide vocabulary
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 13, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 13, (3, 5))
    want = torch.log_softmax(logits, -1).gather(-1, targets[..., None]).squeeze(-1)
    torch.testing.assert_close(token_logprobs(logits, targets), want)
    assert torch.autograd.gradcheck(lambda x: token_logprobs(x, targets), (logits,))


def test_scripted_backend_and_names():
    p = load_policy("heuristic", arena="kuhn_poker_v0")
    assert isinstance(p, ScriptedPolicy)
    env = arenas.make("tictactoe_v0")
    env.reset(seed=0)
    obs, _, _, _, info = env.last()
    ttt = load_policy("heuristic", arena="tictactoe_v0")
    assert ttt.generate([obs["text"]], infos=[info], seed=0)[0].text == "5"  # the centre first
    with pytest.raises(TypeError, match="no log-probabilities"):
        ttt.score(["x"], ["y"])
    with pytest.raises(ValueError, match="unknown policy"):
        parse_policy("gpt-17")
    assert parse_policy("remote:smol@http://127.0.0.1:8000/v1").base_url == "http://127.0.0.1:8000/v1"


def test_language_model_plays_through_the_text_interface(tiny):
    env = arenas.make("kuhn_poker_v0", invalid_action="fallback")
    act = text_policy(tiny, max_new_tokens=8)
    ep = play_episode(env, {"player_0": act, "player_1": arenas.random_policy}, seed=0)
    assert ep.steps[0].agent == "player_0" and isinstance(ep.steps[0].raw_action, str)
    assert sum(ep.returns.values()) == 0


def test_policy_mapping_shared_and_separate():
    from marl.policy import PolicyMapping

    agents = ["speaker", "listener"]
    shared = PolicyMapping(policies={"p": {"gpt": {"n_layer": 1, "n_embd": 32, "n_head": 2}}}).build(agents)
    assert shared["speaker"] is shared["listener"]
    separate = PolicyMapping(policies={"s": {"gpt": {"n_layer": 1, "n_embd": 32, "n_head": 2}, "seed": 1},
                                       "l": {"gpt": {"n_layer": 1, "n_embd": 32, "n_head": 2}, "seed": 2}},
                             mapping={"speaker": "s", "listener": "l"}).build(agents)
    assert separate["speaker"] is not separate["listener"]
    assert not torch.equal(separate["speaker"].model.wte.weight, separate["listener"].model.wte.weight)
    with pytest.raises(ValueError, match="unknown policy id"):
        PolicyMapping(mapping={"speaker": "nope"}).build(agents)
    with pytest.raises(ValueError, match="unknown agent"):
        PolicyMapping(mapping={"narrator": "shared"}).build(agents)


def test_hf_lora_trains_only_adapters(tiny_hf_model):
    from marl.hf import HFPolicy

    p = HFPolicy.from_pretrained(tiny_hf_model, lora={"r": 4, "lora_alpha": 8})
    trainable = [n for n, q in p.model.named_parameters() if q.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    loss = -p.score(PROMPTS[:1], ["<answer>bet</answer>"])[0].sum()
    loss.backward()
    assert all(q.grad is not None for n, q in p.model.named_parameters() if q.requires_grad)


@pytest.mark.parametrize("lora", [None, {"r": 4, "lora_alpha": 8}])
def test_hf_passes_its_kv_cache_by_the_name_the_model_takes(tiny_hf_model, lora):
    """transformers 5 renamed forward's ``past_key_values`` to ``cache``: the old name warns, and goes in 5.40."""
    import warnings

    from marl.hf import HFPolicy

    p = HFPolicy.from_pretrained(tiny_hf_model, lora=lora)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        out = p.generate(PROMPTS, max_new_tokens=6, seed=0)
        scored = p.score(PROMPTS, [c.completion_ids for c in out])
    assert [len(s) for s in scored] == [len(c.completion_ids) for c in out]
