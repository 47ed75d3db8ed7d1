"""Auto-curriculum generation: a proposer writes tasks, a solver attempts them, a prioritized buffer replays them.

Reads top to bottom like the loop it runs (after Absolute Zero, R-Zero, Prioritized Level Replay and ACCEL):

    for each step:
        replay:   with probability ``buffer.replay_prob`` per slot (once the buffer holds ``min_fill`` tasks) a task
                  is drawn from the buffer: rank-prioritised by score with a temperature, mixed with staleness
        propose:  the other slots get new tasks: the proposer (an LLM policy) writes ``group_size`` texts per
                  target difficulty, the family's validator parses them and computes the answers (programs run in
                  the sandbox); or the family draws them, at random levels (``proposer.kind: generator``) or at the
                  levels whose recent tasks earned the most proposer reward (``frontier``, the lowest unsolved level
                  on ties)
        solve:    the solver (an LLM policy) attempts every task ``attempts`` times: solve rate p
        solver:   GRPO over each task's attempts (advantage = reward minus the task's mean): MAGRPO with one
                  agent, through ``marl.magrpo.update``
        proposer: reward = learnability(p) (Absolute Zero ``1 - p`` if 0 < p < 1 else 0, or R-Zero ``min(p, 1-p)``)
                  minus a repetition penalty for near-duplicates in the batch; invalid texts get ``-invalid_penalty``;
                  advantage = reward minus the mean of its group; ``marl.magrpo.update`` again
        buffer:   new tasks enter (the lowest score is replaced when full), replayed ones get their new score

Every task made is kept in the run's archive; at the end the final solver attempts each of them again, so the
exported ``solve_rate`` is a difficulty estimate for one policy. ``agora curriculum export RUN --out tasks.jsonl``
writes one JSON row per task (``prompt``, ``answer``, ``solve_rate``, ``n_samples``, ``family``, ``difficulty``,
``step``, ``proposer``): the file loads with ``datasets.load_dataset("json", ...)`` and TRL's ``GRPOTrainer``
takes it as it is (``prompt`` is the prompt column, the rest reach the reward functions as keyword arguments).
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from arenas.config import ConfigError, load_yaml
from league.tasks import FAMILIES, Invalid, Task, load_family
from marl.magrpo import TrainConfig, update
from marl.policy import Policy, PolicySpec, load_policy
from marl.rollout import Turn

ARCHIVE = "archive.jsonl"  # every task of a run with its statistics
EXPORT = "curriculum.jsonl"  # the run's default export (ordered by difficulty)
RUN_FILE = "run.json"  # the MLflow run and a summary
console = Console()


# ---------------------------------------------------------------------------- configuration
class BufferConfig(BaseModel):
    """Prioritized Level Replay: P = (1 - staleness) * rank(score) ** (-1 / temperature) + staleness * (steps unseen)."""

    model_config = ConfigDict(extra="forbid")
    size: int = Field(128, ge=1)
    score: Literal["learnability", "regret"] = "learnability"  # p(1-p), or max reward - mean reward
    temperature: float = Field(0.3, gt=0)
    staleness: float = Field(0.3, ge=0, le=1)  # weight of the staleness distribution in the mix
    replay_prob: float = Field(0.5, ge=0, le=1)  # 0: no replay (tasks straight from the proposer)
    min_fill: int = Field(16, ge=1)  # no replay before the buffer holds this many tasks


class WarmStart(BaseModel):
    """Supervised warm start on the family's own tasks (the format, and the given difficulties' solutions)."""

    model_config = ConfigDict(extra="forbid")
    steps: int = Field(100, ge=0)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(1e-3, gt=0)
    difficulties: list[int] = [1]


class SolverConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    policy: PolicySpec = PolicySpec()
    attempts: int = Field(8, ge=2)  # n: samples per task, the GRPO group
    lr: float = Field(3e-4, gt=0)
    clip: float = Field(0.2, gt=0)
    temperature: float = Field(1.0, gt=0)
    max_new_tokens: int = Field(32, ge=1)
    kl_coef: float = Field(0.0, ge=0)  # KL to the warm-started solver: keeps what reward does not teach yet as it was
    warm_start: WarmStart | None = None


class ProposerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["policy", "generator", "frontier"] = "policy"  # an LLM writes tasks; or the family draws them at
    # random levels (generator) or at the levels whose recent solve rate earns the proposer the most (frontier)
    policy: PolicySpec = PolicySpec()
    difficulties: list[int] | None = None  # target difficulties asked for (default: 1..max_difficulty)
    group_size: int = Field(4, ge=2)  # texts per proposer prompt (its GRPO group)
    reward: Literal["absolute_zero", "r_zero"] = "absolute_zero"
    repetition_penalty: float = Field(0.5, ge=0)
    similarity: float = Field(0.9, gt=0, le=1)  # two tasks at least this similar (difflib ratio) are near-duplicates
    invalid_penalty: float = Field(1.0, ge=0)
    lr: float = Field(3e-4, gt=0)
    temperature: float = Field(1.0, gt=0)
    max_new_tokens: int = Field(64, ge=1)
    snapshot_every: int = Field(10, ge=1)  # save the proposer's weights every this many steps
    frontier_temperature: float = Field(0.3, gt=0)  # frontier: rank prioritisation of levels by their recent score
    frontier_explore: float = Field(0.1, ge=0, le=1)  # frontier: share of levels drawn uniformly
    warm_start: WarmStart | None = None


class Tracking(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    experiment: str = "curriculum"
    tracking_uri: str | None = None


class CurriculumConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    family: str
    family_params: dict[str, Any] = {}
    steps: int = Field(50, ge=1)
    tasks_per_step: int = Field(8, ge=1)
    buffer: BufferConfig = BufferConfig()
    proposer: ProposerConfig = ProposerConfig()
    solver: SolverConfig = SolverConfig()
    final_eval: bool = True  # the final solver attempts every archived task again (the exported solve rates)
    seed: int = 0
    max_minutes: float | None = None
    tracking: Tracking = Tracking()

    @model_validator(mode="after")
    def _known_family(self) -> CurriculumConfig:
        if self.family not in FAMILIES:
            raise ValueError(f"unknown task family {self.family!r}; known: {', '.join(sorted(FAMILIES))}")
        return self


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> CurriculumConfig:
    cfg = load_yaml(path, CurriculumConfig, overrides)
    try:
        family = load_family(cfg.family, **cfg.family_params)
    except TypeError as e:
        raise ConfigError(f"{path}: family_params: {e}") from None
    bad = [d for d in (cfg.proposer.difficulties or []) if not 1 <= d <= family.max_difficulty]
    if bad:
        raise ConfigError(f"{path}: proposer.difficulties: {bad} outside 1..{family.max_difficulty}")
    return cfg


# ---------------------------------------------------------------------------- rewards
def learnability(p: float, kind: str = "absolute_zero") -> float:
    """The proposer's reward for a task the solver solves with rate p: high at the edge of its ability."""
    if kind == "absolute_zero":
        return 1.0 - p if 0.0 < p < 1.0 else 0.0
    if kind == "r_zero":
        return min(p, 1.0 - p)
    raise ValueError(f"unknown learnability reward {kind!r}")


def buffer_score(rewards: list[float], kind: str) -> float:
    """PLR's score of a task from one round of attempts: learnability p(1-p), or regret (best minus mean reward)."""
    p = float(np.mean(rewards))
    return p * (1 - p) if kind == "learnability" else max(rewards) - p


def duplicate_clusters(keys: list[str], threshold: float) -> list[int]:
    """Cluster size of each key (itself included): keys at least ``threshold`` similar are linked."""
    n = len(keys)
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(n):
        for j in range(i + 1, n):
            if keys[i] == keys[j] or difflib.SequenceMatcher(None, keys[i], keys[j]).ratio() >= threshold:
                parent[root(i)] = root(j)
    roots = [root(i) for i in range(n)]
    return [roots.count(r) for r in roots]


def proposer_rewards(parsed: list[Task | Invalid], solve_rates: dict[int, float], cfg: ProposerConfig) -> list[float]:
    """Learnability minus ``repetition_penalty`` times the share of the batch that near-duplicates it; invalid: penalty."""
    valid = [i for i, t in enumerate(parsed) if isinstance(t, Task)]
    sizes = dict(zip(valid, duplicate_clusters([parsed[i].key() for i in valid], cfg.similarity)))
    out = []
    for i, t in enumerate(parsed):
        if isinstance(t, Invalid):
            out.append(-cfg.invalid_penalty)
        else:
            out.append(learnability(solve_rates[i], cfg.reward) - cfg.repetition_penalty * (sizes[i] - 1) / max(1, len(parsed) - 1))
    return out


# ---------------------------------------------------------------------------- the prioritized task buffer
def rank_probabilities(scores: np.ndarray, temperature: float) -> np.ndarray:
    """PLR's rank prioritisation: P(i) proportional to rank(i) ** (-1 / temperature), rank 1 the highest score."""
    ranks = np.empty(len(scores))
    ranks[np.argsort(-scores, kind="stable")] = np.arange(1, len(scores) + 1)
    h = ranks ** (-1.0 / temperature)
    return h / h.sum()


@dataclass
class Entry:
    task: Task
    score: float
    last_seen: int


class TaskBuffer:
    """Prioritized Level Replay over tasks: rank prioritisation with a temperature, mixed with staleness."""

    def __init__(self, cfg: BufferConfig):
        self.cfg = cfg
        self.entries: list[Entry] = []
        self.index: dict[str, int] = {}  # task key -> position

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def ready(self) -> bool:
        return len(self.entries) >= min(self.cfg.min_fill, self.cfg.size)

    def probabilities(self, step: int) -> np.ndarray:
        p_score = rank_probabilities(np.array([e.score for e in self.entries]), self.cfg.temperature)
        stale = np.array([step - e.last_seen for e in self.entries], dtype=float)
        p_stale = stale / stale.sum() if stale.sum() > 0 else np.full(len(stale), 1 / len(stale))
        return (1 - self.cfg.staleness) * p_score + self.cfg.staleness * p_stale

    def sample(self, k: int, step: int, rng: np.random.Generator) -> list[Task]:
        """``k`` distinct tasks (fewer if the buffer is smaller)."""
        if k <= 0 or not self.entries:
            return []
        idx = rng.choice(len(self.entries), size=min(k, len(self.entries)), replace=False, p=self.probabilities(step))
        return [self.entries[i].task for i in idx]

    def add(self, task: Task, score: float, step: int) -> bool:
        """Insert or refresh a task; when full, it replaces the lowest-scored task if it scores higher. True if kept."""
        key = task.key()
        if key in self.index:
            entry = self.entries[self.index[key]]
            entry.score, entry.last_seen = score, step
            return True
        if len(self.entries) < self.cfg.size:
            self.index[key] = len(self.entries)
            self.entries.append(Entry(task, score, step))
            return True
        low = min(range(len(self.entries)), key=lambda i: self.entries[i].score)
        if score <= self.entries[low].score:
            return False
        del self.index[self.entries[low].task.key()]
        self.entries[low] = Entry(task, score, step)
        self.index[key] = low
        return True

    def stats(self, step: int) -> dict[str, float]:
        if not self.entries:
            return {"buffer/size": 0.0}
        scores = np.array([e.score for e in self.entries])
        return {"buffer/size": float(len(self.entries)), "buffer/score_mean": float(scores.mean()),
                "buffer/score_max": float(scores.max()), "buffer/positive_fraction": float((scores > 0).mean()),
                "buffer/difficulty_mean": float(np.mean([e.task.difficulty for e in self.entries])),
                "buffer/staleness_mean": float(np.mean([step - e.last_seen for e in self.entries]))}


# ---------------------------------------------------------------------------- solving and training
def policy_cfg(lr: float, clip: float, kl_coef: float = 0.0) -> TrainConfig:
    """The MAGRPO settings that ``marl.magrpo.update`` reads (one agent, one epoch, sequence-mean loss)."""
    return TrainConfig(arena="curriculum", lr=lr, clip=clip, kl_coef=kl_coef, advantage="mean", loss_agg="sequence", epochs=1)


def attempt(policy: Policy, family, tasks: list[Task], n: int, *, max_new_tokens: int, temperature: float,
            seed: int, chunk: int = 256) -> tuple[list[list[float]], list[list[Turn]]]:
    """Each task ``n`` times: rewards (1 right, 0 wrong) and the turns to learn from, per task."""
    prompts = [t.prompt for t in tasks for _ in range(n)]
    outs = []
    for i in range(0, len(prompts), chunk):
        outs += policy.generate(prompts[i:i + chunk], max_new_tokens=max_new_tokens, temperature=temperature, seed=seed + i)
    rewards, turns = [], []
    for k, task in enumerate(tasks):
        group = outs[k * n:(k + 1) * n]
        rewards.append([float(family.check(task, o.text)) for o in group])
        turns.append([Turn("solver", 0, task.prompt, o.prompt_ids, o.completion_ids, o.logprobs, o.text, True, False)
                      for o in group])
    return rewards, turns


def grpo_batch(rewards: list[list[float]], turns: list[list[Turn]]) -> list[tuple[Turn, float]]:
    """Group-relative advantages (reward minus the group's mean); groups with one reward teach nothing and are left out."""
    batch = []
    for rs, ts in zip(rewards, turns):
        adv = np.array(rs) - np.mean(rs)
        if np.any(adv != 0):
            batch += [(t, float(a)) for t, a in zip(ts, adv) if t.completion_ids]
    return batch


def arena_attempts(policy: Policy, task: Task, n: int, *, max_new_tokens: int, temperature: float, seed: int):
    """An arena-configuration task played ``n`` times by ``policy`` as every agent (shared parameters): the success
    of each episode (a positive joint return) and MAGRPO's (turn, advantage) samples from the group."""
    import arenas
    from marl.magrpo import samples
    from marl.rollout import collect

    make_env = lambda: arenas.make(task.spec["arena"], **task.spec["params"])  # noqa: E731
    agents = list(make_env().possible_agents)
    rollouts = collect(make_env, {a: policy for a in agents}, [seed], n, max_new_tokens=max_new_tokens,
                       temperature=temperature, sample_seed=seed)
    success = [float(np.mean(list(r.returns().values())) > 0) for r in rollouts]
    cfg = TrainConfig(arena=task.spec["arena"], advantage="mean")
    return success, [(t, a) for t, a in samples(rollouts, agents, cfg, {}, make_env) if t.completion_ids]


def arena_solve_rate(policy: Policy, task: Task, n: int = 8, seed: int = 0, max_new_tokens: int = 24) -> float:
    return float(np.mean(arena_attempts(policy, task, n, max_new_tokens=max_new_tokens, temperature=1.0, seed=seed)[0]))


def warm_start(policy: Policy, examples, cfg: WarmStart, rng: np.random.Generator) -> list[float]:
    """Mean NLL of the completions under ``policy.score`` (as ``marl.sft`` does), on (prompt, completion) pairs
    that ``examples(rng)`` draws: the proposer learns to write tasks in its family's format, the solver to answer."""
    params = [p for p in policy.model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=cfg.lr)
    policy.model.train()
    losses = []
    for _ in range(cfg.steps):
        pairs = [examples(rng) for _ in range(cfg.batch_size)]
        loss = -torch.cat(policy.score([p for p, _ in pairs], [c for _, c in pairs])).mean()
        optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optim.step()
        losses.append(loss.item())
    policy.model.eval()
    return losses


# ---------------------------------------------------------------------------- the run
@dataclass
class Record:
    """A task in the run's archive, with what is known about it."""

    task: Task
    step: int  # made at this step
    proposer: str  # "generator" or the proposer snapshot that wrote it
    solve_rate_at_creation: float
    attempts: int = 0  # all attempts during training
    solved: int = 0
    final: list[float] = field(default_factory=list)  # the final solver's attempts

    def row(self) -> dict[str, Any]:
        measured = self.final or None
        return {"prompt": self.task.prompt, "answer": self.task.answer,
                "solve_rate": float(np.mean(measured)) if measured else self.solved / max(1, self.attempts),
                "n_samples": len(measured) if measured else self.attempts,
                "family": self.task.family, "difficulty": self.task.difficulty, "step": self.step,
                "proposer": self.proposer, "solve_rate_at_creation": self.solve_rate_at_creation,
                "train_attempts": self.attempts, "train_solve_rate": self.solved / max(1, self.attempts),
                "spec": json.dumps(self.task.spec, sort_keys=True)}


def run(cfg: CurriculumConfig, out: str | Path, progress: bool = True, evaluate=None) -> dict[str, Any]:
    """The whole loop; writes the run folder ``out`` and returns the history and the policies.
    ``evaluate(solver) -> dict`` (optional) is called every tenth step and at the end, e.g. held-out accuracy."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    family = load_family(cfg.family, **cfg.family_params)
    arena_family = cfg.family.startswith("arena_")
    levels = cfg.proposer.difficulties or list(range(1, family.max_difficulty + 1))

    solver = load_policy(cfg.solver.policy)
    solver_cfg = policy_cfg(cfg.solver.lr, cfg.solver.clip, cfg.solver.kl_coef)
    solver_optim = torch.optim.AdamW([p for p in solver.model.parameters() if p.requires_grad], lr=cfg.solver.lr)
    if cfg.solver.warm_start and cfg.solver.warm_start.steps and not arena_family:
        ws = cfg.solver.warm_start
        warm_start(solver, lambda r: _solved_example(family, ws.difficulties, r), ws, rng)
    solver_ref = solver.clone() if cfg.solver.kl_coef > 0 else None  # the warm-started solver: what the KL holds on to
    proposer = proposer_optim = None
    snapshot = "generator"
    if cfg.proposer.kind == "policy":
        proposer = load_policy(cfg.proposer.policy)
        proposer_optim = torch.optim.AdamW([p for p in proposer.model.parameters() if p.requires_grad], lr=cfg.proposer.lr)
        if cfg.proposer.warm_start and cfg.proposer.warm_start.steps:
            ws = cfg.proposer.warm_start
            warm_start(proposer, lambda r: _proposal_example(family, ws.difficulties, r), ws, rng)
        snapshot = _snapshot(proposer, out, 0)
    proposer_cfg = policy_cfg(cfg.proposer.lr, 0.2)

    tracker = _tracker(cfg, out)
    buffer = TaskBuffer(cfg.buffer)
    # frontier: moving averages of each level's solve rate and of the proposer reward its tasks earned (optimistic starts)
    level_rate, level_reward = {d: 0.5 for d in levels}, {d: learnability(0.5, cfg.proposer.reward) for d in levels}
    archive: dict[str, Record] = {}
    history: list[dict[str, float]] = []
    solver_samples = solver_updates = 0
    start = time.perf_counter()
    columns = (TextColumn("[bold]curriculum"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"), TimeElapsedColumn())
    try:
        with Progress(*columns, console=console, disable=not progress) as bar:
            job = bar.add_task("curriculum", total=cfg.steps, info="")
            for step in range(cfg.steps):
                # ---- replay from the buffer, or new tasks from the proposer
                replays = int(rng.binomial(cfg.tasks_per_step, cfg.buffer.replay_prob)) if buffer.ready else 0
                replayed = buffer.sample(replays, step, rng)
                wanted = cfg.tasks_per_step - len(replayed)
                texts, parsed, targets = _propose(family, proposer, cfg.proposer, levels, wanted, rng, seed=cfg.seed * 1_000_003 + step,
                                                  frontier=(level_reward, level_rate))
                new = [t for t in parsed if isinstance(t, Task)]
                tasks = replayed + new
                # ---- the solver attempts every task n times
                n = cfg.solver.attempts
                seed = cfg.seed * 7_777_777 + step * 104_729
                if arena_family:
                    results = [arena_attempts(solver, t, n, max_new_tokens=cfg.solver.max_new_tokens,
                                              temperature=cfg.solver.temperature, seed=seed + k) for k, t in enumerate(tasks)]
                    rewards, learn = [r for r, _ in results], [s for _, ss in results for s in ss]
                else:
                    rewards, turns = attempt(solver, family, tasks, n, max_new_tokens=cfg.solver.max_new_tokens,
                                             temperature=cfg.solver.temperature, seed=seed)
                    learn = grpo_batch(rewards, turns)
                p = [float(np.mean(r)) for r in rewards]
                # ---- solver update: GRPO over each task's attempts
                stats: dict[str, float] = {}
                if learn:
                    stats |= {f"solver/{k}": v for k, v in update(solver, solver_optim, learn, solver_cfg, solver_ref).items()}
                    solver_updates += 1
                solver_samples += n * len(tasks)
                # ---- proposer update: learnability minus repetition, penalty for invalid texts
                rate_of = {i: p[len(replayed) + new.index(t)] for i, t in enumerate(parsed) if isinstance(t, Task)}
                prop_rewards = proposer_rewards(parsed, rate_of, cfg.proposer) if parsed else []
                if proposer is not None and parsed:
                    g = cfg.proposer.group_size
                    adv = [r - float(np.mean(prop_rewards[k - k % g:k - k % g + g])) for k, r in enumerate(prop_rewards)]
                    batch = [(Turn("proposer", 0, prompt, o.prompt_ids, o.completion_ids, o.logprobs, o.text, True, False), a)
                             for (prompt, o), a in zip(texts, adv) if a != 0 and o.completion_ids]
                    if batch:
                        stats |= {f"proposer/{k}": v for k, v in update(proposer, proposer_optim, batch, proposer_cfg).items()}
                    if (step + 1) % cfg.proposer.snapshot_every == 0:
                        snapshot = _snapshot(proposer, out, step + 1)
                # ---- buffer and archive
                for task, rs in zip(tasks, rewards):
                    score = buffer_score(rs, cfg.buffer.score)
                    buffer.add(task, score, step)
                    if task.difficulty in level_rate:
                        d, rate = task.difficulty, float(np.mean(rs))
                        level_rate[d] = 0.5 * level_rate[d] + 0.5 * rate
                        level_reward[d] = 0.5 * level_reward[d] + 0.5 * learnability(rate, cfg.proposer.reward)
                    rec = archive.get(task.key())
                    if rec is None:
                        rec = archive[task.key()] = Record(task, step, snapshot, float(np.mean(rs)))
                    rec.attempts += len(rs)
                    rec.solved += int(sum(rs))
                # ---- logging
                metrics = _step_metrics(tasks, p, len(replayed), parsed, prop_rewards, targets, buffer, step, levels)
                metrics |= stats | {"solver/samples": solver_samples, "solver/updates": solver_updates,
                                    "time/elapsed_s": time.perf_counter() - start}
                if evaluate is not None and (step % 10 == 9 or step == cfg.steps - 1):
                    metrics |= {f"eval/{k}": v for k, v in evaluate(solver).items()}
                history.append({"step": step, **metrics})
                if tracker:
                    tracker.log_metrics(metrics, step)
                bar.update(job, advance=1, info=f"solve {metrics['solve/mean']:.2f}  difficulty {metrics['difficulty/mean']:.1f}  "
                                                 f"buffer {len(buffer)}")
                if cfg.max_minutes is not None and time.perf_counter() - start > 60 * cfg.max_minutes:
                    break
        # ---- the final solver's solve rate of every archived task: the exported difficulty estimate
        if cfg.final_eval and not arena_family:
            records = list(archive.values())
            finals, _ = attempt(solver, family, [r.task for r in records], cfg.solver.attempts,
                                max_new_tokens=cfg.solver.max_new_tokens, temperature=cfg.solver.temperature, seed=cfg.seed + 99_991)
            for r, f in zip(records, finals):
                r.final = f
        solver.save(out / "solver")
        if proposer is not None:
            _snapshot(proposer, out, "final")
        rows = [r.row() for r in archive.values()]
        write_jsonl(out / ARCHIVE, rows)
        export_path = export(out, out / EXPORT, order="difficulty")
        summary = {"steps": len(history), "tasks": len(rows), "solver_samples": solver_samples, "solver_updates": solver_updates,
                   "minutes": (time.perf_counter() - start) / 60, "run_id": tracker.run_id if tracker else None,
                   "tracking_uri": tracker.tracking_uri if tracker else None}
        (out / RUN_FILE).write_text(json.dumps(summary, indent=2))
        if tracker:
            tracker.log_artifact(export_path)
            tracker.log_learning_curve(history, ["solve/mean", "difficulty/mean", "proposer/reward_mean", "buffer/score_mean"])
            tracker.close()
    except BaseException:
        if tracker:
            tracker.close("FAILED")
        raise
    return {"history": history, "solver": solver, "proposer": proposer, "archive": archive, "summary": summary}


def _solved_example(family, levels: list[int], rng: np.random.Generator) -> tuple[str, str]:
    """A task and its solution; families whose responses have a fixed format give one that teaches only the format
    beyond the task's own difficulty (``format_example``)."""
    task = family.generate(int(rng.choice(levels)), rng)
    return task.prompt, family.format_example(task, rng) if hasattr(family, "format_example") else family.solution(task)


def _proposal_example(family, levels: list[int], rng: np.random.Generator) -> tuple[str, str]:
    d = int(rng.choice(levels))
    return family.propose_prompt(d), family.render(family.generate(d, rng))


def frontier_scores(level_reward: dict[int, float], level_rate: dict[int, float], levels: list[int]) -> np.ndarray:
    """Levels by the proposer reward their recent tasks earned (the configured learnability of each task's own solve
    rate): with Absolute Zero's 1 - p that is the hardest level the solver solves at all, not the one nearest
    p = 1/2. Among equal scores (all solved or never solved) the lowest unsolved level comes first: the next step up."""
    return np.array([level_reward[d] + 1e-6 * (level_rate[d] < 0.5) * (len(levels) - k) for k, d in enumerate(levels)])


def _propose(family, proposer, cfg: ProposerConfig, levels: list[int], wanted: int, rng: np.random.Generator, seed: int,
             frontier: tuple[dict[int, float], dict[int, float]] | None = None):
    """``wanted`` new tasks (or, for a policy, ``group_size`` texts per target difficulty, rounded up): the texts with
    their prompts, the parsed tasks (or Invalid) and the target difficulties."""
    if wanted <= 0:
        return [], [], []
    if proposer is None:
        p = None
        if cfg.kind == "frontier" and frontier:
            p = rank_probabilities(frontier_scores(*frontier, levels), cfg.frontier_temperature)
            p = (1 - cfg.frontier_explore) * p + cfg.frontier_explore / len(levels)
        targets = [int(d) for d in rng.choice(levels, size=wanted, p=p)]
        return [], [family.generate(d, rng) for d in targets], targets
    groups = math.ceil(wanted / cfg.group_size)
    targets = [int(d) for d in rng.choice(levels, size=groups) for _ in range(cfg.group_size)]
    prompts = [family.propose_prompt(d) for d in targets]
    outs = proposer.generate(prompts, max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, seed=seed,
                             stop=("</task>",))
    parsed = []
    for o in outs:
        try:
            parsed.append(family.parse(o.text))
        except Exception as e:  # noqa: BLE001 -- a validator bug must not end the run: the text is an invalid task
            parsed.append(Invalid(f"validator error: {type(e).__name__}: {e}"))
    return list(zip(prompts, outs)), parsed, targets


def _step_metrics(tasks, p, n_replayed, parsed, prop_rewards, targets, buffer, step, levels) -> dict[str, float]:
    """Solve rates and the difficulty distribution of the step's tasks, the proposer's reward, the buffer."""
    m: dict[str, float] = {"solve/mean": float(np.mean(p)) if p else float("nan"),
                           "solve/informative": float(np.mean([0 < x < 1 for x in p])) if p else float("nan"),  # tasks that teach
                           "difficulty/mean": float(np.mean([t.difficulty for t in tasks])) if tasks else float("nan"),
                           "tasks/replayed": float(n_replayed), "tasks/new": float(len(tasks) - n_replayed)}
    for d in levels:
        at = [x for t, x in zip(tasks, p) if t.difficulty == d]
        m[f"difficulty/share_{d}"] = len(at) / max(1, len(tasks))
        if at:
            m[f"solve/level_{d}"] = float(np.mean(at))
    if parsed:
        valid = [t for t in parsed if isinstance(t, Task)]
        m |= {"proposer/reward_mean": float(np.mean(prop_rewards)), "proposer/valid_rate": len(valid) / len(parsed),
              "proposer/target_difficulty_mean": float(np.mean(targets))}
        if valid:
            m["proposer/difficulty_mean"] = float(np.mean([t.difficulty for t in valid]))
            m["proposer/unique_rate"] = len({t.key() for t in valid}) / len(valid)
    return m | buffer.stats(step)


def _snapshot(policy: Policy, out: Path, step) -> str:
    name = f"step_{step:05d}" if isinstance(step, int) else str(step)
    policy.save(out / "proposer" / name)
    return f"proposer/{name}"


def _tracker(cfg: CurriculumConfig, out: Path):
    if not cfg.tracking.enabled:
        return None
    from marl.tracking import Tracker

    return Tracker(cfg.tracking.experiment, cfg.model_dump(mode="json"), tracking_uri=cfg.tracking.tracking_uri,
                   tags={"family": cfg.family, "proposer": cfg.proposer.kind, "run_dir": str(out)})


# ---------------------------------------------------------------------------- export
def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def read_archive(run_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / ARCHIVE
    if not path.is_file():
        raise ConfigError(f"{run_dir}: no {ARCHIVE} (not a finished curriculum run folder)")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def export(run_dir: str | Path, out: str | Path, order: Literal["difficulty", "creation"] = "difficulty",
           min_samples: int = 0) -> Path:
    """The run's tasks as JSONL rows for single-agent trainers. ``difficulty``: by difficulty level, then from the
    most to the least solved (an easy-to-hard curriculum); ``creation``: in the order the tasks were made."""
    rows = [r for r in read_archive(run_dir) if r["n_samples"] >= min_samples]
    if order == "difficulty":
        rows.sort(key=lambda r: (r["difficulty"], -r["solve_rate"], r["step"]))
    elif order == "creation":
        rows.sort(key=lambda r: r["step"])
    else:
        raise ValueError(f"order must be difficulty or creation, got {order!r}")
    out = Path(out)
    write_jsonl(out, rows)
    return out


# ---------------------------------------------------------------------------- command line
def add_commands(sub: argparse._SubParsersAction) -> None:
    """``agora curriculum run CONFIG --dir RUN`` and ``agora curriculum export RUN --out tasks.jsonl``."""
    p = sub.add_parser("curriculum", help="auto-curricula: proposer/solver self-play, a prioritized task buffer, JSONL export")
    cmds = p.add_subparsers(dest="curriculum_command", required=True, metavar="COMMAND")
    q = cmds.add_parser("run", help="generate a curriculum from a YAML config (see configs/curriculum_*.yaml)")
    q.add_argument("config")
    q.add_argument("--dir", default=None, help="the run folder (default: runs/curriculum)")
    q.add_argument("--steps", type=int)
    q.add_argument("--seed", type=int)
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.set_defaults(run=run_command)
    q = cmds.add_parser("export", help="write a run's tasks as JSONL rows (prompt, answer, solve_rate, ...)")
    q.add_argument("run_dir", metavar="RUN")
    q.add_argument("--out", required=True, help="the JSONL file to write")
    q.add_argument("--order", choices=["difficulty", "creation"], default="difficulty")
    q.add_argument("--min-samples", type=int, default=0, help="leave out tasks attempted fewer times")
    q.set_defaults(run=export_command)


def run_command(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, {"steps": args.steps, "seed": args.seed})
    result = run(cfg, args.dir or "runs/curriculum", progress=not args.quiet)
    s = result["summary"]
    console.print(f"[bold]done[/]: {s['steps']} steps, {s['tasks']} tasks, {s['solver_samples']} solver samples in "
                  f"{s['minutes']:.1f} minutes; export: {Path(args.dir or 'runs/curriculum') / EXPORT}")
    if s["run_id"]:
        console.print(f"MLflow run {s['run_id']} ({s['tracking_uri']})")
    return 0


def export_command(args: argparse.Namespace) -> int:
    path = export(args.run_dir, args.out, order=args.order, min_samples=args.min_samples)
    n = sum(1 for _ in path.open())
    console.print(f"{n} tasks written to {path} (order: {args.order})")
    return 0
