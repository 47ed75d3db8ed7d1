"""Topology and channel sweeps: how a team's success depends on who can talk to whom, and how well.

``agora sweep CONFIG`` plays the same policies on every cell of a grid of channels (graph family x
bandwidth x noise x drop x delay) of an arena such as ``consensus_v0``, in this process or on Ray, and
draws success against each factor next to the graph's own measures from networkx: the diameter (hops a
piece of news needs to reach everyone; on a directed graph, the longest shortest path) and the algebraic
connectivity (the Laplacian's second eigenvalue: how hard the graph is to cut in two). Cells are pure
functions of (config, cell), so local and Ray runs give the same table.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import networkx as nx
import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

import arenas
from arenas.channels import ChannelConfig, Topology, build_graph
from arenas.config import load_yaml
from arenas.play import PlayConfig, TextPolicy, play_episode

console = Console()
FACTORS = ("bandwidth", "noise", "drop", "delay")


class SweepConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    arena: str = "consensus_v0"
    params: dict[str, Any] = {}
    policies: list[str] = ["heuristic"]  # one per agent, or one for all
    episodes: int = Field(20, ge=1)  # per cell, seeds seed .. seed + episodes - 1 (the same in every cell)
    seed: int = 0
    topologies: list[Topology] = Field(["complete", "ring", "star", "line", "random"], min_length=1)
    bandwidth: list[int] = Field([64], min_length=1)
    noise: list[float] = Field([0.0], min_length=1)
    drop: list[float] = Field([0.0], min_length=1)
    delay: list[int] = Field([0], min_length=1)
    channel: ChannelConfig = ChannelConfig()  # everything else about each cell's channel (directed, p, cost, ...)
    executor: Literal["local", "ray"] = "local"
    num_workers: int = Field(2, ge=1)
    ray_address: str | None = None
    out: str = "runs/sweep"


def cells(cfg: SweepConfig) -> list[dict[str, Any]]:
    return [dict(zip(("topology", *FACTORS), values))
            for values in itertools.product(cfg.topologies, cfg.bandwidth, cfg.noise, cfg.drop, cfg.delay)]


def channel_of(cfg: SweepConfig, cell: dict[str, Any]) -> ChannelConfig:
    return cfg.channel.model_copy(update=cell)


def play_cell(cfg: SweepConfig, cell: dict[str, Any], policy_factory: Callable[[str, str], TextPolicy]) -> dict[str, Any]:
    """One grid cell: its episodes' mean joint return, success rate and message volume."""
    from arenas.cli import players

    play = PlayConfig(arena=cfg.arena, params=cfg.params, policies=cfg.policies, episodes=cfg.episodes, seed=cfg.seed,
                      channel=channel_of(cfg, cell))
    env, _, policies = players(play, policy_factory)
    joint, messages = [], []
    for i in range(cfg.episodes):
        ep = play_episode(env, policies, seed=cfg.seed + i, episode=i)
        joint.append(float(np.mean(list(ep.returns.values()))))
        messages.append(sum(len(s.messages_sent) for s in ep.steps))
    joint_arr = np.array(joint)
    return {**cell, "joint_return": float(joint_arr.mean()), "success_rate": float((joint_arr >= 1.0 - 1e-9).mean()),
            "messages_per_episode": float(np.mean(messages))}


def graph_measures(cfg: SweepConfig, topology: str) -> dict[str, float]:
    """What networkx says about a topology's graph over the arena's agents."""
    agents = list(arenas.make(cfg.arena, **cfg.params).possible_agents)
    g = build_graph(agents, cfg.channel.model_copy(update={"topology": topology}))
    strongly = nx.is_strongly_connected(g)
    undirected = g.to_undirected()
    return {"edges": g.number_of_edges(), "diameter": float(nx.diameter(g)) if strongly else math.inf,
            "algebraic_connectivity": round(float(np.sort(nx.laplacian_spectrum(undirected))[1]), 9)}  # 0 when disconnected


def sweep(cfg: SweepConfig, policy_factory: Callable[[str, str], TextPolicy], progress: bool = True) -> list[dict[str, Any]]:
    """Every cell's result merged with its topology's graph measures, in grid order."""
    grid = cells(cfg)
    if cfg.executor == "ray":
        import ray

        if not ray.is_initialized():
            ray.init(address=cfg.ray_address, num_cpus=None if cfg.ray_address else cfg.num_workers,
                     include_dashboard=False, log_to_driver=False)
        remote = ray.remote(num_cpus=1)(play_cell)
        results = ray.get([remote.remote(cfg, c, policy_factory) for c in grid])
    else:
        results = []
        with Progress(disable=not progress, console=console, transient=True) as bar:
            task = bar.add_task(f"{cfg.arena}: {len(grid)} channels x {cfg.episodes} episodes", total=len(grid))
            for c in grid:
                results.append(play_cell(cfg, c, policy_factory))
                bar.advance(task)
    measures = {t: graph_measures(cfg, t) for t in cfg.topologies}
    return [{**r, **measures[r["topology"]]} for r in results]


# ---------------------------------------------------------------------------- outputs
def plot(cfg: SweepConfig, rows: list[dict[str, Any]]):
    """Success against each varied factor (a line per topology, mean over the other factors), then against
    the graph measures (a point per topology, mean over the whole grid)."""
    from league.report import new_figure

    varied = [f for f in FACTORS if len(getattr(cfg, f)) > 1]
    fig = new_figure(3.6 * (len(varied) + 2), 3.4)
    axes = fig.subplots(1, len(varied) + 2, squeeze=False)[0]
    for ax, factor in zip(axes, varied):
        for t in cfg.topologies:
            xs = getattr(cfg, factor)
            ax.plot(xs, [np.mean([r["success_rate"] for r in rows if r["topology"] == t and r[factor] == x]) for x in xs], "o-", label=t)
        if factor == "bandwidth" and min(xs) > 0:
            ax.set_xscale("log", base=2)
        ax.set_xlabel(factor)
        ax.set_ylabel("success rate")
        ax.set_ylim(-0.05, 1.05)
        ax.legend(fontsize=8)
    for ax, measure in zip(axes[len(varied):], ("diameter", "algebraic_connectivity")):
        for t in cfg.topologies:
            mine = [r for r in rows if r["topology"] == t]
            x = mine[0][measure]
            ax.scatter([x if math.isfinite(x) else np.nan], [np.mean([r["success_rate"] for r in mine])], s=40)
            ax.annotate(t, (x if math.isfinite(x) else 0, np.mean([r["success_rate"] for r in mine])), fontsize=8,
                        xytext=(4, 4), textcoords="offset points")
        ax.set_xlabel(measure.replace("_", " "))
        ax.set_ylabel("success rate (grid mean)")
        ax.set_ylim(-0.05, 1.05)
    fig.suptitle(f"{cfg.arena}: {cfg.episodes} episodes per channel")
    return fig


def write(cfg: SweepConfig, rows: list[dict[str, Any]], out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "sweep.csv", "json": out / "sweep.json", "png": out / "sweep.png"}
    with paths["csv"].open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    paths["json"].write_text(json.dumps({"config": cfg.model_dump(), "rows": rows}, indent=1, default=str).replace("Infinity", "null"))
    plot(cfg, rows).savefig(paths["png"], dpi=100)
    return paths


def table(cfg: SweepConfig, rows: list[dict[str, Any]]) -> Table:
    t = Table(title=f"{cfg.arena}: {cfg.episodes} episodes per channel")
    cols = {"topology": "topology", **{f: f for f in FACTORS if len(getattr(cfg, f)) > 1}, "diameter": "diameter",
            "algebraic_connectivity": "alg. conn.", "messages_per_episode": "msgs/ep", "joint_return": "joint",
            "success_rate": "success"}
    for name in cols.values():
        t.add_column(name, justify="right")
    for r in rows:
        t.add_row(*(f"{r[c]:.3f}" if c in ("algebraic_connectivity", "joint_return") else
                    f"{r[c]:.1%}" if c == "success_rate" else f"{r[c]:g}" if isinstance(r[c], float) else str(r[c]) for c in cols))
    return t


def run(args: argparse.Namespace, policy_factory: Callable[[str, str], TextPolicy]) -> int:
    cfg = load_yaml(args.config, SweepConfig, {"out": args.out, "executor": args.executor})
    rows = sweep(cfg, policy_factory)
    console.print(table(cfg, rows))
    paths = write(cfg, rows, Path(cfg.out))
    console.print(f"plot: {paths['png']}  table: {paths['csv']}")
    return 0


def add_commands(sub: argparse._SubParsersAction, policy_factory: Callable[[str, str], TextPolicy]) -> None:
    p = sub.add_parser("sweep", help="play a grid of channel topologies, bandwidths, noise and delays; plot success against each")
    p.add_argument("config", help="a sweep config (YAML), e.g. configs/sweep_consensus.yaml")
    p.add_argument("--out", help="folder for sweep.csv, sweep.json and sweep.png (default: the config's out)")
    p.add_argument("--executor", choices=["local", "ray"], help="where the cells run (default: the config's executor)")
    p.set_defaults(run=lambda args: run(args, policy_factory))
