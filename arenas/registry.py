"""Arenas are registered and loaded by name, like ``pyspiel.load_game``: ``make("kuhn_poker_v0")``."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pettingzoo import AECEnv, ParallelEnv
from pettingzoo.utils import wrappers
from pettingzoo.utils.conversions import aec_to_parallel

from arenas.channels import ChannelConfig, ChannelWrapper

Heuristic = Callable[[str, dict, Any], str]  # (observation text, info, np.random.Generator) -> action text


@dataclass(frozen=True)
class ArenaSpec:
    """What a user needs to know about an arena before playing it."""

    name: str
    factory: Callable[..., AECEnv]  # the raw env class
    agents: str  # e.g. "2" or "N >= 3"
    parallel: bool
    rewards: str  # "zero-sum", "shared", "general-sum"
    description: str
    heuristic: Heuristic | None = None  # a sensible scripted policy speaking the text interface
    heuristic_name: str = "heuristic"

    def parameters(self) -> dict[str, Any]:
        """The arena's keyword arguments and their defaults."""
        sig = inspect.signature(self.factory)
        return {k: p.default for k, p in sig.parameters.items() if p.kind is p.KEYWORD_ONLY or p.default is not p.empty}


_REGISTRY: dict[str, ArenaSpec] = {}


def register(spec: ArenaSpec) -> ArenaSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"arena {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def names() -> list[str]:
    return sorted(_REGISTRY)


def spec(name: str) -> ArenaSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, _REGISTRY, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise KeyError(f"unknown arena {name!r}.{hint} Known arenas: {', '.join(names())}") from None


def make(name: str, *, channel: ChannelConfig | dict | bool | None = None, **kwargs: Any) -> AECEnv:
    """Build an arena as a PettingZoo AEC env.

    ``channel``: a :class:`ChannelConfig` (or its dict) adds talk along a graph; ``None`` adds the default
    complete channel only to arenas whose game is talk (``requires_channel``); ``False`` never adds one.
    Unknown keyword arguments raise a ``TypeError`` that lists the arena's parameters.
    """
    s = spec(name)
    params = s.parameters()
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        listed = ", ".join(f"{k}={v!r}" for k, v in params.items())
        raise TypeError(f"arena {name} has no parameter {', '.join(map(repr, unknown))}; its parameters: {listed}")
    env = s.factory(**kwargs)
    if channel is None and getattr(env, "requires_channel", False):
        channel = ChannelConfig()
    if channel is not None and channel is not False:
        env = ChannelWrapper(env, channel if isinstance(channel, ChannelConfig) else ChannelConfig.model_validate(channel))
    return wrappers.OrderEnforcingWrapper(env)


def make_parallel(name: str, **kwargs: Any) -> ParallelEnv:
    """The same arena as a PettingZoo Parallel env (simultaneous-move arenas only)."""
    s = spec(name)
    if not s.parallel:
        raise ValueError(f"arena {name} is turn-based; use arenas.make({name!r}) for its AEC version")
    return aec_to_parallel(make(name, **kwargs))
