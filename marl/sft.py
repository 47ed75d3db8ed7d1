"""``agora sft CONFIG``: behaviour-cloning warm-start, so that reinforcement learning starts from valid actions.

A language model trained from scratch (the tiny byte-level GPT by default) learns each arena's answer
format from transcripts of scripted play. Every valid step becomes one example: prompt = the step's
observation, completion = ``<answer>ACTION</answer>`` (the parsed action; on talk turns the raw text,
capped at ``TALK_CHARS`` characters). The loss is the mean negative log-likelihood of the completion
tokens (EOS included) under ``policy.score``; each training prompt loses a random 0..``position_jitter``
tokens after BOS, so that the tiny GPT's learned absolute positions see the answer at many offsets
(see :func:`jitter`).

Before and after training the policy plays held-out episodes as every agent and we count the
valid-action rate (valid steps / all steps). It samples at ``eval_temperature`` 1.0 by default: the
distribution RL samples from, so "valid" means the model puts nearly all its mass on well-formed
answers, not just its argmax. ``eval_max_new_tokens`` (24 by default) is just long enough for the
answers of the built-in arenas (``<answer>pass</answer>`` is 21 bytes) and is checked against the
training data; talk turns cut at that length stay valid.

The file reads top to bottom like a CleanRL script: config, data, evaluation, training loop, report.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

import arenas
from arenas.config import ConfigError, load_yaml
from arenas.core import answer_text
from arenas.play import Episode, play_episode
from marl.policy import PolicySpec, load_policy, text_policy

TALK_CHARS = 64  # talk-turn completions keep at most this many characters
EVAL_SEED = 1_000_000  # evaluation seeds start here: disjoint from the training seeds (cfg.seed + 0, 1, ...)
console = Console()


# ---------------------------------------------------------------------------- configuration
class SFTConfig(BaseModel):
    """``agora sft``: which arenas, which transcripts (or how many scripted episodes), the model, the budget."""

    model_config = ConfigDict(extra="forbid")
    arenas: list[str] = Field(min_length=1)  # e.g. [kuhn_poker_v0, signalling_v0]
    transcripts: list[str] = []  # JSONL files from `agora play`, transcripts[i] played in arenas[i]; [] = play here
    episodes_per_arena: int = Field(200, ge=1, lt=EVAL_SEED)  # scripted episodes when no transcripts
    # the scripted policy that plays them: heuristic (imitate a strategy), random (format only) or fixed_random
    # (format, and random answers that depend on the prompt's last line but mean nothing: see arenas.scripted)
    teacher: Literal["heuristic", "random", "fixed_random"] = "heuristic"
    teacher_concentration: float = Field(1.0, gt=0)  # fixed_random's Dirichlet: below 1, peaked odds per line
    arena_params: dict[str, dict[str, Any]] = {}  # arena name -> keyword arguments of arenas.make
    policy: PolicySpec = PolicySpec()  # a fresh tiny GPT unless a path is given (policy.gpt: GPTConfig fields)
    steps: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    lr: float = Field(gt=0)
    warmup_steps: int = Field(10, ge=0)  # linear warmup, then cosine decay to lr/10
    position_jitter: int = Field(32, ge=0)  # drop up to this many tokens after BOS, at random, per training example
    max_minutes: float = Field(10.0, gt=0)  # training stops early when this is spent
    eval_episodes: int = Field(50, ge=0)  # per arena, before and after, on held-out seeds
    eval_max_new_tokens: int = Field(24, ge=1)
    eval_temperature: float = Field(1.0, ge=0)
    out: str = "runs/sft"  # the trained policy and sft_report.json go here
    seed: int = 0


def check_config(cfg: SFTConfig, source: str = "config") -> SFTConfig:
    """What pydantic cannot see: known arenas, parameters for arenas in use, one transcript per arena."""
    for name in cfg.arenas:
        arenas.spec(name)  # a KeyError that lists the known arenas
    unknown = sorted(set(cfg.arena_params) - set(cfg.arenas))
    if unknown:
        raise ConfigError(f"{source}: arena_params: {', '.join(unknown)} not in arenas ({', '.join(cfg.arenas)})")
    if cfg.transcripts and len(cfg.transcripts) != len(cfg.arenas):
        raise ConfigError(f"{source}: transcripts: give one file per arena (transcripts[i] played in arenas[i]), "
                          f"got {len(cfg.transcripts)} for {len(cfg.arenas)} arenas")
    return cfg


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> SFTConfig:
    return check_config(load_yaml(path, SFTConfig, overrides), str(path))


# ---------------------------------------------------------------------------- data: transcripts -> examples
@dataclass
class Example:
    prompt: str
    completion: str
    prompt_ids: list[int]
    completion_ids: list[int]


def make_env(cfg: SFTConfig, arena: str):
    return arenas.make(arena, **cfg.arena_params.get(arena, {}))


def read_steps(path: str | Path) -> list[dict[str, Any]]:
    """A transcript's step records; a missing file or a bad line is a ConfigError naming file and line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: transcript file not found")
    steps = []
    with path.open() as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ConfigError(f"{path}:{n}: not a JSON line ({e.msg})") from None
            if not isinstance(row, dict):
                raise ConfigError(f"{path}:{n}: expected a JSON object (a step record), got {type(row).__name__}")
            missing = [k for k in ("observation", "raw_action", "parsed_action", "valid") if k not in row]
            if missing:
                raise ConfigError(f"{path}:{n}: step record lacks {', '.join(missing)}")
            if not isinstance(row["observation"], str) or not isinstance(row["raw_action"], str):
                raise ConfigError(f"{path}:{n}: observation and raw_action must be strings")
            steps.append(row)
    return steps


def scripted_steps(cfg: SFTConfig, arena: str) -> list[dict[str, Any]]:
    """Play ``episodes_per_arena`` episodes with the scripted ``teacher`` as every agent (seeds cfg.seed + 0, 1, ...)."""
    env = make_env(cfg, arena)
    teacher = arenas.scripted(arena, cfg.teacher, concentration=cfg.teacher_concentration)
    policies = {a: teacher for a in env.possible_agents}
    episodes: list[Episode] = [play_episode(env, policies, seed=cfg.seed + i, episode=i) for i in range(cfg.episodes_per_arena)]
    return [vars(s) for e in episodes for s in e.steps]


def to_completion(step: dict[str, Any]) -> str | None:
    """The text the model should have written, or None for steps not worth imitating (invalid ones)."""
    if not step["valid"]:
        return None
    if step["parsed_action"] is not None:
        return answer_text(step["parsed_action"])
    return step["raw_action"][:TALK_CHARS]  # a talk turn: any text is valid, imitate the message


def prompt_budget(cfg: SFTConfig, policy) -> int | None:
    """How many prompt tokens the tiny GPT keeps when it answers (block_size - eval_max_new_tokens); None: no limit."""
    block = getattr(getattr(getattr(policy, "model", None), "config", None), "block_size", None)
    return None if policy.backend != "tiny" or block is None else block - cfg.eval_max_new_tokens


def build_examples(policy, steps: list[dict[str, Any]], keep: int | None = None) -> list[Example]:
    """Valid steps as examples. Prompts longer than ``keep`` tokens lose their start, exactly as ``generate``
    cuts them, so that training sees the same window, at the same positions, as play."""
    out = []
    for s in steps:
        completion = to_completion(s)
        if completion is not None:
            ids = policy.encode_prompt(s["observation"])
            out.append(Example(s["observation"], completion, ids[-keep:] if keep else ids, policy.encode_completion(completion)))
    return out


def check_fits(cfg: SFTConfig, policy, steps: dict[str, list[dict[str, Any]]], data: dict[str, list[Example]]) -> None:
    """Answers must fit in ``eval_max_new_tokens``; prompts that the tiny GPT's block_size cuts get a warning."""
    answers = [e for ex in data.values() for e in ex if e.completion.startswith("<answer>")]
    longest = max((len(e.completion_ids) - 1 for e in answers), default=0)  # generation stops before EOS is needed
    if longest > cfg.eval_max_new_tokens:
        raise ConfigError(f"eval_max_new_tokens is {cfg.eval_max_new_tokens} but answers are up to {longest} tokens: "
                          f"set eval_max_new_tokens >= {longest}")
    keep = prompt_budget(cfg, policy)
    if keep is None:
        return
    for arena in data:
        longest = max((len(policy.encode_prompt(s["observation"])) for s in steps[arena]), default=0)
        if longest > keep:
            console.print(f"[yellow]warning:[/] {arena}: prompts take up to {longest} tokens but block_size "
                          f"{keep + cfg.eval_max_new_tokens} keeps only their last {keep} (plus {cfg.eval_max_new_tokens} "
                          f"to answer): set policy.gpt.block_size >= {longest + cfg.eval_max_new_tokens} to keep them whole")


# ---------------------------------------------------------------------------- evaluation: valid-action rate
def valid_rate(cfg: SFTConfig, policy, arena: str) -> tuple[float | None, int]:
    """The policy plays every agent of ``eval_episodes`` held-out episodes: (valid steps / steps, steps)."""
    if cfg.eval_episodes == 0:
        return None, 0
    env = make_env(cfg, arena)
    act = text_policy(policy, max_new_tokens=cfg.eval_max_new_tokens, temperature=cfg.eval_temperature)
    policies = {a: act for a in env.possible_agents}
    valid = total = 0
    for i in range(cfg.eval_episodes):
        ep = play_episode(env, policies, seed=EVAL_SEED + cfg.seed + i, episode=i)
        valid += sum(s.valid for s in ep.steps)
        total += len(ep.steps)
    return valid / max(total, 1), total


# ---------------------------------------------------------------------------- training
def jitter(ids: list[int], rng: np.random.Generator, most: int) -> list[int]:
    """Drop 0..most tokens after the first one. The tiny GPT learns absolute positions, and an arena's prompts
    span only a few lengths, so without this the answer format is learned per prompt length and fails on
    lengths that training saw rarely; shifted copies teach it at every position. The dropped bytes are the
    start of the rules, which is also what the model loses when a prompt outgrows its block_size."""
    k = min(int(rng.integers(most + 1)), len(ids) - 2) if most else 0
    return ids[:1] + ids[1 + k:] if k > 0 else ids


def batches(data: dict[str, list[Example]], batch_size: int, rng: np.random.Generator):
    """Endless epochs; every batch comes from one arena (similar prompt lengths, little padding),
    arenas are mixed in proportion to their examples."""
    while True:
        epoch = []
        for examples in data.values():
            order = rng.permutation(len(examples))
            epoch += [[examples[i] for i in order[j:j + batch_size]] for j in range(0, len(order), batch_size)]
        for k in rng.permutation(len(epoch)):
            yield epoch[k]


def learning_rate(cfg: SFTConfig, step: int, elapsed_s: float) -> float:
    """Linear warmup, then cosine to lr/10 over whichever budget (steps or minutes) runs out first."""
    warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
    progress = min(1.0, max(step / cfg.steps, elapsed_s / (60 * cfg.max_minutes)))
    return cfg.lr * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(cfg: SFTConfig, show: bool = True) -> tuple[Any, dict[str, Any]]:
    """The whole run: data, evaluation before, training, evaluation after, save. Returns (policy, report)."""
    check_config(cfg)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    if cfg.policy.backend not in ("tiny", "hf", "smollm2"):
        raise ConfigError(f"policy.backend: sft trains a language model (tiny, hf, smollm2), not {cfg.policy.backend!r}")
    policy = load_policy(cfg.policy)
    if policy.backend == "tiny":  # it learns to read this window; saved with it, play and training keep it
        policy.window = prompt_budget(cfg, policy)
    model = policy.model
    out = Path(cfg.out)

    # 1. data: transcripts from files, or scripted play here
    steps: dict[str, list[dict[str, Any]]] = {}
    data: dict[str, list[Example]] = {}
    for i, arena in enumerate(cfg.arenas):
        steps[arena] = read_steps(cfg.transcripts[i]) if cfg.transcripts else scripted_steps(cfg, arena)
        data[arena] = build_examples(policy, steps[arena], prompt_budget(cfg, policy))
        if not data[arena]:
            source = cfg.transcripts[i] if cfg.transcripts else f"{cfg.episodes_per_arena} scripted episodes"
            raise ConfigError(f"{arena}: no valid steps to learn from in {source}")
    check_fits(cfg, policy, steps, data)
    n_examples = sum(len(v) for v in data.values())

    # 2. evaluation before training
    before = {arena: valid_rate(cfg, policy, arena) for arena in cfg.arenas}

    # 3. training: mean NLL of the completion tokens, AdamW, gradient clipping
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr)
    model.train()
    losses: list[float] = []
    seen = 0
    stream = batches(data, cfg.batch_size, rng)
    columns = (TextColumn("[bold]sft"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]:.4f}"),
               TextColumn("{task.fields[speed]:.1f} ex/s"), TimeElapsedColumn())
    start, cpu_start = time.perf_counter(), time.process_time()
    with Progress(*columns, console=console, disable=not show) as progress:
        task = progress.add_task("sft", total=cfg.steps, loss=float("nan"), speed=0.0)
        for step in range(cfg.steps):
            elapsed = time.perf_counter() - start
            if elapsed > 60 * cfg.max_minutes:
                console.print(f"[yellow]time budget of {cfg.max_minutes:g} minutes spent after {step} steps[/]")
                break
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(cfg, step, elapsed)
            batch = next(stream)
            prompts = [jitter(e.prompt_ids, rng, cfg.position_jitter) for e in batch]
            logps = policy.score(prompts, [e.completion_ids for e in batch])
            loss = -torch.cat(logps).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            losses.append(loss.item())
            seen += len(batch)
            progress.update(task, advance=1, loss=losses[-1], speed=seen / (time.perf_counter() - start))
    minutes, cpu_minutes = (time.perf_counter() - start) / 60, (time.process_time() - cpu_start) / 60
    model.eval()

    # 4. evaluation after training, save, report
    after = {arena: valid_rate(cfg, policy, arena) for arena in cfg.arenas}
    policy.save(out)
    k = max(1, min(10, len(losses) // 5))
    report = {
        "arenas": [{"arena": a, "params": cfg.arena_params.get(a, {}), "valid_before": before[a][0],
                    "valid_after": after[a][0], "eval_steps_before": before[a][1], "eval_steps_after": after[a][1],
                    "examples": len(data[a])} for a in cfg.arenas],
        "steps": len(losses), "examples_seen": seen, "examples": n_examples, "minutes": minutes,
        "cpu_minutes": cpu_minutes,  # all threads together: with a busy machine, wall minutes overstate the cost
        "examples_per_s": seen / max(60 * minutes, 1e-9),
        "loss_first": float(np.mean(losses[:k])) if losses else None,
        "loss_last": float(np.mean(losses[-k:])) if losses else None,
        "eval": {"episodes": cfg.eval_episodes, "max_new_tokens": cfg.eval_max_new_tokens,
                 "temperature": cfg.eval_temperature, "seeds_from": EVAL_SEED + cfg.seed},
        "config": cfg.model_dump(),
    }
    (out / "sft_report.json").write_text(json.dumps(report, indent=2))
    if show:
        console.print(report_table(report))
        console.print(f"policy saved to {out} (load it with --policy {out})")
    return policy, report


def report_table(report: dict[str, Any]) -> Table:
    def rate(x: float | None) -> str:
        return "-" if x is None else f"{x:.1%}"

    loss = "-" if report["loss_first"] is None else f"{report['loss_first']:.3f} -> {report['loss_last']:.3f}"
    table = Table(title=f"Behaviour cloning: {report['steps']} steps, loss {loss}, {report['examples_per_s']:.1f} examples/s",
                  caption=f"training took {report['minutes']:.2f} minutes ({report['cpu_minutes']:.2f} CPU minutes); "
                          f"valid = valid actions / actions in {report['eval']['episodes']} held-out episodes per arena")
    for col in ("arena", "valid before", "valid after", "examples", "minutes"):
        table.add_column(col, justify="left" if col == "arena" else "right")
    for row in report["arenas"]:
        params = ", ".join(f"{k}={v}" for k, v in row["params"].items())
        table.add_row(row["arena"] + (f" ({params})" if params else ""), rate(row["valid_before"]),
                      rate(row["valid_after"]), str(row["examples"]), f"{report['minutes']:.2f}")
    return table


# ---------------------------------------------------------------------------- command line
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="a YAML sft config (see configs/sft_kuhn.yaml)")
    p.add_argument("--steps", type=int)
    p.add_argument("--max-minutes", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--out", help="where the policy and sft_report.json go")


def command(args: argparse.Namespace) -> int:
    overrides = {"steps": args.steps, "max_minutes": args.max_minutes, "seed": args.seed, "out": args.out}
    train(load_config(args.config, overrides))
    return 0
