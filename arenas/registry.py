"""Arenas are registered and loaded by name, like ``pyspiel.load_game``: ``make("kuhn_poker_v0")``.

Besides Agora's own arenas, *adapters* turn other libraries' games into arenas on demand, by prefix:
``make("textarena:TicTacToe-v0")``, ``make("openspiel:leduc_poker")``. :func:`names` lists the registered
arenas only (listing every adapted game would import those libraries); :func:`list_adapters` lists the prefixes.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
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


class UnsupportedArena(ValueError):
    """The name is understood but this arena cannot be played here (missing package, network, game type)."""


@dataclass(frozen=True)
class Adapter:
    """Games of another library, loaded as ``"<prefix>:<game>"``."""

    prefix: str
    resolve: Callable[[str], ArenaSpec]  # the game part of the name -> its spec (KeyError / UnsupportedArena)
    description: str
    example: str  # a full arena name that works
    games: Callable[[], list[str]]  # the library's game names (may import the library: slow)


_ADAPTERS: dict[str, Adapter] = {}


def register_adapter(adapter: Adapter) -> Adapter:
    if adapter.prefix in _ADAPTERS:
        raise ValueError(f"adapter prefix {adapter.prefix!r} is already registered")
    _ADAPTERS[adapter.prefix] = adapter
    return adapter


def list_adapters() -> list[Adapter]:
    """The adapter prefixes (``textarena``, ``openspiel``): each turns ``"<prefix>:<game>"`` into an arena."""
    return [_ADAPTERS[p] for p in sorted(_ADAPTERS)]


def register(spec: ArenaSpec) -> ArenaSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"arena {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def names() -> list[str]:
    """Agora's registered arenas. Adapted games are not listed: they are named ``"<prefix>:<game>"`` with a
    prefix from :func:`list_adapters` (``agora arenas --adapter textarena`` lists an adapter's games)."""
    return sorted(_REGISTRY)


@lru_cache(maxsize=None)
def _adapted(name: str) -> ArenaSpec:
    prefix, _, game = name.partition(":")
    return _ADAPTERS[prefix].resolve(game)


def spec(name: str) -> ArenaSpec:
    if name in _REGISTRY:
        return _REGISTRY[name]
    prefix, sep, _ = name.partition(":")
    if sep and prefix in _ADAPTERS:
        return _adapted(name)
    import difflib

    close = difflib.get_close_matches(name, _REGISTRY, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    prefixes = ", ".join(f"{a.prefix}:<game>" for a in list_adapters())
    raise KeyError(f"unknown arena {name!r}.{hint} Known arenas: {', '.join(names())}; "
                   f"adapted games: {prefixes}") from None


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
