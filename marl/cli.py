"""``marl`` commands and the policy factory that lets ``agora play`` use language models."""

from __future__ import annotations

import argparse
from functools import lru_cache

from arenas.play import TextPolicy
from marl.policy import Policy, load_policy, parse_policy, text_policy


@lru_cache(maxsize=None)
def _loaded(name: str, arena: str) -> Policy:
    """One instance per name: agents given the same policy name share one model."""
    return load_policy(parse_policy(name), arena=arena)


def policy_factory(name: str, arena: str) -> TextPolicy:
    """Scripted names stay scripted; everything else loads a language-model policy (see ``parse_policy``)."""
    spec = parse_policy(name)
    if spec.backend == "scripted":
        import arenas

        return arenas.scripted(arena, spec.name)
    return text_policy(_loaded(name, arena), max_new_tokens=spec.max_new_tokens, temperature=spec.temperature)


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register the ``marl`` subcommands on the root ``agora`` parser."""
    from marl import sft

    p = sub.add_parser("sft", help="behaviour-cloning warm-start: a policy learns the arenas' answer format from scripted play")
    sft.add_arguments(p)
    p.set_defaults(run=sft.command)

    p = sub.add_parser("train", help="multi-agent RL (MAGRPO, independent GRPO, SPIRAL) on an arena, tracked in MLflow")
    p.add_argument("config", help="a YAML train config (see configs/train_*.yaml)")
    p.add_argument("--steps", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--out", help="where the trained policies go")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else ./mlflow.db)")
    p.set_defaults(run=train_command)


def train_command(args: argparse.Namespace) -> int:
    from rich.console import Console

    from arenas.config import load_yaml
    from marl.magrpo import TrainConfig, train

    overrides = {"steps": args.steps, "seed": args.seed, "out": args.out, "tracking_uri": args.tracking_uri}
    cfg = load_yaml(args.config, TrainConfig, overrides)
    result = train(cfg)
    last = result["history"][-1]
    console = Console()
    console.print(f"[bold]done[/]: {len(result['history'])} steps, joint reward {last['reward/joint_mean']:+.3f}, "
                  f"valid actions {last['valid_rate']:.0%}")
    for name, path in result["saved"].items():
        console.print(f"policy {name}: {path}")
    if result["run_id"]:
        console.print(f"MLflow run {result['run_id']} (experiment {cfg.experiment!r}); browse with: mlflow ui --backend-store-uri "
                      f"{cfg.tracking_uri or 'sqlite:///mlflow.db'}")
    return 0
