"""Agora arenas: PettingZoo environments whose observations and actions are text.

>>> import arenas
>>> env = arenas.make("kuhn_poker_v0")
>>> env.reset(seed=0)
"""

from arenas.channels import ChannelConfig, ChannelWrapper, build_graph
from arenas.core import TextArenaEnv, TextAction
from arenas.registry import ArenaSpec, UnsupportedArena, list_adapters, make, make_parallel, names, register, spec
from arenas import games as _games  # noqa: F401  (registers the built-in games)
from arenas import adapters as _adapters  # noqa: F401  (registers the adapter prefixes: textarena:, openspiel:)
from arenas.scripted import fixed_random, random_policy, scripted

__all__ = [
    "ArenaSpec", "ChannelConfig", "ChannelWrapper", "TextAction", "TextArenaEnv", "UnsupportedArena", "build_graph", "list_adapters",
    "fixed_random", "make", "make_parallel", "names", "random_policy", "register", "scripted", "spec",
]
