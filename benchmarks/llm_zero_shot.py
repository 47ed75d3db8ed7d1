"""Zero-shot play of a language model (SmolLM2-135M-Instruct by default) against scripted opponents.

For every arena, the model plays the first agent and the arena's ``random`` policy the others; the table
shows the model's valid-action rate and its win (zero-sum) or success (other arenas) rate, next to the
same numbers for the random policy in its seat, measured in the same run.

    python benchmarks/llm_zero_shot.py [--policy smollm2] [--episodes 10] [--arena kuhn_poker_v0 ...]
"""

from __future__ import annotations

import argparse
import time

from rich.console import Console
from rich.table import Table

import arenas
from arenas.play import play_episode
from marl.policy import load_policy, text_policy


def measure(name: str, first, episodes: int) -> tuple[float, float]:
    env = arenas.make(name, invalid_action="fallback")
    agents = list(env.possible_agents)
    policies = {a: arenas.random_policy for a in agents} | {agents[0]: first}
    valid = moves = wins = 0
    for seed in range(episodes):
        ep = play_episode(env, policies, seed=1000 + seed)
        mine = [s for s in ep.steps if s.agent == agents[0] and s.parsed_action is not None]  # moves, not talk turns
        valid += sum(s.valid for s in mine)
        moves += len(mine)
        wins += ep.returns[agents[0]] > (max(ep.returns[a] for a in agents[1:]) if arenas.spec(name).rewards == "zero-sum" else 0)
    return valid / max(moves, 1), wins / episodes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--policy", default="smollm2")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--arena", action="append")
    args = parser.parse_args()
    console = Console()
    model = load_policy(args.policy)
    act = text_policy(model, max_new_tokens=args.max_new_tokens, temperature=args.temperature)
    table = Table(title=f"{args.policy} zero-shot as the first agent vs random ({args.episodes} episodes, invalid -> random move)")
    for col in ("arena", "valid actions", "win/success", "random: win/success", "seconds"):
        table.add_column(col, justify="left" if col == "arena" else "right")
    for name in args.arena or arenas.names():
        start = time.perf_counter()
        valid, win = measure(name, act, args.episodes)
        seconds = time.perf_counter() - start
        _, base = measure(name, arenas.random_policy, max(args.episodes, 200))
        table.add_row(name, f"{valid:.0%}", f"{win:.0%}", f"{base:.0%}", f"{seconds:.0f}")
        console.print(f"{name}: valid {valid:.0%}, win/success {win:.0%} (random {base:.0%}), {seconds:.0f} s")  # long runs show progress
    console.print(table)


if __name__ == "__main__":
    main()
