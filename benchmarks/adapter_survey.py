"""Which adapted games work here: every base TextArena game (ids ending in -v0), or every turn-based OpenSpiel
game with --openspiel, each in its own process with a time limit. A game passes when it loads, plays up to 200
moves (uniform over the listed legal moves, else a fixed text), and passes PettingZoo's api_test and seed_test.

    python benchmarks/adapter_survey.py              # TextArena
    python benchmarks/adapter_survey.py --openspiel  # OpenSpiel
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections import Counter

CHECK = r'''
import sys, warnings
warnings.filterwarnings("ignore")
import numpy as np
import arenas
from pettingzoo.test import api_test, seed_test
name = sys.argv[1]
try:
    env = arenas.make(name)
except arenas.UnsupportedArena as e:
    print("REFUSED", str(e).split(": ", 1)[-1]); sys.exit(0)
env.reset(seed=1)
rng = np.random.default_rng(0)
for agent in env.agent_iter(200):
    obs, reward, term, trunc, info = env.last()
    legal = info.get("legal_actions") or []
    env.step(None if term or trunc else (legal[rng.integers(len(legal))] if legal else "[0]"))
api_test(arenas.make(name), num_cycles=30)
seed_test(lambda: arenas.make(name), num_cycles=20)
print("PASS", len(env.possible_agents), "agents")
'''


def check(name: str, timeout: float) -> tuple[str, str]:
    try:
        run = subprocess.run([sys.executable, "-c", CHECK, name], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "TIMEOUT", f"no result in {timeout:g} s"
    lines = [line for line in run.stdout.splitlines() if line.startswith(("PASS", "REFUSED"))]
    if lines:
        status, _, detail = lines[-1].partition(" ")
        return status, detail
    error = [line for line in run.stderr.splitlines() if line.strip()]
    return "ERROR", error[-1][:160] if error else f"exit {run.returncode}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--openspiel", action="store_true")
    parser.add_argument("--timeout", type=float, default=60)
    args = parser.parse_args()
    import arenas

    prefix = "openspiel" if args.openspiel else "textarena"
    adapter = next(a for a in arenas.list_adapters() if a.prefix == prefix)
    games = adapter.games() if args.openspiel else sorted(g for g in adapter.games() if g.endswith("-v0"))
    counts = Counter()
    print(f"| game | result | detail |\n|---|---|---|")
    for game in games:
        status, detail = check(f"{prefix}:{game}", args.timeout)
        counts[status] += 1
        print(f"| {game} | {status} | {detail} |", flush=True)
    print(f"\n{len(games)} games: " + ", ".join(f"{n} {s.lower()}" for s, n in counts.most_common()))


if __name__ == "__main__":
    main()
