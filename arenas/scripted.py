"""Scripted policies that speak the same text interface as language models: (text, info, rng) -> text."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from arenas.registry import Heuristic, spec


def random_policy(text: str, info: dict, rng: Any) -> str:
    """Uniform over the legal actions in ``info``; silent on talk turns."""
    legal = info.get("legal_actions") or []
    return legal[int(rng.integers(len(legal)))] if legal else ""


def fixed_random(concentration: float = 1.0) -> Heuristic:
    """A random player that reacts to its news: it samples from a distribution over the legal actions drawn
    at random (Dirichlet(concentration)) once for each last line of its prompt, where arenas put what just
    changed (a target to describe, a message received).

    As a warm-start teacher it teaches the answer format *and* a dependence on that line with no agreed
    meaning (two such players coordinate only by chance) while keeping the answers random enough to explore,
    as a randomly initialised network does in classic emergent-communication set-ups. A uniformly random
    teacher instead teaches a policy to ignore its input, which leaves RL nothing to amplify. Below 1 the
    odds of each line are peaked: a dependence a small model picks up from fewer examples.
    """
    if not concentration > 0:
        raise ValueError(f"concentration must be positive, got {concentration}")

    def policy(text: str, info: dict, rng: Any) -> str:
        legal = info.get("legal_actions") or []
        if not legal:
            return ""
        last = text.rstrip("\n").rsplit("\n", 1)[-1]
        key = int.from_bytes(hashlib.blake2b(last.encode(), digest_size=8).digest(), "big")
        probs = np.random.default_rng(key).dirichlet(np.full(len(legal), concentration))
        return legal[int(rng.choice(len(legal), p=probs))]

    return policy


SCRIPTED = ("random", "fixed_random", "heuristic")  # the scripted policies every arena has, by name


def scripted(arena: str, name: str, concentration: float = 1.0) -> Heuristic:
    """A scripted policy by name: ``random``, ``fixed_random`` (with its Dirichlet ``concentration``) or
    ``heuristic`` (the arena's own)."""
    if name == "random":
        return random_policy
    if name == "fixed_random":
        return fixed_random(concentration)
    if name == "heuristic":
        h = spec(arena).heuristic
        if h is None:
            raise ValueError(f"arena {arena} has no heuristic policy")
        return h
    raise ValueError(f"unknown scripted policy {name!r}: use 'random', 'fixed_random' or 'heuristic'")
