"""A tiny nanoGPT-style language model: the default fast policy for tests and CPU runs.

Everything an RL trainer needs lives here and nowhere else: a byte tokenizer (no vocab
files to ship), a pre-LN GPT that takes left-padded batches, batched KV-cached sampling
that returns per-token log-probabilities, a differentiable `score`, and safetensors I/O.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
import torch.nn as nn
from torch.nn import functional as F

BOS, EOS, PAD = 256, 257, 258


class ByteTokenizer:
    """UTF-8 bytes are ids 0..255, then BOS/EOS/PAD: any text round-trips, no files needed."""

    bos_id, eos_id, pad_id = BOS, EOS, PAD

    @property
    def vocab_size(self) -> int:
        return 259

    def encode(self, text: str, bos: bool = False) -> list[int]:
        return ([BOS] if bos else []) + list(text.encode("utf-8"))

    def decode(self, ids) -> str:
        """Special ids are dropped; a sampled broken UTF-8 sequence becomes U+FFFD, never an error."""
        return bytes(i for i in ids if 0 <= i < 256).decode("utf-8", errors="replace")


@dataclass
class GPTConfig:
    """Defaults give ~3.5M parameters: quick to sample from and to train on a CPU."""

    vocab_size: int = 259
    block_size: int = 1024
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 256
    dropout: float = 0.0
    bias: bool = False
    rope: bool = False  # rotary positions (as Llama) instead of learned absolute ones

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> GPTConfig:
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})


def rotary(pos: torch.Tensor, head_dim: int, base: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of rotary embeddings for positions ``pos`` (B, T): each (B, 1, T, head_dim / 2)."""
    inv = 1.0 / base ** (torch.arange(0, head_dim, 2, device=pos.device, dtype=torch.float32) / head_dim)
    angles = pos[:, None, :, None].float() * inv
    return angles.cos(), angles.sin()


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (first half, second half) of the last dimension: attention scores then depend on the
    distance between two tokens only, so a small model reads "the token k places back" at any prompt length."""
    a, b = x.chunk(2, dim=-1)
    return torch.cat((a * cos - b * sin, a * sin + b * cos), dim=-1).type_as(x)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        assert cfg.n_embd % cfg.n_head == 0
        self.n_head, self.dropout = cfg.n_head, cfg.dropout
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.resid_dropout = nn.Dropout(cfg.dropout)

    def forward(self, x, mask, is_causal, cache=None, layer=0, start=0, rope=None):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).view(B, T, 3, self.n_head, C // self.n_head).permute(2, 0, 3, 1, 4)
        if rope is not None:
            q, k = rotate(q, *rope), rotate(k, *rope)
        if cache is not None:
            k, v = cache.update(layer, k, v, start)
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, is_causal=is_causal)
        return self.resid_dropout(self.c_proj(y.transpose(1, 2).reshape(B, T, C)))


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias)
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.mlp = MLP(cfg)

    def forward(self, x, mask, is_causal, cache=None, layer=0, start=0, rope=None):
        x = x + self.attn(self.ln_1(x), mask, is_causal, cache, layer, start, rope)
        return x + self.mlp(self.ln_2(x))


class KVCache:
    """Per-layer keys/values. `cache[i]` is layer i's (k, v), each (B, H, len, D).

    Under inference, preallocated buffers updated in place: decoding writes one slot per step instead of
    re-copying the whole cache with torch.cat (on CPU that copy costs as much memory traffic as the weights);
    buffers grow by doubling if `capacity` is too small. With grad enabled, updates are out of place, so that a
    loss differentiates through the cached prompt (``score``: one prompt forward shared by its group).
    """

    def __init__(self, n_layer: int, capacity: int = 0):
        self.k: list = [None] * n_layer
        self.v: list = [None] * n_layer
        self.length, self.capacity = 0, capacity

    def __len__(self) -> int:
        return len(self.k)

    def __getitem__(self, i):
        return self.k[i][:, :, :self.length], self.v[i][:, :, :self.length]

    def select(self, rows: torch.Tensor) -> None:
        """Keep (and repeat) batch rows: row b becomes old row ``rows[b]``."""
        self.k = [k.index_select(0, rows) for k in self.k]
        self.v = [v.index_select(0, rows) for v in self.v]

    def update(self, i, k, v, start):
        end = start + k.shape[2]
        if torch.is_grad_enabled():
            old_k, old_v = self.k[i], self.v[i]
            self.k[i] = k if old_k is None else torch.cat([old_k[:, :, :start], k], 2)
            self.v[i] = v if old_v is None else torch.cat([old_v[:, :, :start], v], 2)
            return self.k[i], self.v[i]
        if self.k[i] is None or self.k[i].shape[2] < end:
            B, H, _, D = k.shape
            cap = max(end, self.capacity, 2 * (0 if self.k[i] is None else self.k[i].shape[2]))
            nk, nv = k.new_empty(B, H, cap, D), v.new_empty(B, H, cap, D)
            if self.k[i] is not None:
                nk.narrow(2, 0, start).copy_(self.k[i].narrow(2, 0, start))
                nv.narrow(2, 0, start).copy_(self.v[i].narrow(2, 0, start))
            self.k[i], self.v[i] = nk, nv
        self.k[i].narrow(2, start, end - start).copy_(k)
        self.v[i].narrow(2, start, end - start).copy_(v)
        return self.k[i].narrow(2, 0, end), self.v[i].narrow(2, 0, end)


class GPT(nn.Module):
    """Pre-LN decoder with tied input/output embeddings and learned absolute positions, or rotary ones
    (``rope``): with those a token's attention to another depends on their distance only, which is what
    lets a small model read the line just before its answer (a card, a message) whatever the prompt's length.

    Batches of prompts of different lengths are LEFT padded (so every row's next token is
    at the last column) and described by `attention_mask` (B, past + T), 0 on pads.
    Position ids come from the mask, so a padded row computes exactly what it would alone.
    """

    def __init__(self, config: GPTConfig | None = None):
        super().__init__()
        self.config = cfg = config or GPTConfig()
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = None if cfg.rope else nn.Embedding(cfg.block_size, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        self.h = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying: fewer params, better small models
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2: scale residual projections by depth
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    @property
    def device(self) -> torch.device:
        return self.wte.weight.device

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())  # tied weight counted once

    def forward(self, idx, attention_mask=None, past_key_values: KVCache | None = None,
                use_cache=False):
        """idx (B, T) -> logits (B, T, V), or (logits, cache) when `use_cache`.

        `past_key_values` is the KVCache returned by a previous call (it is updated in place
        and returned again); `attention_mask` then covers past and new tokens (B, past + T).
        """
        B, T = idx.shape
        cache = past_key_values if past_key_values is not None else (
            KVCache(self.config.n_layer) if use_cache else None)
        past_len = 0 if cache is None else cache.length
        S = past_len + T
        dev = idx.device
        mask, is_causal = None, False
        if attention_mask is None:
            if S > self.config.block_size:
                raise ValueError(f"sequence length {S} exceeds block_size {self.config.block_size}")
            pos = torch.arange(past_len, S, device=dev).unsqueeze(0)
            if past_len == 0:
                is_causal = T > 1
            elif T > 1:  # causal with an offset: query i sees keys j <= past_len + i
                mask = torch.arange(S, device=dev) <= torch.arange(past_len, S, device=dev)[:, None]
        else:
            am = attention_mask.to(device=dev, dtype=torch.bool)
            pos = (am.long().cumsum(-1) - 1).clamp(min=0)[:, -T:]
            q = torch.arange(past_len, S, device=dev)[:, None]  # absolute query positions
            k = torch.arange(S, device=dev)
            # causal AND key-is-real; a query always sees itself: no row is fully masked (NaN)
            mask = (k <= q) & (am[:, None, None, :] | (k == q))
            if int(pos.max()) >= self.config.block_size:  # padding may widen a batch, not a row's positions
                raise ValueError(f"a row of {int(pos.max()) + 1} tokens exceeds block_size {self.config.block_size}")
        if self.wpe is None:  # rotary: positions enter through the attention's queries and keys
            rope, x = rotary(pos.expand(B, T), self.config.n_embd // self.config.n_head), self.wte(idx)
        else:
            rope, x = None, self.wte(idx) + self.wpe(pos)
        x = self.drop(x)
        for i, block in enumerate(self.h):
            x = block(x, mask, is_causal, cache, i, past_len, rope)
        logits = self.lm_head(self.ln_f(x))
        if cache is not None:
            cache.length = S
        return (logits, cache) if use_cache else logits


@dataclass
class Sample:
    """One completion. `logprobs[i]` is log p(completion_ids[i]) at temperature 1, no top-p."""

    completion_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)


def _left_pad(seqs: list[list[int]], device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Right-align rows with PAD; the mask is None when nothing was padded (faster attention)."""
    L = max(len(s) for s in seqs)
    idx = torch.full((len(seqs), L), PAD, dtype=torch.long)
    mask = torch.zeros((len(seqs), L), dtype=torch.long)
    for b, s in enumerate(seqs):
        if s:
            idx[b, L - len(s):] = torch.tensor(s, dtype=torch.long)
            mask[b, L - len(s):] = 1
    padded = any(len(s) != L for s in seqs)
    return idx.to(device), (mask.to(device) if padded else None)


def _distinct(seqs: list[list[int]]) -> tuple[list[list[int]], list[int]]:
    """The distinct sequences, in order of first appearance, and each input's index among them."""
    index: dict[tuple[int, ...], int] = {}
    rows = [index.setdefault(tuple(s), len(index)) for s in seqs]
    return [list(s) for s in index], rows


def _sample(logits, logp, temperature, top_p, gen):
    """One token per row by inverse CDF: one uniform per row, not one per vocab entry as
    torch.multinomial draws (several times cheaper for a batch on CPU)."""
    if temperature == 0:
        return logits.argmax(-1)
    probs = logp.exp() if temperature == 1 else torch.softmax(logits / temperature, dim=-1)
    order = None
    if top_p < 1.0:  # nucleus: keep the smallest prefix of sorted tokens with mass >= top_p
        probs, order = probs.sort(dim=-1, descending=True)
        probs = probs * ((probs.cumsum(-1) - probs) < top_p)
    cdf = probs.cumsum(-1)
    u = torch.rand((probs.shape[0], 1), generator=gen, device=probs.device) * cdf[:, -1:]
    tok = torch.searchsorted(cdf, u, right=True).clamp_(max=probs.shape[-1] - 1)
    return (tok if order is None else order.gather(-1, tok)).squeeze(-1)


@torch.inference_mode()
def generate(model: GPT, prompts: list[list[int]], max_new_tokens: int, temperature: float = 1.0,
             top_p: float = 1.0, stop_token_ids=(EOS,), seed: int | None = None,
             use_cache: bool = True) -> list[Sample]:
    """Sample up to `max_new_tokens` per prompt, the whole batch in lock step.

    Distinct prompts (a group's shared one once) are left padded and prefilled in one forward, then every row
    is extended one token per step from the KV cache (`use_cache=False` recomputes everything: same result,
    slower, for checking). A row stops after a token in `stop_token_ids`, which is kept in its
    completion. `temperature == 0` is greedy. The returned logprobs are always under the
    raw model (log_softmax of logits at temperature 1, no top-p): what policy-gradient
    losses compare against `score`. Prompts longer than block_size - max_new_tokens keep
    only their last tokens. The same seed and the same batch give the same samples
    (seed=None draws from torch's global RNG).
    """
    if max_new_tokens <= 0:
        return [Sample() for _ in prompts]
    keep = model.config.block_size - max_new_tokens
    if keep < 1:
        raise ValueError("max_new_tokens must be smaller than block_size")
    if any(len(p) == 0 for p in prompts):
        raise ValueError("prompts must be non-empty (start them with BOS)")
    dev, was_training = model.device, model.training
    distinct, rows = _distinct([p[-keep:] for p in prompts])
    idx, mask = _left_pad(distinct, dev)  # a group's shared prompt is prefilled once
    L, rows = idx.shape[1], torch.tensor(rows, device=dev)
    B = len(rows)
    gen = None if seed is None else torch.Generator(device=dev).manual_seed(seed)
    seq = F.pad(idx, (0, max_new_tokens), value=PAD)[rows]
    full_mask = None if mask is None else F.pad(mask, (0, max_new_tokens), value=1)[rows]
    cache = KVCache(model.config.n_layer, capacity=L + max_new_tokens) if use_cache else None
    stop = torch.tensor(list(stop_token_ids or ()), dtype=torch.long, device=dev)
    finished = torch.zeros(B, dtype=torch.bool, device=dev)
    lengths = torch.zeros(B, dtype=torch.long, device=dev)
    logps = torch.zeros((B, max_new_tokens), device=dev)
    model.eval()
    try:
        for t in range(max_new_tokens):
            n = L + t  # tokens so far; with the cache only the newest one is fed after prefill
            if t == 0:
                logits = model(idx, mask, past_key_values=cache)[:, -1:][rows]
                if cache is not None:
                    cache.select(rows)
            else:
                inp = seq[:, n - 1:n] if use_cache else seq[:, :n]
                logits = model(inp, None if full_mask is None else full_mask[:, :n], past_key_values=cache)
            last = logits[:, -1].float()
            logp = torch.log_softmax(last, -1)
            tok = _sample(last, logp, temperature, top_p, gen)
            logps[:, t] = logp.gather(-1, tok[:, None]).squeeze(-1)
            alive = ~finished
            seq[:, n] = torch.where(alive, tok, PAD)  # finished rows only grow padding
            lengths += alive
            if stop.numel():
                finished |= alive & torch.isin(tok, stop)
                if bool(finished.all()):
                    break
    finally:
        model.train(was_training)
    toks, logps, lengths = seq[:, L:].tolist(), logps.tolist(), lengths.tolist()
    return [Sample(toks[b][:n], logps[b][:n]) for b, n in enumerate(lengths)]


def score(model: GPT, prompts: list[list[int]], completions: list[list[int]],
          batch_size: int = 32) -> list[torch.Tensor]:
    """Per-token log p(completion | prompt) at temperature 1, one 1-D tensor per pair.

    Differentiable when grad is enabled (call it inside the loss). Pairs longer than block_size drop the start
    of their prompt, as `generate` does. Within each batch of pairs, a prompt shared by several completions (a
    MAGRPO group) is forwarded once and its cached keys and values serve them all: gradients of the whole
    group flow back into that one prompt forward.
    """
    if len(prompts) != len(completions):
        raise ValueError("prompts and completions must have the same length")
    bs = model.config.block_size
    out: list[torch.Tensor] = []
    for i in range(0, len(prompts), batch_size):
        ps, cs = prompts[i:i + batch_size], completions[i:i + batch_size]
        if any(len(p) == 0 for p in ps) or any(len(c) >= bs for c in cs):
            raise ValueError("prompts must be non-empty and completions shorter than block_size")
        n = max(len(c) for c in cs)
        if n == 0:
            out += [torch.zeros(0, device=model.device) for _ in cs]
            continue
        distinct, rows = _distinct([p[-(bs - len(c)):] for p, c in zip(ps, cs)])
        idx, mask = _left_pad(distinct, model.device)
        rows = torch.tensor(rows, device=model.device)
        cache = KVCache(model.config.n_layer)
        logits = model(idx, attention_mask=mask, past_key_values=cache)[:, -1:][rows]  # predicts each c[0]
        if n > 1:  # the completions but their last token, right padded after the shared prompts
            ids = torch.full((len(cs), n - 1), PAD, dtype=torch.long)
            real = torch.zeros((len(cs), n - 1), dtype=torch.long)
            for b, c in enumerate(cs):
                if len(c) > 1:
                    ids[b, :len(c) - 1] = torch.tensor(c[:-1], dtype=torch.long)
                    real[b, :len(c) - 1] = 1
            past = torch.ones_like(idx) if mask is None else mask
            cache.select(rows)
            rest = model(ids.to(model.device), attention_mask=torch.cat([past[rows], real.to(model.device)], 1),
                         past_key_values=cache)
            logits = torch.cat([logits, rest], 1)
        targets = torch.full((len(cs), n), PAD, dtype=torch.long)
        for b, c in enumerate(cs):
            targets[b, :len(c)] = torch.tensor(c, dtype=torch.long)
        lp = torch.log_softmax(logits.float(), -1).gather(-1, targets.to(model.device)[..., None]).squeeze(-1)
        out += [lp[b, :len(c)] for b, c in enumerate(cs)]
    return out


def save(model: GPT, directory) -> None:
    """Write model.safetensors + config.json. The tied lm_head is not stored twice."""
    from safetensors.torch import save_file

    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()
             if k != "lm_head.weight"}
    save_file(state, str(path / "model.safetensors"))
    (path / "config.json").write_text(json.dumps(model.config.to_dict(), indent=2))


def load(directory, device="cpu") -> GPT:
    """Inverse of `save`; returns the model on `device` in eval mode."""
    from safetensors.torch import load_file

    path = Path(directory)
    model = GPT(GPTConfig.from_dict(json.loads((path / "config.json").read_text())))
    missing, unexpected = model.load_state_dict(load_file(str(path / "model.safetensors")), strict=False)
    if set(missing) != {"lm_head.weight"} or unexpected:
        raise ValueError(f"bad checkpoint: missing={missing} unexpected={unexpected}")
    return model.to(device).eval()
