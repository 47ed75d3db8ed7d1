"""Does a generated curriculum teach a tiny GPT more than uniformly sampled tasks, at equal solver compute?

Family ``mirror`` (league.tasks.Mirror): write the last d letters of a 5-letter word backwards; level d + 1 is
level d plus one letter read from a new place, and a blind guess of level d succeeds with chance 10**-d. Both
arms start from the same tiny GPT, warm-started on the format only (each level's length, the first letter right,
random letters after it), then train with the same GRPO update (``marl.magrpo.update``) on the same number of
tasks per step, attempts per task and steps, so they draw the same number of solver samples (checked) and make
at most the same number of updates (a step whose tasks are all solved or all failed teaches nothing):

- ``uniform``: every task is new, at a level drawn uniformly from 1..D;
- ``curriculum``: every task is new, at a level drawn by the ``frontier`` proposer of league.curriculum: levels
  ranked by min(p, 1 - p) of their recent solve rate (the edge of the solver's ability), rank prioritisation with
  temperature 0.3, 10% uniform. ``--replay-prob`` adds Prioritized Level Replay of buffered tasks.

Measured: greedy accuracy on 200 held-out tasks of the hardest level D (their own seed), per seed, and the time.
Run: ``python benchmarks/curriculum_learning.py`` (3 seeds, 2 processes at once).

Measured here (2 shared cores, defaults: D = 5, 600 steps x 32 tasks x 8 attempts = 153,600 solver samples per arm,
lr 1e-3, temperature 1.2), held-out level-5 accuracy, uniform / curriculum: seed 0 100.0% / 0.0%, seed 1 0.0% /
0.0%, seed 2 0.0% / 0.0%; 11.0 minutes in all. The curriculum arm mastered levels 1-3 or 1-4 in every seed and then
stalled, uniform mastered everything in one seed and stalled at level 1 or 2 in the others: no advantage, and the
outcome is dominated by when (and whether) the tiny GPT learns the next letter. With lr 2e-3, temperature 1.0 and
500 steps: 10.5 / 0.0, 0.0 / 0.0, 0.0 / 0.0. Single-seed runs with Prioritized Level Replay of buffered tasks
(``--replay-prob 0.3``) were worse than without it (the solver learns replayed instances, not the next step).
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

HELD_OUT_SEED = 987_654_321


def held_out(family, level: int, n: int):
    rng = np.random.default_rng(HELD_OUT_SEED)
    return [family.generate(level, rng) for _ in range(n)]


def accuracy(policy, family, tasks, max_new_tokens: int) -> float:
    outs = policy.generate([t.prompt for t in tasks], max_new_tokens=max_new_tokens, temperature=0.0, seed=0)
    return float(np.mean([family.check(t, o.text) for t, o in zip(tasks, outs)]))


def config(arm: str, seed: int, args):
    from league.curriculum import BufferConfig, CurriculumConfig, ProposerConfig, SolverConfig, Tracking, WarmStart
    from marl.policy import PolicySpec

    gpt = {"n_layer": args.n_layer, "n_head": 4, "n_embd": args.n_embd, "block_size": 160}
    return CurriculumConfig(
        family=args.family, family_params={"max_difficulty": args.max_difficulty}, steps=args.steps,
        tasks_per_step=args.tasks_per_step, seed=seed, final_eval=False,
        buffer=BufferConfig(size=args.buffer_size, replay_prob=args.replay_prob if arm == "curriculum" else 0.0,
                            temperature=args.rank_temperature, staleness=args.staleness, min_fill=args.tasks_per_step),
        proposer=ProposerConfig(kind=args.proposer if arm == "curriculum" else "generator"),
        solver=SolverConfig(policy=PolicySpec(gpt=gpt, seed=seed), attempts=args.attempts, lr=args.lr, temperature=args.temperature,
                            max_new_tokens=args.max_new_tokens,
                            warm_start=WarmStart(steps=args.warm_steps, batch_size=32, lr=args.warm_lr, difficulties=args.warm_levels)),
        tracking=Tracking(enabled=False))


def one(arm: str, seed: int, args) -> dict:
    import torch

    torch.set_num_threads(1)
    from league.curriculum import run
    from league.tasks import load_family

    family = load_family(args.family, max_difficulty=args.max_difficulty)
    hard = held_out(family, args.max_difficulty, args.eval_tasks)
    levels = {d: held_out(family, d, 50) for d in range(1, args.max_difficulty + 1)}
    start = time.perf_counter()
    result = run(config(arm, seed, args), f"{args.out}/{arm}_{seed}", progress=False,
                 evaluate=lambda pol: {"hard": accuracy(pol, family, hard, args.max_new_tokens)})
    minutes = (time.perf_counter() - start) / 60
    solver = result["solver"]
    return {"arm": arm, "seed": seed, "hard_accuracy": accuracy(solver, family, hard, args.max_new_tokens),
            "per_level": {d: accuracy(solver, family, ts, args.max_new_tokens) for d, ts in levels.items()},
            "solver_samples": result["summary"]["solver_samples"], "solver_updates": result["summary"]["solver_updates"],
            "minutes": minutes, "curve": [(h["step"], h["eval/hard"]) for h in result["history"] if "eval/hard" in h]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--family", default="mirror", choices=["mirror", "chain"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--tasks-per-step", type=int, default=32)
    p.add_argument("--attempts", type=int, default=8)
    p.add_argument("--max-difficulty", type=int, default=5)
    p.add_argument("--max-new-tokens", type=int, default=8)
    p.add_argument("--replay-prob", type=float, default=0.0)
    p.add_argument("--proposer", default="frontier", choices=["frontier", "generator"], help="the curriculum arm's new tasks")
    p.add_argument("--rank-temperature", type=float, default=0.3)
    p.add_argument("--staleness", type=float, default=0.1)
    p.add_argument("--buffer-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--temperature", type=float, default=1.2, help="the solver's sampling temperature in training")
    p.add_argument("--warm-steps", type=int, default=300)
    p.add_argument("--warm-lr", type=float, default=2e-3)
    p.add_argument("--warm-levels", type=int, nargs="+", help="levels of the supervised warm start (default: all)")
    p.add_argument("--n-layer", type=int, default=2)
    p.add_argument("--n-embd", type=int, default=128)
    p.add_argument("--eval-tasks", type=int, default=200)
    p.add_argument("--jobs", type=int, default=2, help="runs at once (one torch thread each)")
    p.add_argument("--out", default="runs/curriculum_learning")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()
    args.warm_levels = args.warm_levels or list(range(1, args.max_difficulty + 1))

    start = time.perf_counter()
    jobs = [(arm, seed) for seed in args.seeds for arm in ("uniform", "curriculum")]
    with ProcessPoolExecutor(args.jobs) as pool:
        results = list(pool.map(one, *zip(*jobs), [args] * len(jobs)))
    total = (time.perf_counter() - start) / 60

    print(f"{args.family}, level {args.max_difficulty} held out ({args.eval_tasks} tasks, greedy); {args.steps} steps x "
          f"{args.tasks_per_step} tasks x {args.attempts} attempts per arm")
    print(f"{'seed':>4} {'uniform':>9} {'curriculum':>11} {'gap':>7} {'samples':>8} {'updates u/c':>12} {'minutes u/c':>12}")
    gaps = []
    for seed in args.seeds:
        u = next(r for r in results if r["arm"] == "uniform" and r["seed"] == seed)
        c = next(r for r in results if r["arm"] == "curriculum" and r["seed"] == seed)
        assert u["solver_samples"] == c["solver_samples"], "unequal solver samples"
        gaps.append(100 * (c["hard_accuracy"] - u["hard_accuracy"]))
        print(f"{seed:>4} {100 * u['hard_accuracy']:>8.1f}% {100 * c['hard_accuracy']:>10.1f}% {gaps[-1]:>+6.1f} "
              f"{u['solver_samples']:>8} {u['solver_updates']:>5}/{c['solver_updates']:<6} {u['minutes']:>5.1f}/{c['minutes']:<5.1f}")
    print(f"mean gap {np.mean(gaps):+.1f} points (min {min(gaps):+.1f}); wall time {total:.1f} minutes")
    for r in results:
        levels = " ".join(f"{d}:{100 * a:.0f}%" for d, a in r["per_level"].items())
        print(f"  {r['arm']:>10} seed {r['seed']}: per level {levels}; held-out curve "
              + " ".join(f"{s + 1}:{100 * a:.0f}" for s, a in r["curve"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": results, "minutes": total}, f, indent=2)


if __name__ == "__main__":
    main()
