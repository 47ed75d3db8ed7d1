"""The policy interface: a batch of prompts in, completions with token ids and log-probabilities out.

Every backend (``tiny`` GPT, ``hf`` transformers models incl. ``smollm2``, ``remote`` endpoints,
``scripted`` arena policies) speaks this one protocol, so rollouts, trainers and evaluators never ask
which model they hold. Log-probabilities are always those of the raw model at temperature 1 (what a
policy-gradient loss compares against ``score``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from arenas.core import answer_text
from arenas.scripted import SCRIPTED
from marl import tiny_gpt


@dataclass
class Completion:
    text: str
    prompt_ids: list[int] = field(default_factory=list)
    completion_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)


def write_policy_json(directory: str | Path, fields: dict[str, Any]) -> Path:
    """The folder's ``policy.json``: what ``parse_policy`` reads to load the policy back."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    (path / "policy.json").write_text(json.dumps(fields))
    return path


@runtime_checkable
class Policy(Protocol):
    backend: str

    def generate(self, prompts: list[str], *, max_new_tokens: int = 32, temperature: float = 1.0, top_p: float = 1.0,
                 stop: tuple[str, ...] = (), seed: int | None = None, infos: list[dict] | None = None) -> list[Completion]:
        """Sample one completion per prompt. ``infos`` (the arena's, per prompt) serve scripted policies only."""
        ...

    def score(self, prompts: list[str] | list[list[int]], completions: list[str] | list[list[int]]) -> list[torch.Tensor]:
        """Per-token log-probabilities of each completion after its prompt (text or token ids), batched;
        differentiable when grad is enabled."""
        ...

    def save(self, directory: str | Path) -> Path: ...

    def clone(self) -> Policy:
        """A frozen copy (no gradients), e.g. a league snapshot or a KL reference."""
        ...


class TinyPolicy:
    """The tiny byte-level GPT as a policy. Prompt ids: BOS + bytes(prompt + newline); completions end with EOS.

    Its positions are absolute, so a prompt longer than the block must always be cut to the same window:
    ``window`` (saved with the policy; set by the warm-start that trained it) fixes how many prompt tokens
    it reads, whatever ``max_new_tokens`` a caller asks for (answers then get ``block_size - window``).
    Without a window a prompt keeps ``block_size - max_new_tokens`` tokens.
    """

    backend = "tiny"

    def __init__(self, model: tiny_gpt.GPT, window: int | None = None):
        if window is not None and not 1 <= window < model.config.block_size:
            raise ValueError(f"window must be between 1 and block_size - 1 = {model.config.block_size - 1}, got {window}")
        self.model = model
        self.window = window
        self.tokenizer = tiny_gpt.ByteTokenizer()

    @classmethod
    def create(cls, seed: int = 0, device: str = "cpu", **config: Any) -> TinyPolicy:
        torch.manual_seed(seed)
        return cls(tiny_gpt.GPT(tiny_gpt.GPTConfig(**config)).to(device))

    def encode_prompt(self, prompt: str) -> list[int]:
        return self.tokenizer.encode(prompt + "\n", bos=True)

    def encode_completion(self, completion: str) -> list[int]:
        return self.tokenizer.encode(completion) + [tiny_gpt.EOS]

    def _window(self, prompt: str, keep: int | None) -> list[int]:
        """The prompt's last ``keep`` tokens (all of them for None)."""
        ids = self.encode_prompt(prompt)
        return ids[-keep:] if keep else ids

    def generate(self, prompts, *, max_new_tokens=32, temperature=1.0, top_p=1.0, stop=(), seed=None, infos=None):
        # A prompt longer than the window keeps its last tokens; the ids returned are that window, so that
        # `score` later sees the very positions the sample was drawn at (the model's positions are absolute).
        block = self.model.config.block_size
        keep = self.window or max(1, block - max_new_tokens)
        max_new_tokens = min(max_new_tokens, block - keep)
        ids = [self._window(p, keep) for p in prompts]
        samples = tiny_gpt.generate(self.model, ids, max_new_tokens, temperature, top_p, seed=seed)
        out = []
        for p, s in zip(ids, samples):
            n = len(s.completion_ids)
            raw = bytes(i for i in s.completion_ids if i < 256)  # byte tokens: positions in raw are token positions
            ends = [raw.find(x.encode()) + len(x.encode()) for x in stop if x and x.encode() in raw]
            if ends:
                n = min(ends)
            out.append(Completion(self.tokenizer.decode(s.completion_ids[:n]), p, s.completion_ids[:n], s.logprobs[:n]))
        return out

    def score(self, prompts, completions):
        p_ids = [self._window(p, self.window) if isinstance(p, str) else p for p in prompts]
        c_ids = [self.encode_completion(c) if isinstance(c, str) else c for c in completions]
        return tiny_gpt.score(self.model, p_ids, c_ids)

    def save(self, directory):
        tiny_gpt.save(self.model, Path(directory))
        return write_policy_json(directory, {"backend": self.backend, "window": self.window})

    def clone(self) -> TinyPolicy:
        import copy

        twin = TinyPolicy(copy.deepcopy(self.model).eval(), self.window)
        twin.model.requires_grad_(False)
        return twin


class ScriptedPolicy:
    """An arena's scripted policy (``random`` or ``heuristic``) behind the policy interface."""

    backend = "scripted"

    def __init__(self, arena: str, name: str):
        import arenas

        self.arena, self.name = arena, name
        self.act = arenas.scripted(arena, name)

    def generate(self, prompts, *, max_new_tokens=32, temperature=1.0, top_p=1.0, stop=(), seed=None, infos=None):
        if infos is None:
            raise ValueError("scripted policies need the arena's infos (legal actions) beside the prompts")
        rng = np.random.default_rng(seed)
        return [Completion(self.act(p, info, rng)) for p, info in zip(prompts, infos)]

    def score(self, prompts, completions):
        raise TypeError(f"scripted policy {self.name!r} has no log-probabilities to score")

    def save(self, directory):
        return write_policy_json(directory, {"backend": self.backend, "arena": self.arena, "name": self.name})

    def clone(self) -> ScriptedPolicy:
        return self


class TabularPolicy:
    """Action probabilities per prompt behind the policy interface: a game-theoretic policy (an exact best
    response, an OpenSpiel solver's strategy) plays in an arena like any other player. In the games where
    such tables exist the prompt an agent sees names its information state, so the table is keyed by it."""

    backend = "tabular"

    def __init__(self, table: dict[str, dict[str, float]]):
        self.table = table

    def generate(self, prompts, *, max_new_tokens=32, temperature=1.0, top_p=1.0, stop=(), seed=None, infos=None):
        rng = np.random.default_rng(seed)
        out = []
        for prompt in prompts:
            if prompt not in self.table:
                raise ValueError(f"tabular policy: no entry for the prompt ending {prompt[-120:]!r}")
            actions, probs = zip(*self.table[prompt].items())
            out.append(Completion(answer_text(actions[rng.choice(len(actions), p=np.array(probs) / sum(probs))])))
        return out

    def score(self, prompts, completions):
        """Each completion as one unit: the log of its action's probability at that prompt (-inf if none)."""
        from arenas.parsing import parse_choice

        out = []
        for prompt, text in zip(prompts, completions):
            if not isinstance(text, str) or prompt not in self.table:
                raise ValueError("a tabular policy scores text completions of the prompts in its table")
            p = self.table[prompt][action] if (action := parse_choice(text, self.table[prompt])) is not None else 0.0
            out.append(torch.tensor([np.log(p) if p > 0 else -np.inf], dtype=torch.float64))
        return out

    def save(self, directory):
        return write_policy_json(directory, {"backend": self.backend, "table": self.table})

    def clone(self) -> TabularPolicy:
        return self


# ---------------------------------------------------------------------------- loading by name
class PolicySpec(BaseModel):
    """A policy in a config: a backend and what it needs."""

    model_config = ConfigDict(extra="forbid")
    backend: Literal["tiny", "hf", "smollm2", "remote", "scripted", "tabular"] = "tiny"
    path: str | None = None  # a saved policy (tiny, hf, tabular) or a transformers model id/path
    name: str | None = None  # scripted: random | heuristic; remote: the served model name
    base_url: str | None = None  # remote
    api_key_env: str = "OPENAI_API_KEY"  # remote: the environment variable holding the key
    gpt: dict[str, Any] = {}  # tiny: GPTConfig fields for a fresh model
    lora: dict[str, Any] | None = None  # hf: peft LoRA settings, e.g. {r: 16, alpha: 32}
    device: str = "cpu"
    seed: int = 0
    max_new_tokens: int = Field(32, ge=1)
    temperature: float = Field(1.0, ge=0)


def parse_policy(text: str) -> PolicySpec:
    """Short names used on the command line: ``random``, ``fixed_random``, ``heuristic``, ``tiny``, ``tiny:DIR``, ``smollm2``,
    ``hf:MODEL``, ``remote:MODEL@URL``, or a directory with a saved policy."""
    kind, _, rest = text.partition(":")
    if text in SCRIPTED:
        return PolicySpec(backend="scripted", name=text)
    if text in ("tiny", "smollm2"):
        return PolicySpec(backend=text)
    if kind in ("tiny", "hf") and rest:
        return PolicySpec(backend=kind, path=rest)
    if kind == "remote" and "@" in rest:
        name, _, url = rest.partition("@")
        return PolicySpec(backend="remote", name=name, base_url=url)
    if (Path(text) / "policy.json").is_file():
        saved = json.loads((Path(text) / "policy.json").read_text())
        return PolicySpec(backend=saved["backend"], path=text, name=saved.get("name"))
    raise ValueError(f"unknown policy {text!r}: use random, fixed_random, heuristic, tiny, tiny:DIR, smollm2, hf:MODEL, "
                     "remote:MODEL@URL, or a folder with a saved policy")


def load_policy(spec: PolicySpec | str, arena: str | None = None) -> Policy:
    if isinstance(spec, str):
        spec = parse_policy(spec)
    if spec.backend == "scripted":
        if arena is None:
            raise ValueError("a scripted policy needs the arena it plays")
        return ScriptedPolicy(arena, spec.name or "random")
    if spec.backend == "tabular":
        if not spec.path:
            raise ValueError("a tabular policy needs path: the folder of its policy.json")
        return TabularPolicy(json.loads((Path(spec.path) / "policy.json").read_text())["table"])
    if spec.backend == "tiny":
        if spec.path:
            saved = Path(spec.path) / "policy.json"
            window = json.loads(saved.read_text()).get("window") if saved.is_file() else None
            return TinyPolicy(tiny_gpt.load(spec.path, spec.device), window)
        return TinyPolicy.create(seed=spec.seed, device=spec.device, **spec.gpt)
    if spec.backend in ("hf", "smollm2"):
        from marl import hf

        path = hf.smollm2_path() if spec.backend == "smollm2" else spec.path
        return hf.HFPolicy.from_pretrained(path, device=spec.device, lora=spec.lora)
    if spec.backend == "remote":
        from marl import remote

        return remote.RemotePolicy(spec.base_url, spec.name, api_key_env=spec.api_key_env)
    raise ValueError(f"unknown backend {spec.backend!r}")


class PolicyMapping(BaseModel):
    """Which policy each agent uses: several agents naming one policy id share its parameters
    (their roles are in their prompts); different ids are separate models."""

    model_config = ConfigDict(extra="forbid")
    policies: dict[str, PolicySpec] = {"shared": PolicySpec()}
    mapping: dict[str, str] = {}  # agent id -> policy id; agents left out use the first policy

    def build(self, agents: list[str], arena: str | None = None) -> dict[str, Policy]:
        unknown = sorted({p for p in self.mapping.values() if p not in self.policies})
        if unknown:
            raise ValueError(f"policy mapping names unknown policy id(s) {unknown}; defined: {sorted(self.policies)}")
        strangers = sorted(set(self.mapping) - set(agents))
        if strangers:
            raise ValueError(f"policy mapping names unknown agent(s) {strangers}; agents: {agents}")
        first = next(iter(self.policies))
        loaded = {pid: load_policy(spec, arena) for pid, spec in self.policies.items()
                  if pid in self.mapping.values() or (pid == first and len(self.mapping) < len(agents))}
        return {a: loaded[self.mapping.get(a, first)] for a in agents}


def text_policy(policy: Policy, max_new_tokens: int = 32, temperature: float = 1.0):
    """Adapt a policy to the arenas' ``(text, info, rng) -> action`` interface for ``agora play``."""

    def act(text: str, info: dict, rng: np.random.Generator) -> str:
        seed = int(rng.integers(2**31))
        return policy.generate([text], max_new_tokens=max_new_tokens, temperature=temperature,
                               stop=("</answer>",), seed=seed, infos=[info])[0].text

    return act
