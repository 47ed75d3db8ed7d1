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
