"""The root ``agora`` command, assembled at the top so that no lower package imports a higher one."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console

from arenas import cli as arenas_cli
from arenas.config import ConfigError
from league import analyze, curriculum, sweep
from league import runner as league_runner
from marl import cli as marl_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agora", description="LLM agents in PettingZoo text arenas: play, train, leagues, curricula.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    arenas_cli.add_commands(sub, policy_factory=marl_cli.policy_factory)
    marl_cli.add_commands(sub)
    league_runner.add_commands(sub)
    curriculum.add_commands(sub)
    analyze.add_commands(sub, policy_factory=marl_cli.policy_factory)
    sweep.add_commands(sub, policy_factory=marl_cli.policy_factory)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ConfigError, KeyError, TypeError, ValueError) as e:
        if args.debug:
            raise
        message = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False)
        return 2


if __name__ == "__main__":
    sys.exit(main())
