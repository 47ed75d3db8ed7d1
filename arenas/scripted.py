"""Scripted policies that speak the same text interface as language models: (text, info, rng) -> text."""

from __future__ import annotations

from typing import Any

from arenas.registry import Heuristic, spec


def random_policy(text: str, info: dict, rng: Any) -> str:
    """Uniform over the legal actions in ``info``; silent on talk turns."""
    legal = info.get("legal_actions") or []
    return legal[int(rng.integers(len(legal)))] if legal else ""


def scripted(arena: str, name: str) -> Heuristic:
    """A scripted policy by name: ``random`` or ``heuristic`` (the arena's own)."""
    if name == "random":
        return random_policy
    if name == "heuristic":
        h = spec(arena).heuristic
        if h is None:
            raise ValueError(f"arena {arena} has no heuristic policy")
        return h
    raise ValueError(f"unknown scripted policy {name!r}: use 'random' or 'heuristic'")
