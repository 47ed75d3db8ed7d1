"""Turns per second of every arena under random play, next to PettingZoo's own tictactoe_v3.

Both run the same loop (``agent_iter``, ``last``, a random legal action from the mask, ``step``), so the
ratio measures the environments. Target: our tictactoe_v0 at least as fast as PettingZoo's tictactoe_v3.

    python benchmarks/arena_speed.py [--turns 20000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from rich.console import Console
from rich.table import Table

import arenas


def turns_per_second(env, turns: int, to_action) -> float:
    rng = np.random.default_rng(0)
    done, seed = 0, 0
    start = time.perf_counter()
    while done < turns:
        env.reset(seed=seed)
        seed += 1
        for agent in env.agent_iter():
            obs, _, term, trunc, _ = env.last()
            if term or trunc:
                env.step(None)
                continue
            legal = np.flatnonzero(obs["action_mask"])
            env.step(to_action(env, agent, legal, rng))
            done += 1
    return done / (time.perf_counter() - start)


def ours(env, agent, legal, rng):
    if len(legal) == 0:  # a talk turn
        return "hello"
    return env.action_space(agent).vocabulary[int(rng.choice(legal))]


def theirs(env, agent, legal, rng):
    return int(rng.choice(legal))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=20000)
    args = parser.parse_args()
    from pettingzoo.classic import tictactoe_v3

    reference = turns_per_second(tictactoe_v3.env(), args.turns, theirs)
    table = Table(title=f"Random play, {args.turns} turns each (PettingZoo tictactoe_v3: {reference:,.0f} turns/s)")
    for col in ("arena", "channel", "turns/s", "vs PettingZoo tictactoe_v3"):
        table.add_column(col, justify="right" if col != "arena" else "left")
    for name in arenas.names():
        for channel in (False, {"topology": "complete", "noise": 0.1}):
            env = arenas.make(name, channel=None if channel is False else channel)
            label = "default" if channel is False else "complete, noisy"
            tps = turns_per_second(env, args.turns, ours)
            table.add_row(name, label, f"{tps:,.0f}", f"{tps / reference:.2f}x")
    Console().print(table)


if __name__ == "__main__":
    main()
