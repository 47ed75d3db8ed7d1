"""Does MAGRPO make a Lewis pair with 8 objects agree on a code within 15 minutes, whatever the seed?

For every seed, ``configs/train_signalling_lewis8.yaml`` as it ships (a tiny GPT speaker and listener as separate
policies, warm-started by ``configs/sft_signalling_lewis8.yaml``, at most 2000 steps or 15 minutes), then
held-out play at temperature 1 (256 episodes on start seeds that training never drew). Chance is 1/8; the
goal is 0.95. The same episodes played greedily (temperature 0) tell a code that is learned but still sampled
with some noise from one that is not: two objects on one letter stay below 0.95 either way. The warm start is built
first if its folder is missing (about 7 minutes on 2 cores); every seed starts from that same one. ``--workers 1``
(default) runs one seed at a time on all cores, the goal's condition; ``--workers 2`` runs two at once on one thread
each, fewer steps per minute for each.

    python benchmarks/lewis8_seeds.py [--seeds 10] [--workers 1] [--steps N]

Measured here (10 seeds, ``--workers 2``: two runs at a time on one core each; every run stopped at its
2000 steps, after about 10 minutes):

    seed            0     1     2     3     4     5     6     7     8     9
    held-out     0.97  0.98  0.99  0.97  0.98  0.90  0.98  0.86  0.98  0.98

The goal in 8 seeds of 10 (mean 0.96). Seed 5 ended with two objects on one letter, seed 7 with two objects on
partly shared spreads of letters that the listener reads as one of them. A second measurement, on another day with
the warm start rebuilt and slower steps (1,750-2,000 steps in the 15 minutes), read 0.98, 0.71, 0.98, 0.95 (0.945),
0.74, 0.96, 0.81, 0.96, 0.69, 0.96: 5 of 10 (mean 0.87), seeds 1 and 8 still rising at the cap; runs of one config
part ways on float rounding alone. Greedy, the same policies read 1.00, 0.82, 1.00, 1.00, 0.75, 1.00, 0.83, 0.98,
0.72, 1.00 (6 of 10). With ``explore_coef: {speaker: 0.1}``, the bonuses annealed and 1500 steps, on an equally slow
day: 0.75, 0.97, 0.95, 0.93, 0.94, 0.97, 0.96, 0.97, 0.85, 0.35 (6 of 10); greedy, seeds 1-9 (seed 0's policies were
not kept): 1.00, 1.00, 1.00, 0.97, 1.00, 1.00, 1.00, 0.88, 0.45. As the goal states it (``--workers 1``: each seed
alone on 2 threads; 2000 steps in 9.9-11.5 minutes), the shipped config: 0.98, 0.75, 0.98, 0.76, 0.53, 0.85, 0.98,
0.84, 0.97, 0.96 (5 of 10, mean 0.86); greedy 1.00, 0.80, 1.00, 0.88, 0.50, 0.88, 1.00, 0.88, 1.00, 1.00. In each
seed short of the goal objects share one spread of letters: targets 3 and 4 in seeds 1, 3 and 7, 2 and 7 in seeds 3
and 5, 2 to 5 in seed 4 (still learning); the same pairs, from the one warm start every seed starts from.
Without the speaker's positive-signalling bonus (``signalling_coef``) the same table read 0.98, 0.12, 0.88, 0.98,
0.85, 0.98, 0.99, 0.97, 0.98, 0.96 (7 of 10, mean 0.87); the config's comments give it for the variants measured
before (4 to 7 seeds of 10).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT / "configs" / "train_signalling_lewis8.yaml"
SFT = ROOT / "configs" / "sft_signalling_lewis8.yaml"


def warm_start() -> None:
    """The config's warm start, built from its SFT config when missing (paths are relative to the repository)."""
    from arenas.config import load_yaml
    from marl import sft

    cfg = load_yaml(SFT, sft.SFTConfig)
    if not (Path(cfg.out) / "model.safetensors").exists():
        sft.train(cfg, show=True)


def run(seed: int, threads: int, out: str, episodes: int, steps: int | None) -> dict:
    import torch

    from arenas.config import load_yaml
    from marl.magrpo import TrainConfig, evaluate, train

    torch.set_num_threads(threads)
    cfg = load_yaml(TRAIN, TrainConfig, {"seed": seed, "out": f"{out}/seed_{seed}", "tracking": False, "steps": steps})
    start = time.perf_counter()
    result = train(cfg, progress=False)
    minutes = (time.perf_counter() - start) / 60
    history = result["history"]
    held_out = evaluate(cfg, result["policies"], episodes=episodes)
    greedy = evaluate(cfg, result["policies"], episodes=episodes, temperature=0)
    return {"seed": seed, "steps": len(history), "minutes": minutes, "held_out": held_out["success_rate"],
            "greedy": greedy["success_rate"],
            "training": sum(h["success_rate"] for h in history[-50:]) / len(history[-50:])}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=1, help="runs at a time, the cores shared between them")
    parser.add_argument("--episodes", type=int, default=256, help="held-out episodes per seed")
    parser.add_argument("--goal", type=float, default=0.95)
    parser.add_argument("--steps", type=int, default=None, help="at most this many steps (default: the config's)")
    parser.add_argument("--out", default=None, help="where the trained policies go (default: a temporary folder)")
    args = parser.parse_args()
    os.chdir(ROOT)  # the configs' paths (warm start, runs/) are relative to the repository
    out = args.out or tempfile.mkdtemp(prefix="lewis8_seeds_")
    threads = max(1, (os.cpu_count() or 1) // args.workers)
    results = []
    with ProcessPoolExecutor(args.workers) as pool, Progress(console=Console()) as progress:
        pool.submit(warm_start).result()  # in a worker: torch's threads never start in the parent that forks them
        task = progress.add_task(f"{args.seeds} seeds x up to 15 minutes", total=args.seeds)
        futures = [pool.submit(run, s, threads, out, args.episodes, args.steps) for s in range(args.seeds)]
        for future in as_completed(futures):
            r = future.result()
            results.append(r)
            progress.console.print(f"seed {r['seed']}: held-out success {r['held_out']:.3f} after {r['steps']} steps, "
                                   f"{r['minutes']:.1f} minutes")
            progress.advance(task)
    results.sort(key=lambda r: r["seed"])
    table = Table(title=f"Lewis game, 8 objects, 24 letters: {TRAIN.name}, {args.workers} run(s) at a time on "
                        f"{threads} thread(s) each; chance 0.125, goal {args.goal}")
    for column in ("seed", "steps", "minutes", "training success (last 50 steps)", f"held-out success ({args.episodes})",
                   "held-out, greedy"):
        table.add_column(column, justify="right")
    for r in results:
        table.add_row(str(r["seed"]), str(r["steps"]), f"{r['minutes']:.1f}", f"{r['training']:.3f}", f"{r['held_out']:.3f}",
                      f"{r['greedy']:.3f}")
    Console().print(table)
    reached, reached_greedy = (sum(r[k] >= args.goal for r in results) for k in ("held_out", "greedy"))
    worst = min(r["held_out"] for r in results)
    Console().print(f"goal {args.goal} reached by {reached} of {len(results)} seeds; worst {worst:.3f}, "
                    f"mean {sum(r['held_out'] for r in results) / len(results):.3f} "
                    f"(greedy: {reached_greedy} of {len(results)})")


if __name__ == "__main__":
    main()
