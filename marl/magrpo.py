"""MAGRPO: multi-agent group-relative policy optimisation for LLM agents, in one file.

Reads top to bottom like a CleanRL trainer: config -> rollout -> advantage -> loss -> update -> logging.

For each of ``batch_size`` start states (arena seeds) we play a group of ``group_size`` joint rollouts
from that same start. Each rollout's joint return (mean or sum of the agents' discounted returns) minus
the group's mean (``advantage: mean``), also divided by the group's std (``std``), or minus the mean of
the *other* rollouts (``rloo``) is its advantage; ``batch`` centres and scales by the whole step's returns
instead of the group's (REINFORCE++'s global normalisation), so a group whose rollouts all fail still learns
that they failed, where a group baseline gives it nothing. Centralised training gives that one advantage to every
agent of the rollout, applied to the tokens of each of its completions. With ``credit: tree`` every move is
sampled ``group_size`` times from the same state instead (as in the MAGRPO authors' per-turn training):
a node's value is its joint reward plus gamma times the mean of its children's values, and each child's
advantage is taken within its siblings. With ``credit: cross-mean`` or ``cross-max`` (games of one simultaneous
round) every pairing of the group's moves is replayed, as in the MAGRPO authors' cross joint mode: each move's
credit is the mean, or the best, joint return of the ``group_size ** (agents - 1)`` episodes it plays in, and
advantages are taken among each agent's own moves. The best is the optimistic credit of lenient learners (Panait
et al. 2006): a move is not blamed for a partner's exploration, the reason independent learners of the climbing
game settle below its optimum. Only a centralised trainer can replay moves against each other. Baselines in the
same family:
- ``igrpo``: independent GRPO, each agent's advantage from its own return within its own group;
- ``spiral``: role-conditioned advantage estimation (SPIRAL) for zero-sum self-play with a shared
  policy: each role's return minus a moving-average baseline of that role's returns in this game.

Loss per policy: ``-min(ratio * A, clip(ratio, 1-eps, 1+eps) * A)`` over completion tokens (token-mean
or sequence-mean), ``ratio = exp(logp_new - logp_sampled)``. On the first epoch the policy has not
changed, so the sampling log-probabilities serve as the old ones without a second forward pass; more
epochs over the same batch use the clipped ratio. Optional KL to a frozen reference (k3 estimator): the
policy as it started, or a saved policy (``reference``), a fixed magnet as in magnetic mirror descent.
Optional entropy bonus (``entropy_coef``, as PPO's): estimated on the sampled tokens, whose ``log p * grad log p``
is in expectation minus the gradient of the entropy of their distributions. It keeps answers in play that
nothing rewards yet: in Lewis's game with 8 objects a listener trained without it named 3 of the 8 objects
whatever the letter, and with it (0.05) spread its answers to a pooled letter over that letter's objects.
A fixed bonus can also run away: once the answers spread, the reward's signal fades and the bonus wins (seen on
Lewis's game as both players drifting to uniform odds after reaching 0.47). ``entropy_max_ratio`` turns the bonus
off for a step while the policy's entropy, estimated on that step's samples, is above that multiple of its entropy
on the first step, as the adaptive entropy control of Skywork-OR1 does with its target. ``policy_entropy_coef``
sets it per policy, e.g. a bonus for a speaker alone. ``entropy_schedule: linear`` anneals every bonus to 0 over
``steps``: early on it keeps answers in play, late in training the reward alone chooses among them.

``signalling_coef`` (per policy id) adds positive signalling (Eccles et al. 2019) to a speaker's advantages: coef
times each completion's pointwise mutual information with its prompt among the step's prompts,
``log p(c | s) - log sum_s' q(s') p(c | s')``, less its prompt's mean. Its policy gradient is that of I(prompt;
completion). It is aimed at the trap of Lewis's games where two objects are sent on the same spread of letters:
the listener cannot tell them apart, so the reward no longer pulls them apart, and the information still does
(with 8 objects: 8 seeds of 10 at >= 0.95 against 7, configs/train_signalling_lewis8.yaml). It also sharpens each
prompt's completions, pooled ones too: two objects on one letter, no other ever sampled, stay pooled.

``explore_coef`` (per policy id) adds coef times the cross-entropy from even odds of each turn's legal answers to
the policy (``legal_cross_entropy``) to its loss. The entropy and signalling bonuses are estimated on sampled
answers, so their pull on an answer's logit fades with its probability; this one pulls every legal answer up by
coef over their number however unlikely it has become. A speaker that sends two objects on one letter and never
samples another thus keeps trying the unused letters (with 8 objects a slow seed left chance in 150 steps instead of
600, but the goal of 0.95 was not reached more often: benchmarks/lewis8_seeds.py). Each turn scores all its
legal answers, so the term suits small action sets. It follows ``entropy_schedule``.

``counterfactual_coef`` (per policy id) adds coef times a cross-entropy from the answers that would have scored best
to the policy. At a move that ends the episode, the rollout plays each legal answer on a copy of the arena
(``collect(counterfactual=...)``), and the target is even odds over the answers with the highest joint reward
(``best_answers``); the trainer, being centralised, may use what the arena knows. The policy gradient pulls on the
right answer only when it is sampled, so a listener that reads a seldom-seen letter as the wrong object is slow to
learn it, and in Lewis's games that holds two objects pooled on one letter (a new letter for one of them fails until
the listener reads it); this term teaches the listener every letter it is shown. Each such turn scores its best
answers only. With 8 objects it did not reach the goal in more seeds (0.1: 6 of 10; benchmarks/lewis8_seeds.py).

``lr_schedule: linear`` anneals every learning rate linearly to 0 over ``steps`` (CleanRL's ``anneal_lr``, TRL's default).
A solved game gives Adam almost no gradient (groups that all succeed have no advantage), so its second-moment
estimates shrink, and the next rare failure's gradient can then be taken as a step many times the learning rate:
seen on Lewis's game as pairs at 0.99 falling to 0.3 within 50 steps, or to chance within 100. With the rate annealed
none of 10 seeds fell (configs/train_signalling_lewis8.yaml).

``max_reach_weight`` > 1 weighs each move's whole loss by the inverse of its agent's own reach (the
probability of its own earlier moves in the episode), capped: a state the agent's own play seldom enters
then learns as fast as a frequent one (the counterfactual weighting of CFR), instead of following it
through the shared weights. Both terms scale alike, so each state's balance of gain and KL is unchanged.
"""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, PositiveFloat, model_validator

import arenas
from arenas.channels import ChannelConfig
from arenas.core import answer_text
from marl.policy import Policy, PolicyMapping, load_policy
from marl.rollout import Rollout, Turn, collect, replay, transcript_jsonl
from marl.workers import LocalExecutor, RayExecutor


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    arena: str
    params: dict[str, Any] = {}
    channel: ChannelConfig | None = None
    policies: PolicyMapping = PolicyMapping()
    frozen: list[str] = []  # policy ids that play but do not learn (e.g. a league opponent's snapshot)
    algorithm: Literal["magrpo", "igrpo", "spiral"] = "magrpo"
    steps: int = Field(50, ge=1)
    batch_size: int = Field(4, ge=1)  # start states per step
    group_size: int = Field(8, ge=2)  # joint rollouts per start state
    advantage: Literal["mean", "std", "rloo", "batch"] = "std"
    credit: Literal["trajectory", "tree", "cross-mean", "cross-max"] = "trajectory"  # tree: per-turn groups (group_size ** moves
    # episodes); cross-*: every pairing of the group's moves replayed (group_size ** agents episodes, one simultaneous round)
    loss_agg: Literal["token", "sequence"] = "sequence"
    joint: Literal["mean", "sum"] = "mean"  # how agents' returns make the joint return
    gamma: float = Field(1.0, ge=0, le=1)
    epochs: int = Field(1, ge=1)
    clip: float = Field(0.2, gt=0)
    kl_coef: float = Field(0.0, ge=0)
    entropy_coef: float = Field(0.0, ge=0)  # > 0: a bonus for the entropy of each sampled token's distribution (see top)
    entropy_max_ratio: PositiveFloat | None = None  # the bonus only while entropy < this x the first step's (see top)
    policy_entropy_coef: dict[str, NonNegativeFloat] = {}  # an entropy coefficient per policy id (else entropy_coef)
    signalling_coef: dict[str, NonNegativeFloat] = {}  # a positive-signalling bonus per policy id (see top)
    explore_coef: dict[str, NonNegativeFloat] = {}  # per policy id: a pull towards even odds of the legal answers (see top)
    counterfactual_coef: dict[str, NonNegativeFloat] = {}  # per policy id: a pull towards its best final answers (see top)
    max_reach_weight: float = Field(1.0, ge=1)  # > 1: each move's loss times 1 / its agent's own reach, capped here
    reference: str | None = None  # the KL's reference, a saved policy (a fixed magnet, as in MMD); default: each learner as it started
    spiral_decay: float = Field(0.95, ge=0, lt=1)
    lr: float = Field(1e-4, gt=0)
    policy_lr: dict[str, PositiveFloat] = {}  # a learning rate per policy id (else lr): e.g. a listener slower than its speaker
    lr_schedule: Literal["constant", "linear"] = "constant"  # linear: every rate falls to 0 at `steps` (see top)
    entropy_schedule: Literal["constant", "linear"] = "constant"  # linear: the entropy bonus falls to 0 at `steps` (see top)
    max_grad_norm: float = 1.0
    grad_accum: int = Field(1, ge=1)  # micro-batches per update (memory)
    max_new_tokens: int = Field(16, ge=1)
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    seed: int = 0
    out: str = "runs/train"
    experiment: str = "agora"
    tracking_uri: str | None = None
    tracking: bool = True
    transcripts_every: int = Field(10, ge=1)
    max_minutes: float | None = None
    executor: Literal["local", "ray"] = "local"
    num_workers: int = Field(1, ge=1)  # rollout partitions (Ray actors with executor: ray)
    ray_address: str | None = None  # an existing Ray cluster; default: start one on this machine

    @model_validator(mode="after")
    def _credit_is_centralised(self) -> TrainConfig:
        if self.credit != "trajectory" and self.algorithm != "magrpo":
            raise ValueError(f"credit: {self.credit} is defined for algorithm magrpo only, got {self.algorithm}")
        return self

    @model_validator(mode="after")
    def _batch_advantage_takes_whole_rollouts(self) -> TrainConfig:
        if self.advantage == "batch" and self.credit != "trajectory":
            raise ValueError(f"advantage: batch normalises whole rollouts over the step; credit: {self.credit} compares "
                             "moves among their siblings (use mean, std or rloo)")
        return self


# ---------------------------------------------------------------------------- advantages
def group_relative(returns: np.ndarray, mode: str) -> np.ndarray:
    """Advantages of one group's returns (shape G)."""
    if mode == "rloo":
        return returns - (returns.sum() - returns) / (len(returns) - 1)
    centred = returns - returns.mean()
    return centred / (returns.std() + 1e-6) if mode in ("std", "batch") else centred


def joint_return(returns: Any, cfg: TrainConfig) -> np.ndarray:
    """The agents' returns (last axis) made one joint return: their mean or sum (``cfg.joint``)."""
    returns = np.asarray(returns, dtype=float)
    return returns.mean(-1) if cfg.joint == "mean" else returns.sum(-1)


def advantages(rollouts: list[Rollout], agents: list[str], cfg: TrainConfig, baselines: dict[str, float]) -> list[dict[str, float]]:
    """One advantage per rollout and agent (identical across agents for MAGRPO)."""
    returns = np.array([[r.returns(cfg.gamma)[a] for a in agents] for r in rollouts])  # (N, agents)
    out = np.zeros_like(returns)
    groups = np.array([0 if cfg.advantage == "batch" else r.group for r in rollouts])  # batch: the step is one group
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        if cfg.algorithm == "magrpo":
            out[idx] = group_relative(joint_return(returns[idx], cfg), cfg.advantage)[:, None]
        elif cfg.algorithm == "igrpo":
            for j in range(len(agents)):
                out[idx, j] = group_relative(returns[idx, j], cfg.advantage)
    if cfg.algorithm == "spiral":  # role baseline: per game (this arena) and role (agent id)
        for j, a in enumerate(agents):
            out[:, j] = returns[:, j] - baselines.get(a, 0.0)
            baselines[a] = cfg.spiral_decay * baselines.get(a, returns[:, j].mean()) + (1 - cfg.spiral_decay) * returns[:, j].mean()
    return [dict(zip(agents, row)) for row in out.tolist()]


def tree_advantages(rollouts: list[Rollout], agents: list[str], cfg: TrainConfig) -> list[tuple[Turn, float]]:
    """Per-turn credit over the trees of ``collect(tree=True)``: each move's advantage among its siblings."""
    step_reward: dict[tuple, float] = {}
    turn: dict[tuple, Turn] = {}
    children: dict[tuple, set[tuple]] = {}
    for r in rollouts:
        at_tick: dict[int, list[float]] = {}
        for a in agents:
            for t, x in r.rewards.get(a, []):
                at_tick.setdefault(t, [0.0] * len(agents))[agents.index(a)] += x
        for t in r.turns:
            node = (r.group, *t.path)
            rewards = at_tick.get(t.tick, [0.0] * len(agents))
            step_reward[node] = float(joint_return(rewards, cfg))
            turn[node] = t
            children.setdefault(node[:-1], set()).add(node)

    @functools.cache
    def value(node: tuple) -> float:
        kids = children.get(node)
        return step_reward[node] + (cfg.gamma * float(np.mean([value(k) for k in kids])) if kids else 0.0)

    out = []
    for kids in children.values():
        kids = sorted(kids)
        for k, a in zip(kids, group_relative(np.array([value(k) for k in kids]), cfg.advantage)):
            out.append((turn[k], float(a)))
    return out


def cross_advantages(rollouts: list[Rollout], agents: list[str], cfg: TrainConfig,
                     make_env: Callable[[], Any]) -> list[tuple[Turn, float]]:
    """Each agent's moves of a group credited over every pairing with the others' moves of that group (see top)."""
    out = []
    for g in sorted({r.group for r in rollouts}):
        group = [r for r in rollouts if r.group == g]
        moves = {a: [t for r in group for t in r.turns if t.agent == a] for a in agents}
        if any(len(m) != len(group) for m in moves.values()):
            raise ValueError(f"credit: {cfg.credit} needs every agent to move exactly once per episode; "
                             f"{cfg.arena} gave {', '.join(f'{a}: {len(m)}' for a, m in moves.items())} moves in {len(group)} episodes")
        joint = np.empty([len(group)] * len(agents))
        seen: dict[tuple[str, ...], float] = {}  # identical answers replay once
        for idx in itertools.product(range(len(group)), repeat=len(agents)):
            pairing = {a: moves[a][k] for a, k in zip(agents, idx)}
            key = tuple(m.text for m in pairing.values())
            if key not in seen:
                returns = replay(make_env, group[0].seed, pairing, cfg.gamma)
                seen[key] = float(joint_return([returns[a] for a in agents], cfg))
            joint[idx] = seen[key]
        for j, a in enumerate(agents):
            others = tuple(k for k in range(len(agents)) if k != j)
            credit = joint.max(axis=others) if cfg.credit == "cross-max" else joint.mean(axis=others)
            out += [(t, float(adv)) for t, adv in zip(moves[a], group_relative(credit, cfg.advantage))]
    return out


def samples(rollouts: list[Rollout], agents: list[str], cfg: TrainConfig, baselines: dict[str, float],
            make_env: Callable[[], Any]) -> list[tuple[Turn, float]]:
    """Every completion to learn from, with its advantage."""
    if cfg.credit == "tree":
        return tree_advantages(rollouts, agents, cfg)
    if cfg.credit.startswith("cross"):
        return cross_advantages(rollouts, agents, cfg, make_env)
    advs = advantages(rollouts, agents, cfg, baselines)
    return [(t, adv[t.agent]) for r, adv in zip(rollouts, advs) for t in r.turns]


# ---------------------------------------------------------------------------- loss
def policy_loss(policy: Policy, turns: list[Turn], advs: list[float], cfg: TrainConfig, ref: Policy | None,
                normaliser: float, entropy_coef: float | None = None, explore_coef: float = 0.0,
                counterfactual_coef: float = 0.0) -> tuple[torch.Tensor, dict[str, float]]:
    """Clipped policy-gradient loss (plus KL, entropy, exploration and counterfactual terms) of one micro-batch, already
    divided by ``normaliser``; ``entropy_coef`` is this step's (``step_entropy_coef``), by default ``cfg.entropy_coef``."""
    entropy_coef = cfg.entropy_coef if entropy_coef is None else entropy_coef
    prompts, completions = [t.prompt_ids for t in turns], [t.completion_ids for t in turns]
    new = policy.score(prompts, completions)
    with torch.no_grad():
        refs = ref.score(prompts, completions) if ref is not None and cfg.kl_coef > 0 else [None] * len(turns)
    total = torch.zeros(())
    kl_sum, nll_sum, clipped = 0.0, 0.0, 0
    for t, a, lp, ref_lp in zip(turns, advs, new, refs):
        old = torch.tensor(t.logprobs, dtype=lp.dtype, device=lp.device)
        ratio = torch.exp(lp - old)
        per_token = -torch.min(ratio * a, torch.clamp(ratio, 1 - cfg.clip, 1 + cfg.clip) * a)
        if ref_lp is not None:
            delta = ref_lp - lp
            k3 = torch.exp(delta) - delta - 1
            per_token = per_token + cfg.kl_coef * k3
            kl_sum += float(k3.detach().mean())
        if entropy_coef > 0:  # E[log p * grad log p] = -grad H: minimising this term raises the entropy
            per_token = per_token + entropy_coef * lp.detach() * lp
        weight = float(np.exp(min(-t.reach_logprob, np.log(cfg.max_reach_weight))))  # min(cap, 1 / reach), no overflow
        total = total + weight * (per_token.sum() if cfg.loss_agg == "token" else per_token.mean())
        nll_sum += float(-lp.detach().mean())
        clipped += int(((ratio - 1).abs() > cfg.clip).sum())
    explore = legal_cross_entropy(policy, turns, cfg) if explore_coef > 0 else torch.zeros(())
    hindsight = (legal_cross_entropy(policy, turns, cfg, [best_answers(t, cfg) for t in turns])
                 if counterfactual_coef > 0 else torch.zeros(()))
    total = total + explore_coef * explore + counterfactual_coef * hindsight
    return total / normaliser, {"kl": kl_sum, "nll": nll_sum, "clipped": clipped, "explore": float(explore.detach()),
                                "counterfactual": float(hindsight.detach())}


def legal_cross_entropy(policy: Policy, turns: list[Turn], cfg: TrainConfig,
                        targets: list[np.ndarray] | None = None) -> torch.Tensor:
    """The sum over ``turns`` of the cross-entropy from a target distribution over the turn's legal answers (by
    default even odds) to the policy: minus the target-weighted log-probability of the answers that play them
    (token-mean or sum, as the loss). Each answer with a positive target is scored once per distinct prompt, weighted by
    its turns' summed targets; turns without legal actions or with an all-zero target add nothing."""
    weights: dict[tuple, np.ndarray] = {}
    for i, t in enumerate(turns):
        target = np.full(len(t.legal), 1 / max(1, len(t.legal))) if targets is None else targets[i]
        if t.legal and target.any():
            key = (tuple(t.prompt_ids), t.legal)
            weights[key] = weights.get(key, 0) + target
    if not weights:
        return torch.zeros(())
    scored = [(list(p), answer_text(a), w) for (p, legal), ws in weights.items() for a, w in zip(legal, ws) if w > 0]
    lps = policy.score([p for p, _, _ in scored], [c for _, c, _ in scored])
    per_answer = torch.stack([lp.mean() if cfg.loss_agg == "sequence" else lp.sum() for lp in lps])
    return -(torch.tensor([w for *_, w in scored], dtype=per_answer.dtype) * per_answer).sum()


def best_answers(turn: Turn, cfg: TrainConfig) -> np.ndarray:
    """Even odds over the legal answers whose counterfactual joint reward is the highest (``Turn.counterfactual``);
    all zeros when the turn has none or every answer would have scored alike."""
    if not turn.counterfactual:
        return np.zeros(len(turn.legal))
    joint = joint_return([list(r.values()) for r in turn.counterfactual], cfg)  # every outcome has every agent's reward
    best = np.isclose(joint, joint.max())
    return np.zeros(len(joint)) if best.all() else best / best.sum()


def update(policy: Policy, optim: torch.optim.Optimizer, batch: list[tuple[Turn, float]], cfg: TrainConfig,
           ref: Policy | None = None, entropy_coef: float | None = None, explore_coef: float = 0.0,
           counterfactual_coef: float = 0.0) -> dict[str, float]:
    """``cfg.epochs`` optimiser steps of one policy on its (turn, advantage) samples, in ``cfg.grad_accum`` micro-batches,
    with this step's entropy coefficient (by default ``cfg.entropy_coef``), exploration and counterfactual coefficients."""
    entropy_coef = cfg.entropy_coef if entropy_coef is None else entropy_coef
    norm = sum(len(t.completion_ids) for t, _ in batch) if cfg.loss_agg == "token" else len(batch)
    chunks = np.array_split(np.arange(len(batch)), min(cfg.grad_accum, len(batch)))
    policy.model.train()
    for _ in range(cfg.epochs):
        optim.zero_grad(set_to_none=True)
        agg = {"loss": 0.0, "kl": 0.0, "nll": 0.0, "clipped": 0, "explore": 0.0, "counterfactual": 0.0}
        for chunk in chunks:
            loss, s = policy_loss(policy, [batch[i][0] for i in chunk], [batch[i][1] for i in chunk], cfg, ref, norm, entropy_coef,
                                  explore_coef, counterfactual_coef)
            loss.backward()
            agg["loss"] += float(loss.detach())
            for k in ("kl", "nll", "clipped", "explore", "counterfactual"):
                agg[k] += s[k]
        grad_norm = torch.nn.utils.clip_grad_norm_(policy.model.parameters(), cfg.max_grad_norm)
        optim.step()
    tokens = sum(len(t.completion_ids) for t, _ in batch)
    stats = {"loss": agg["loss"], "kl": agg["kl"] / len(batch), "entropy": agg["nll"] / len(batch),
             "grad_norm": float(grad_norm), "clip_fraction": agg["clipped"] / max(1, tokens)}
    if cfg.entropy_coef > 0 or cfg.policy_entropy_coef:
        stats["entropy_coef"] = entropy_coef
    if explore_coef > 0:
        stats["legal_cross_entropy"] = agg["explore"] / len(batch)
    if counterfactual_coef > 0:
        stats["counterfactual_cross_entropy"] = agg["counterfactual"] / len(batch)
    return stats


def step_entropy_coef(cfg: TrainConfig, batch: list[tuple[Turn, float]], first: list[float], coef: float) -> float:
    """This step's entropy coefficient: the policy's ``coef``, or 0 while its entropy (mean negative
    log-probability of its sampled tokens, as logged) is above ``entropy_max_ratio`` times ``first[0]``, its
    entropy on its first step (recorded in ``first`` on that step)."""
    if cfg.entropy_max_ratio is None or coef == 0:
        return coef
    h = float(np.mean([-np.mean(t.logprobs) for t, _ in batch]))
    if not first:
        first.append(h)
    return coef if h < cfg.entropy_max_ratio * first[0] else 0.0


def signalling_bonus(policy: Policy, batch: list[tuple[Turn, float]], coef: float) -> tuple[list[tuple[Turn, float]], float]:
    """Positive signalling (see top): each advantage plus ``coef`` times its completion's pointwise mutual information
    with its prompt, less the mean over its prompt's samples (a baseline: unbiased, less variance). Every distinct
    completion is scored under every distinct prompt of the batch, without gradients. Returns the new batch and
    the estimate of I(prompt; completion) in nats."""
    prompts = {p: i for i, p in enumerate(dict.fromkeys(tuple(t.prompt_ids) for t, _ in batch))}
    comps = {c: i for i, c in enumerate(dict.fromkeys(tuple(t.completion_ids) for t, _ in batch))}
    with torch.no_grad():
        lps = policy.score([list(p) for p in prompts for _ in comps], [list(c) for _ in prompts for c in comps])
    table = torch.stack([lp.double().sum() for lp in lps]).view(len(prompts), len(comps))  # log p(c | s)
    s_idx = torch.tensor([prompts[tuple(t.prompt_ids)] for t, _ in batch])
    c_idx = torch.tensor([comps[tuple(t.completion_ids)] for t, _ in batch])
    counts = torch.bincount(s_idx, minlength=len(prompts)).double()  # samples per prompt; q = counts / len(batch)
    pmi = table[s_idx, c_idx] - torch.logsumexp(table + (counts / len(batch)).log()[:, None], 0)[c_idx]
    baseline = torch.zeros(len(prompts), dtype=pmi.dtype).index_add_(0, s_idx, pmi) / counts
    bonus = coef * (pmi - baseline[s_idx])
    return [(t, a + float(b)) for (t, a), b in zip(batch, bonus)], float(pmi.mean())


# ---------------------------------------------------------------------------- training
def trainable(policy: Policy) -> bool:
    return hasattr(policy, "model") and any(p.requires_grad for p in policy.model.parameters())


def train(cfg: TrainConfig, progress: bool = True) -> dict[str, Any]:
    torch.manual_seed(cfg.seed)
    make_env = lambda: arenas.make(cfg.arena, channel=cfg.channel.model_dump() if cfg.channel else None, **cfg.params)  # noqa: E731
    agents = list(make_env().possible_agents)
    policies = cfg.policies.build(agents, arena=cfg.arena)
    names = {id(p): pid for pid in cfg.policies.policies for a, p in policies.items()
             if cfg.policies.mapping.get(a, next(iter(cfg.policies.policies))) == pid}
    for key, ids in (("frozen", cfg.frozen), ("policy_lr", cfg.policy_lr), ("policy_entropy_coef", cfg.policy_entropy_coef),
                     ("signalling_coef", cfg.signalling_coef), ("explore_coef", cfg.explore_coef),
                     ("counterfactual_coef", cfg.counterfactual_coef)):
        unknown = sorted(set(ids) - set(cfg.policies.policies))
        if unknown:
            raise ValueError(f"{key}: {', '.join(unknown)} not among the policies ({', '.join(cfg.policies.policies)})")
    learners = {id(p): p for p in policies.values() if trainable(p) and names.get(id(p)) not in cfg.frozen}
    if not learners:
        raise ValueError("no trainable policy in the mapping: give at least one agent a tiny or hf policy that is not frozen")
    optims = {k: torch.optim.AdamW([q for q in p.model.parameters() if q.requires_grad], fused=True,  # fused: one kernel per step
                                   lr=cfg.policy_lr.get(names.get(k, ""), cfg.lr)) for k, p in learners.items()}
    refs = {}  # frozen KL references: each learner as it starts, or one saved policy for all (a fixed magnet)
    if cfg.kl_coef > 0:
        magnet = load_policy(cfg.reference, cfg.arena).clone() if cfg.reference else None
        refs = {k: magnet if magnet is not None else p.clone() for k, p in learners.items()}
    out = Path(cfg.out)
    tracker = _tracker(cfg, agents, policies)
    arena_kwargs = {"channel": cfg.channel.model_dump() if cfg.channel else None, **cfg.params}
    hindsight = frozenset(a for a in agents if cfg.counterfactual_coef.get(names.get(id(policies[a]), ""), 0) > 0)
    executor = (RayExecutor(cfg.arena, arena_kwargs, cfg.policies, policies, cfg.num_workers, cfg.ray_address)
                if cfg.executor == "ray" else LocalExecutor(make_env, policies, cfg.num_workers))
    baselines: dict[str, float] = {}
    first_entropy: dict[int, list[float]] = {k: [] for k in learners}
    history: list[dict[str, float]] = []
    start = time.perf_counter()
    bar = _progress(progress, cfg.steps)
    try:
        for step in range(cfg.steps):
            # ---- rollout: batch_size start states x group_size joint samples
            t0 = time.perf_counter()
            anneal = 1 - step / cfg.steps  # the factor of the linear schedules
            if cfg.lr_schedule == "linear":
                for optim in optims.values():
                    optim.param_groups[0]["lr"] = optim.defaults["lr"] * anneal
            seeds = [cfg.seed * 1_000_003 + step * cfg.batch_size + i for i in range(cfg.batch_size)]
            rollouts = executor.run(seeds, cfg.group_size, sample_seed=cfg.seed * 7_777_777 + step * 104_729,
                                    max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p,
                                    keep_transcripts=step % cfg.transcripts_every == 0, tree=cfg.credit == "tree",
                                    counterfactual=hindsight)
            t_roll = time.perf_counter() - t0
            # ---- advantage
            learn = samples(rollouts, agents, cfg, baselines, make_env)
            # ---- loss and update, per learning policy
            stats: dict[str, float] = {}
            for key, policy in learners.items():
                name = names.get(key, "policy")  # metrics are keyed by policy id
                batch = [(t, a) for t, a in learn if policies[t.agent] is policy and t.completion_ids]
                if batch:
                    coef = step_entropy_coef(cfg, batch, first_entropy[key],
                                             cfg.policy_entropy_coef.get(names.get(key, ""), cfg.entropy_coef))
                    bonus_scale = anneal if cfg.entropy_schedule == "linear" else 1
                    coef *= bonus_scale
                    explore = cfg.explore_coef.get(name, 0.0) * bonus_scale
                    if cfg.signalling_coef.get(name, 0) > 0:
                        batch, stats[f"signalling_mi/{name}"] = signalling_bonus(policy, batch, cfg.signalling_coef[name])
                    stats |= {f"{k}/{name}": v for k, v in update(policy, optims[key], batch, cfg, refs.get(key), coef, explore,
                                                                  cfg.counterfactual_coef.get(name, 0.0)).items()}
                stats[f"lr/{name}"] = optims[key].param_groups[0]["lr"]
            # ---- logging
            metrics = step_metrics(rollouts, np.array([a for _, a in learn]), agents, cfg) | stats
            metrics |= {"time/rollout_s": t_roll, "time/step_s": time.perf_counter() - t0,
                        "speed/tokens_per_s": sum(len(t.completion_ids) for t, _ in learn) / max(t_roll, 1e-9)}
            history.append({"step": step, **metrics})
            if tracker:
                tracker.log_metrics(metrics, step)
                if rollouts[0].transcript:  # every episode of the step, as `agora play` writes them (for `agora analyze`)
                    tracker.log_text(transcript_jsonl(rollouts), f"transcripts/step_{step:05d}.jsonl")
            bar(step, metrics)
            if cfg.max_minutes is not None and time.perf_counter() - start > 60 * cfg.max_minutes:
                break
    except BaseException:
        _save(list(learners.values()), names, out, tracker)  # a crash or Ctrl-C never loses the trained weights
        if tracker:
            tracker.close("FAILED")
        raise
    finally:
        bar(None, None)
        executor.close()
    saved = _save(list(learners.values()), names, out, tracker)
    if tracker:
        tracker.log_learning_curve(history, ["reward/joint_mean", "valid_rate", "success_rate"])
        tracker.close()
    return {"history": history, "policies": policies, "saved": saved, "run_id": tracker.run_id if tracker else None}


def step_metrics(rollouts: list[Rollout], adv: np.ndarray, agents: list[str], cfg: TrainConfig) -> dict[str, float]:
    returns = np.array([[r.returns(cfg.gamma)[a] for a in agents] for r in rollouts])
    joint = joint_return(returns, cfg)
    turns = [t for r in rollouts for t in r.turns if not t.talk]
    m = {"reward/joint_mean": float(joint.mean()), "reward/joint_std": float(joint.std()),
         "success_rate": float((returns.mean(1) > 0).mean()),
         "valid_rate": float(np.mean([t.valid for t in turns])) if turns else 1.0,
         "advantage/mean": float(adv.mean()), "advantage/std": float(adv.std()), "advantage/abs_mean": float(np.abs(adv).mean()),
         "messages/per_episode": float(np.mean([r.messages for r in rollouts])),
         "messages/chars_per_episode": float(np.mean([r.message_chars for r in rollouts]))}
    for j, a in enumerate(agents):
        m[f"reward/{a}_mean"] = float(returns[:, j].mean())
        m[f"reward/{a}_std"] = float(returns[:, j].std())
    return m


def evaluate(cfg: TrainConfig, policies: dict[str, Policy], episodes: int = 64, temperature: float = 1.0, seed: int = 10**9) -> dict[str, float]:
    """Held-out start states (seeds far from training's), one rollout each: mean joint return, success, validity."""
    make_env = lambda: arenas.make(cfg.arena, channel=cfg.channel.model_dump() if cfg.channel else None, **cfg.params)  # noqa: E731
    agents = list(make_env().possible_agents)
    rollouts = collect(make_env, policies, [seed + i for i in range(episodes)], 1, max_new_tokens=cfg.max_new_tokens,
                       temperature=temperature, sample_seed=seed)
    m = step_metrics(rollouts, np.zeros(1), agents, cfg)
    return {"joint_return": m["reward/joint_mean"], "success_rate": m["success_rate"], "valid_rate": m["valid_rate"]}


# ---------------------------------------------------------------------------- plumbing
def _save(learners: list[Policy], names: dict[int, str], out: Path, tracker: Any) -> dict[str, Path]:
    saved = {}
    for p in learners:
        name = names.get(id(p), "policy")
        saved[name] = tracker.log_policy(p, name, out / "policies") if tracker else p.save(out / "policies" / name)
    return saved


def _tracker(cfg: TrainConfig, agents: list[str], policies: dict[str, Policy]) -> Any:
    if not cfg.tracking:
        return None
    from marl.tracking import Tracker

    backends = ",".join(sorted({p.backend for p in policies.values()}))
    return Tracker(cfg.experiment, cfg.model_dump(mode="json"), tracking_uri=cfg.tracking_uri,
                   tags={"arena": cfg.arena, "algorithm": cfg.algorithm, "policy_backends": backends, "agents": ",".join(agents)})


def _progress(enabled: bool, steps: int):
    """A rich progress bar showing reward and speed; ``bar(None, None)`` closes it."""
    if not enabled:
        return lambda step, metrics: None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    prog = Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("{task.fields[info]}"))
    task = prog.add_task("train", total=steps, info="")
    prog.start()

    def bar(step, metrics):
        if step is None:
            prog.stop()
            return
        prog.update(task, completed=step + 1, info=f"reward {metrics['reward/joint_mean']:+.3f}  valid {metrics['valid_rate']:.0%}  "
                                                   f"{metrics['speed/tokens_per_s']:.0f} tok/s")

    return bar
