import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from marl.tiny_gpt import (BOS, EOS, GPT, PAD, ByteTokenizer, GPTConfig, Sample, generate, load, save,
                           score)

TINY = GPTConfig(n_layer=2, n_head=2, n_embd=64, block_size=128)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models gain nothing from intra-op threads, and OpenMP spin-waits make them many
    times slower when other processes share the cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(params=[False, True], ids=["learned-positions", "rotary-positions"])
def model(request):
    """Every property below holds for both position schemes."""
    torch.manual_seed(0)
    return GPT(GPTConfig(**{**TINY.to_dict(), "rope": request.param})).eval()


PROMPTS = [[BOS, 72, 105], [BOS] + list(range(40, 60)), [BOS, 1, 2, 3, 4, 5, 6, 7]]


@settings(max_examples=50, deadline=None, database=None)
@given(st.text())
def test_tokenizer_round_trip(text):
    tok = ByteTokenizer()
    ids = tok.encode(text, bos=True)
    assert ids[0] == BOS and all(0 <= i < tok.vocab_size for i in ids)
    assert tok.decode(ids) == text


def test_tokenizer_basics():
    tok = ByteTokenizer()
    assert tok.vocab_size == 259 == GPTConfig().vocab_size
    assert tok.encode("é") == [0xC3, 0xA9]
    assert tok.decode([BOS, 0xC3, 0xA9, EOS, PAD]) == "é"
    assert tok.decode([0xC3]) == "\ufffd"  # broken UTF-8 does not raise


def test_config_round_trip():
    cfg = GPTConfig(n_layer=3, dropout=0.1, bias=True)
    assert GPTConfig.from_dict(cfg.to_dict()) == cfg


def test_left_padding_matches_unpadded(model):
    short = torch.tensor([[BOS, 10, 20, 30, 40]])
    alone = model(short)
    pad = 7
    padded = torch.cat([torch.full((1, pad), PAD), short], 1)
    mask = torch.cat([torch.zeros(1, pad), torch.ones(1, 5)], 1).long()
    out = model(padded, attention_mask=mask)
    assert torch.isfinite(out).all()  # fully masked pad rows must not produce NaN
    torch.testing.assert_close(out[:, pad:], alone, atol=1e-5, rtol=0)
    # and inside a batch next to a longer unpadded row
    other = torch.arange(1, 13)[None]
    batch = torch.cat([torch.cat([torch.full((1, 7), PAD), short], 1), other], 0)
    mask = torch.stack([torch.cat([torch.zeros(7), torch.ones(5)]), torch.ones(12)]).long()
    out = model(batch, attention_mask=mask)
    torch.testing.assert_close(out[0:1, 7:], alone, atol=1e-5, rtol=0)
    torch.testing.assert_close(out[1:2], model(other), atol=1e-5, rtol=0)


def test_left_padding_with_math_attention(model):
    """Padding must be exact on the reference kernel too, not only the CPU flash kernel."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    short = torch.tensor([[BOS, 10, 20, 30, 40]])
    padded = torch.cat([torch.full((1, 3), PAD), short], 1)
    mask = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 1]])
    with sdpa_kernel(SDPBackend.MATH):
        out = model(padded, attention_mask=mask)
        alone = model(short)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[:, 3:], alone, atol=1e-5, rtol=0)


def test_kv_cache_forward_matches_full(model):
    x = torch.randint(0, 256, (2, 10))
    full = model(x)
    logits, cache = model(x[:, :6], use_cache=True)
    rest, _ = model(x[:, 6:], past_key_values=cache, use_cache=True)
    torch.testing.assert_close(torch.cat([logits, rest], 1), full, atol=1e-5, rtol=0)


def test_batched_greedy_equals_alone(model):
    batch = generate(model, PROMPTS, 12, temperature=0.0, stop_token_ids=())
    for p, s in zip(PROMPTS, batch):
        (alone,) = generate(model, [p], 12, temperature=0.0, stop_token_ids=())
        assert s.completion_ids == alone.completion_ids
        torch.testing.assert_close(torch.tensor(s.logprobs), torch.tensor(alone.logprobs), atol=1e-5, rtol=0)


def test_seeded_sampling_reproducible(model):
    a = generate(model, PROMPTS, 20, seed=123, stop_token_ids=())
    b = generate(model, PROMPTS, 20, seed=123, stop_token_ids=())
    c = generate(model, PROMPTS, 20, seed=124, stop_token_ids=())
    assert all(isinstance(s, Sample) and len(s.completion_ids) == 20 for s in a)
    assert [s.completion_ids for s in a] == [s.completion_ids for s in b]
    assert [s.logprobs for s in a] == [s.logprobs for s in b]
    assert [s.completion_ids for s in a] != [s.completion_ids for s in c]


@pytest.mark.parametrize("temperature,top_p", [(1.0, 1.0), (0.7, 0.9), (0.0, 1.0)])
def test_cache_and_no_cache_agree(model, temperature, top_p):
    kw = dict(temperature=temperature, top_p=top_p, seed=7, stop_token_ids=())
    fast = generate(model, PROMPTS, 16, use_cache=True, **kw)
    slow = generate(model, PROMPTS, 16, use_cache=False, **kw)
    for f, s in zip(fast, slow):
        assert f.completion_ids == s.completion_ids
        torch.testing.assert_close(torch.tensor(f.logprobs), torch.tensor(s.logprobs), atol=1e-4, rtol=0)


def test_tiny_top_p_is_greedy(model):
    nucleus = generate(model, PROMPTS, 10, top_p=1e-6, seed=5, stop_token_ids=())
    greedy = generate(model, PROMPTS, 10, temperature=0.0, stop_token_ids=())
    assert [s.completion_ids for s in nucleus] == [s.completion_ids for s in greedy]


def _fixed_distribution_model(logits: dict[int, float]) -> GPT:
    """Same next-token logits everywhere: final hidden state is e_0, the tied head reads wte[:, 0]."""
    torch.manual_seed(0)
    m = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=32, block_size=64, bias=True)).eval()
    with torch.no_grad():
        m.ln_f.weight.zero_()
        m.ln_f.bias.zero_()
        m.ln_f.bias[0] = 1.0
        m.wte.weight[:, 0] = -30.0
        for tok, value in logits.items():
            m.wte.weight[tok, 0] = value
    return m


@pytest.mark.parametrize("temperature,top_p,expected", [
    (1.0, 1.0, {65: 0.5, 66: 0.3, 67: 0.2}),
    (0.5, 1.0, {65: 0.25 / 0.38, 66: 0.09 / 0.38, 67: 0.04 / 0.38}),
    (1.0, 0.6, {65: 0.5 / 0.8, 66: 0.3 / 0.8}),
])
def test_sampling_follows_distribution(temperature, top_p, expected):
    m = _fixed_distribution_model({65: math.log(0.5), 66: math.log(0.3), 67: math.log(0.2)})
    out = generate(m, [[BOS]] * 4000, 1, temperature=temperature, top_p=top_p, seed=0)
    counts = torch.bincount(torch.tensor([s.completion_ids[0] for s in out]), minlength=259) / 4000
    for tok in range(259):
        assert abs(counts[tok].item() - expected.get(tok, 0.0)) < 0.03, tok
    # logprobs stay those of the raw model whatever temperature/top_p sampled them
    raw = {65: math.log(0.5), 66: math.log(0.3), 67: math.log(0.2)}
    assert all(math.isclose(s.logprobs[0], raw[s.completion_ids[0]], abs_tol=1e-4) for s in out)


def test_generate_logprobs_equal_score(model):
    prompts = PROMPTS + PROMPTS[:2] * 2  # repeated prompts (groups) are prefilled once, then sampled apart
    samples = generate(model, prompts, 12, temperature=0.8, top_p=0.95, seed=3)
    assert len({tuple(s.completion_ids) for s in samples}) > len(PROMPTS)
    scored = score(model, prompts, [s.completion_ids for s in samples], batch_size=2)
    for s, lp in zip(samples, scored):
        assert lp.shape == (len(s.completion_ids),)
        torch.testing.assert_close(lp, torch.tensor(s.logprobs), atol=1e-4, rtol=0)
        assert all(v <= 0 for v in s.logprobs)


def test_score_shares_a_groups_prompt_with_the_same_values_and_gradients(model):
    """Repeated prompts (MAGRPO groups) are forwarded once; every pair still gets what it gets scored alone,
    and the gradient of a loss over all pairs is the sum of the pairs' own gradients. Completions of mixed
    lengths (0 included), and a long prompt whose pair overflows the block and loses its first tokens."""
    long = [BOS] + list(range(1, TINY.block_size))
    prompts = [PROMPTS[0]] * 3 + [PROMPTS[1]] * 2 + [long] + [PROMPTS[2]]
    completions = [[65, 66, EOS], [67], [68, 69, 70, 71, EOS], [72, EOS], [], [73, 74, 75], [76] * 20]

    def weighted_loss_grads(scored):  # a different weight per pair: a wrong row mapping changes the sum
        model.zero_grad()
        sum((k + 1) * lp.sum() for k, lp in enumerate(scored)).backward()
        return [lp.detach() for lp in scored], {n: p.grad.clone() for n, p in model.named_parameters()}

    together, g_together = weighted_loss_grads(score(model, prompts, completions))
    alone, g_alone = weighted_loss_grads([lp for p, c in zip(prompts, completions) for lp in score(model, [p], [c])])
    assert [len(lp) for lp in together] == [len(c) for c in completions]
    for a, b in zip(together, alone):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=0)
    for name in g_alone:
        torch.testing.assert_close(g_together[name], g_alone[name], atol=1e-4, rtol=1e-3)


def test_logprobs_are_temperature_one(model):
    """Greedy picks the argmax; its logprob must be log_softmax of raw logits, not of logits/T."""
    (s,) = generate(model, [PROMPTS[0]], 1, temperature=0.0)
    logits = model(torch.tensor([PROMPTS[0]]))[0, -1].detach()
    assert s.completion_ids == [int(logits.argmax())]
    assert math.isclose(s.logprobs[0], float(torch.log_softmax(logits, -1).max()), abs_tol=1e-5)


def test_stop_token():
    torch.manual_seed(0)
    m = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=64, block_size=128, bias=True)).eval()
    with torch.no_grad():  # final hidden state is constant e_0; the tied head then favours EOS
        m.ln_f.weight.zero_()
        m.ln_f.bias.zero_()
        m.ln_f.bias[0] = 1.0
        m.wte.weight[EOS, 0] = 10.0
    out = generate(m, PROMPTS, 10, temperature=0.0)
    assert [s.completion_ids for s in out] == [[EOS]] * len(PROMPTS)
    assert all(len(s.logprobs) == 1 for s in out)
    out = generate(m, PROMPTS, 10, temperature=0.0, stop_token_ids=())
    assert all(s.completion_ids == [EOS] * 10 for s in out)


def test_rows_stop_independently():
    torch.manual_seed(0)
    m = GPT(TINY).eval()
    stops = set(range(0, 259, 2))  # half the vocab: rows stop at different steps
    out = generate(m, PROMPTS * 4, 30, seed=0, stop_token_ids=tuple(stops))
    lengths = [len(s.completion_ids) for s in out]
    assert len(set(lengths)) > 1
    for s in out:
        ids = s.completion_ids
        assert len(ids) == len(s.logprobs)
        assert all(i not in stops for i in ids[:-1])
        assert ids[-1] in stops or len(ids) == 30


def test_long_prompt_truncated_left(model):
    long = list(range(200))  # > block_size
    (a,) = generate(model, [long], 8, temperature=0.0)
    (b,) = generate(model, [long[-(TINY.block_size - 8):]], 8, temperature=0.0)
    assert a.completion_ids == b.completion_ids


def test_save_load_round_trip(model, tmp_path):
    save(model, tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["config.json", "model.safetensors"]
    loaded = load(tmp_path / "ckpt")
    assert loaded.config == model.config
    assert loaded.lm_head.weight is loaded.wte.weight
    x = torch.randint(0, 259, (2, 9))
    assert torch.equal(loaded(x), model(x))


def test_overfit_fixed_string():
    """Gradients flow through `score`: a tiny model memorises a string in a few Adam steps."""
    torch.manual_seed(0)
    tok = ByteTokenizer()
    m = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=64, block_size=64))
    target = tok.encode("agora: play fair!") + [EOS]
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss = -score(m, [[BOS]], [target])[0].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] > 4.0 and losses[-1] < 0.05
    (s,) = generate(m, [[BOS]], 40, temperature=0.0)
    assert s.completion_ids == target
    assert tok.decode(s.completion_ids) == "agora: play fair!"
