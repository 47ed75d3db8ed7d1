"""League match throughput: in this process vs on Ray with 2 workers, and the bookkeeping per match.

Two cases on ``kuhn_poker_v0``, both played through ``league.matches`` as the league runner does:

- ``tiny GPT``: two saved, untrained tiny GPTs (the default 4 layers, d=256, 3.5M parameters) play
  each other, ``invalid_action="fallback"`` so every match is a full game (2-3 moves, each a prompt
  of about 460 byte tokens and up to 24 new tokens). Compute bound: the prefill of the prompts is most
  of the time.
- ``scripted``: the arena's heuristic against random play: no model, so each match costs only the
  arena's own Python; it shows what the executor itself costs per match.

In this process the matches run with ``--threads`` torch threads (default: torch's default, all cores)
and, for comparison, with 1 thread; each Ray actor runs 1 torch thread on its 1 CPU. Ray starts its
workers at nice 15 (``RAY_worker_niceness``): on a machine shared with other jobs they would lose the
cores to anything at the default priority, so this benchmark starts them at 0 like this process. Every
executor plays a warm-up round of the same size first (every actor loads and caches the policies;
starting Ray and the actors is timed apart), then the executors alternate for ``--repeats`` rounds
(fair under machine noise), each round with new match ids and seeds; the table shows medians.
Batching: the same GPT matches in process (1 thread) with ``batch_size=1`` (one match per ``generate``)
against the default lock-step batches.

On a machine shared with other jobs, wall-clock rates say as much about the neighbours as about the
executor, so CPU time is measured too: of this process for the in-process runs, of this process plus
both actors for Ray. "Ray / 1 thread on free cores" is ``2 x (in-process CPU per match) / (Ray CPU per
match)``: the ratio the Ray run would reach if it had both cores to itself, i.e. Ray's own overhead.

Bookkeeping: ``LeagueState.record_match`` (one SQLite transaction with the seats' new openskill
ratings) timed per result into a fresh league folder, and again after ``--history`` matches are
already recorded; shown next to the time of one match of each case.

    python benchmarks/league_throughput.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_worker_niceness", "0")  # Ray's default 15 loses every core to the neighbours

ARENA = "kuhn_poker_v0"
PARAMS = {"invalid_action": "fallback"}


def make_specs(case: str, folder: Path, n: int, round_: int):
    from league.matches import MatchSpec

    if case == "gpt":
        policies = (str(folder / "gpt0"), str(folder / "gpt1"))
    else:
        policies = ("heuristic", "random")
    return [MatchSpec(f"{case}-r{round_}-{k}", ARENA, ("home", "away"), policies, seed=round_ * 100_000 + k, params=PARAMS)
            for k in range(n)]


def timed(executor, specs, cpu) -> tuple[float, float]:
    """Wall seconds and CPU seconds (``cpu()`` before and after) of one run."""
    c0, t0 = cpu(), time.perf_counter()
    results = executor.run(specs)
    dt, dc = time.perf_counter() - t0, cpu() - c0
    assert [r.match_id for r in results] == [s.match_id for s in specs]
    return dt, dc


def measure(folder: Path, counts: dict[str, int], repeats: int, threads: int) -> dict:
    import ray
    import torch

    from league.matches import LocalMatches, RayMatches

    out: dict = {"threads": threads}
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    out["ray_init_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    remote = RayMatches(num_workers=2)
    out["actors_s"] = time.perf_counter() - t0

    def ray_cpu() -> float:  # this process (dispatch, results) and the actors
        return time.process_time() + sum(ray.get([w.__ray_call__.remote(lambda self: time.process_time())
                                                  for w in remote.workers]))

    local, local_unbatched = LocalMatches(), LocalMatches(batch_size=1)
    try:
        for case, n in counts.items():
            executors = {"local": (local, threads, time.process_time), "local_1": (local, 1, time.process_time),
                         "ray": (remote, None, ray_cpu)}
            if case == "gpt":
                executors["local_unbatched"] = (local_unbatched, 1, time.process_time)
            for name, (ex, nthreads, _) in executors.items():  # warm-up: policies loaded and cached everywhere
                if nthreads:
                    torch.set_num_threads(nthreads)
                ex.run(make_specs(case, folder, n, round_=0))
            wall: dict[str, list[float]] = {name: [] for name in executors}
            cpu: dict[str, list[float]] = {name: [] for name in executors}
            for r in range(1, repeats + 1):
                specs = make_specs(case, folder, n, round_=r)
                for name, (ex, nthreads, clock) in executors.items():
                    if nthreads:
                        torch.set_num_threads(nthreads)
                    dt, dc = timed(ex, specs, clock)
                    wall[name].append(dt)
                    cpu[name].append(dc)
            torch.set_num_threads(threads)
            out[case] = {name: n / statistics.median(ts) for name, ts in wall.items()}
            out[case, "cpu"] = {name: statistics.median(cs) / n for name, cs in cpu.items()}
    finally:
        remote.close()
        ray.shutdown()
    return out


def bookkeeping(history: int) -> dict:
    """Seconds per record_match into a fresh league folder and after `history` recorded matches."""
    import numpy as np

    from league.league import MatchResult
    from league.state import LeagueState

    rng = np.random.default_rng(0)
    players = [f"p{i}" for i in range(8)]

    def result(k: int) -> MatchResult:
        a, b = rng.choice(len(players), 2, replace=False)
        s = float(rng.choice([-2.0, -1.0, 1.0, 2.0]))
        return MatchResult(f"m{k}", ARENA, (players[a], players[b]), (s, -s), seed=k)

    out = {}
    with tempfile.TemporaryDirectory() as tmp, LeagueState(tmp) as state:
        n = 200
        t0 = time.perf_counter()
        for k in range(n):
            state.record_match(result(k))
        out["fresh"] = (time.perf_counter() - t0) / n
        for k in range(n, history):
            state.record_match(result(k))
        t0 = time.perf_counter()
        for k in range(history, history + n):
            state.record_match(result(k))
        out["later"] = (time.perf_counter() - t0) / n
    return out


def save_policies(folder: Path) -> None:
    from marl.policy import TinyPolicy

    for i in range(2):
        TinyPolicy.create(seed=i).save(folder / f"gpt{i}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer matches and repeats")
    ap.add_argument("--gpt-matches", type=int, default=None, help="tiny GPT matches per timed round (default 32)")
    ap.add_argument("--scripted-matches", type=int, default=None, help="scripted matches per timed round (default 1000)")
    ap.add_argument("--repeats", type=int, default=None, help="timed rounds per executor (default 3)")
    ap.add_argument("--history", type=int, default=None, help="matches recorded before the second bookkeeping timing")
    ap.add_argument("--threads", type=int, default=None, help="torch threads in this process (default: torch's)")
    args = ap.parse_args()
    import torch

    threads = args.threads or torch.get_num_threads()
    counts = {"gpt": args.gpt_matches or (16 if args.quick else 32),
              "scripted": args.scripted_matches or (300 if args.quick else 1000)}
    repeats = args.repeats or (1 if args.quick else 3)
    history = args.history or (1000 if args.quick else 5000)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load > 0.5:
        print(f"warning: load average {load:.1f} before the run; timings will be noisy")
    with tempfile.TemporaryDirectory() as tmp:
        save_policies(Path(tmp))
        res = measure(Path(tmp), counts, repeats, threads)
    books = bookkeeping(history)

    names = {"gpt": "tiny GPT (3.5M) vs tiny GPT", "scripted": "heuristic vs random"}
    header = ["case", "matches", f"in-process ({threads} threads)", "in-process (1 thread)", "Ray, 2 workers",
              "Ray / in-process", "Ray / 1 thread"]
    rows, cpu_rows = [], []
    for case, label in names.items():
        r, c = res[case], res[case, "cpu"]
        rows.append([label, str(counts[case]), f"{r['local']:.2f}/s", f"{r['local_1']:.2f}/s", f"{r['ray']:.2f}/s",
                     f"{r['ray'] / r['local']:.2f}x", f"{r['ray'] / r['local_1']:.2f}x"])
        cpu_rows.append([label, f"{c['local_1'] * 1e3:.2f} ms", f"{c['ray'] * 1e3:.2f} ms",
                         f"{2 * c['local_1'] / c['ray']:.2f}x"])
    cpu_header = ["case", "in-process (1 thread)", "Ray (actors + this process)", "Ray / 1 thread on free cores"]
    gpt = res["gpt"]
    gpt_cpu = res["gpt", "cpu"]
    notes = [f"Batching, tiny GPT in-process (1 thread): lock-step batches of up to 8 "
             f"{gpt['local_1']:.2f} matches/s and {gpt_cpu['local_1'] * 1e3:.0f} ms CPU per match; one match per "
             f"batch {gpt['local_unbatched']:.2f} matches/s and {gpt_cpu['local_unbatched'] * 1e3:.0f} ms CPU per match "
             f"(batches save {gpt_cpu['local_unbatched'] / gpt_cpu['local_1']:.2f}x CPU)",
             f"Ray start: ray.init {res['ray_init_s']:.1f} s, 2 actors ready {res['actors_s']:.1f} s (not in the rates)",
             f"Load average before {load:.1f}, after {os.getloadavg()[0] if hasattr(os, 'getloadavg') else 0.0:.1f}"]
    book_header = ["bookkeeping", "per match", "vs a tiny GPT match", "vs a scripted match"]
    book_rows = []
    for key, label in (("fresh", "record_match, fresh league"), ("later", f"record_match after {history} matches")):
        s = books[key]
        book_rows.append([label, f"{s * 1e3:.2f} ms", f"{100 * s * gpt['local_1']:.2f}%",
                          f"{100 * s * res['scripted']['local_1']:.0f}%"])
    tables = [
        (f"League matches per second on {ARENA} ({os.cpu_count()} cores), wall clock, median of {repeats}; "
         "Ray actors run 1 torch thread each", header, rows),
        ("CPU seconds per match (load-independent)", cpu_header, cpu_rows),
        ("League bookkeeping per match (SQLite, WAL) vs one in-process match (1 thread)", book_header, book_rows),
    ]
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(120, Console().width))
    for title, hdr, rs in tables:
        table = Table(title=title)
        for h in hdr:
            table.add_column(h, justify="left" if h in ("case", "bookkeeping") else "right")
        for row in rs:
            table.add_row(*row)
        console.print(table)
    for line in notes:
        console.print(line)


if __name__ == "__main__":
    main()
