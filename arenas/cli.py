"""``agora arenas`` and ``agora play``: list arenas, play episodes, write transcripts.

The policy factory is injected by the root command so that ``arenas`` never imports the packages above it;
on its own it knows the scripted policies (``random``, ``heuristic``).
"""

from __future__ import annotations

import argparse
import re
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

import arenas
from arenas.config import ConfigError, load_yaml, validate
from arenas.play import Episode, PlayConfig, TextPolicy, play_episode, write_transcript

PolicyFactory = Callable[[str, str], TextPolicy]  # (policy name, arena name) -> text policy
console = Console()
_UNSAFE = re.compile(r"[^\w.-]+")


def scripted_factory(name: str, arena: str) -> TextPolicy:
    return arenas.scripted(arena, name)


def add_commands(sub: argparse._SubParsersAction, policy_factory: PolicyFactory = scripted_factory) -> None:
    p = sub.add_parser("arenas", help="list the arenas and their facts, and the adapters (textarena:, openspiel:)")
    p.add_argument("--adapter", help="list the games one adapter can load (imports that library)")
    p.set_defaults(run=lambda args: list_arenas(args.adapter))

    p = sub.add_parser("play", help="play episodes of an arena and write a JSONL transcript")
    p.add_argument("arena", help="an arena name (see `agora arenas`) or a YAML play config")
    p.add_argument("--policy", action="append", help="policy per agent, in agent order (repeat); one applies to all")
    p.add_argument("--episodes", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="arena parameter (YAML value)")
    p.add_argument("--channel", help="a YAML file with a channel config, or a topology name (complete, ring, star, line, random)")
    p.add_argument("--out", help="transcript path (default: transcripts/<arena>.jsonl)")
    p.set_defaults(run=lambda args: play(args, policy_factory))

    p = sub.add_parser("demo", help="scripted agents play every arena; prints what happened")
    p.add_argument("--episodes", type=int, default=50)
    p.set_defaults(run=lambda args: demo(args.episodes))


def list_arenas(adapter: str | None = None) -> int:
    if adapter is not None:
        return list_adapter_games(adapter)
    table = Table(title="Agora arenas")
    for col in ("name", "agents", "parallel", "rewards", "talk", "scripted", "description"):
        table.add_column(col)
    for name in arenas.names():
        s = arenas.spec(name)
        talk = "required" if getattr(s.factory, "requires_channel", False) else "optional"
        table.add_row(name, s.agents, "yes" if s.parallel else "no", s.rewards, talk, f"random, {s.heuristic_name}", s.description)
    console.print(table)
    table = Table(title="Adapters: other libraries' games, named <prefix>:<game> (agora arenas --adapter PREFIX lists them)")
    for col in ("prefix", "example", "description"):
        table.add_column(col)
    for a in arenas.list_adapters():
        table.add_row(f"{a.prefix}:", a.example, escape(a.description))
    console.print(table)
    return 0


def list_adapter_games(prefix: str) -> int:
    found = {a.prefix: a for a in arenas.list_adapters()}
    if prefix not in found:
        raise ConfigError(f"unknown adapter {prefix!r}; adapters: {', '.join(found)}")
    games = found[prefix].games()
    console.print(f"{len(games)} games of {prefix} (some may be refused when loaded, with the reason):")
    console.print(escape(", ".join(f"{prefix}:{g}" for g in games)), highlight=False)
    return 0


def _params(items: list[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--param {item!r}: expected KEY=VALUE")
        out[key] = yaml.safe_load(value)
    return out


def _channel(value: str | None) -> dict | None:
    if value is None:
        return None
    if value.endswith((".yaml", ".yml")):
        return load_yaml(value, arenas.ChannelConfig).model_dump()
    return {"topology": value}


def play_config(args: argparse.Namespace) -> PlayConfig:
    flags = {"policies": args.policy, "episodes": args.episodes, "seed": args.seed, "transcript": args.out,
             "channel": _channel(args.channel)}
    if args.arena.endswith((".yaml", ".yml")):
        cfg = load_yaml(args.arena, PlayConfig, flags)
        return cfg.model_copy(update={"params": {**cfg.params, **_params(args.param)}})
    return validate(PlayConfig, {"arena": args.arena, "params": _params(args.param), **{k: v for k, v in flags.items() if v is not None}}, "command line")


def players(cfg: PlayConfig, policy_factory: PolicyFactory) -> tuple[Any, dict[str, str], dict[str, TextPolicy]]:
    """The env of a play config, each agent's policy name, and its text policy."""
    env = arenas.make(cfg.arena, channel=cfg.channel.model_dump() if cfg.channel else None, **cfg.params)
    agents = list(env.possible_agents)
    names = cfg.policies if len(cfg.policies) > 1 else cfg.policies * len(agents)
    if len(names) != len(agents):
        raise ConfigError(f"{cfg.arena} has {len(agents)} agents ({', '.join(agents)}) but {len(names)} policies were given")
    return env, dict(zip(agents, names)), {a: policy_factory(n, cfg.arena) for a, n in zip(agents, names)}


def play(args: argparse.Namespace, policy_factory: PolicyFactory) -> int:
    cfg = play_config(args)
    env, names, policies = players(cfg, policy_factory)
    episodes = []
    with console.status(f"playing {cfg.arena}") as status:
        for i in range(cfg.episodes):
            status.update(f"playing {cfg.arena}: episode {i + 1}/{cfg.episodes}")
            episodes.append(play_episode(env, policies, seed=cfg.seed + i, episode=i))
    default = Path("transcripts") / (_UNSAFE.sub("_", cfg.arena) + ".jsonl")  # "textarena:TicTacToe-v0" -> textarena_TicTacToe-v0
    path = write_transcript(cfg.transcript or default, episodes)
    console.print(summary_table(cfg.arena, names, episodes))
    console.print(f"transcript: {path} ({sum(len(e.steps) for e in episodes)} steps)")
    return 0


def summary_table(arena: str, policy_names: dict[str, str], episodes: list[Episode]) -> Table:
    s = arenas.spec(arena)
    n = len(episodes)
    table = Table(title=f"{arena}: {n} episodes, {statistics.mean(len(e.steps) for e in episodes):.1f} moves each")
    for col in ("agent", "policy", "mean return", "std", "wins" if s.rewards == "zero-sum" else "success", "invalid actions"):
        table.add_column(col, justify="left" if col in ("agent", "policy") else "right")
    for agent, policy in policy_names.items():
        returns = [e.returns[agent] for e in episodes]
        if s.rewards == "zero-sum":
            rate = sum(e.returns[agent] > max(v for a, v in e.returns.items() if a != agent) for e in episodes) / n
        else:
            rate = sum(r > 0 for r in returns) / n
        table.add_row(agent, policy, f"{statistics.mean(returns):+.3f}", f"{statistics.pstdev(returns):.3f}", f"{rate:.0%}",
                      str(sum(e.invalid[agent] for e in episodes)))
    return table


def demo(episodes: int = 50) -> int:
    """Heuristic against heuristic and against random in every arena: a quick look at all of them."""
    table = Table(title=f"Scripted agents in every arena ({episodes} episodes per row)")
    for col in ("arena", "policies", "mean returns", "first agent won", "invalid"):
        table.add_column(col)
    for name in arenas.names():
        env = arenas.make(name)
        agents = list(env.possible_agents)
        lineups = [["heuristic"] * len(agents), ["heuristic"] + ["random"] * (len(agents) - 1)]
        for lineup in lineups:
            policies = {a: arenas.scripted(name, p) for a, p in zip(agents, lineup)}
            eps = [play_episode(env, policies, seed=i, episode=i) for i in range(episodes)]
            means = {a: statistics.mean(e.returns[a] for e in eps) for a in agents}
            rate = sum(e.returns[agents[0]] > 0 for e in eps) / episodes
            table.add_row(name, " vs ".join(lineup) if len(set(lineup)) > 1 else f"{lineup[0]} x{len(agents)}",
                          "  ".join(f"{a}={v:+.2f}" for a, v in means.items()), f"{rate:.0%}",
                          str(sum(sum(e.invalid.values()) for e in eps)))
    console.print(table)
    return 0
