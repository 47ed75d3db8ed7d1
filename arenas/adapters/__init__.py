"""Adapters: other libraries' games as Agora arenas, loaded by prefix (``"textarena:TicTacToe-v0"``).

Each adapter module imports its library only when one of its games is asked for, so ``import arenas`` stays
fast and works without the optional packages; a missing package is an :class:`~arenas.registry.UnsupportedArena`
error that says what to install.
"""

from arenas.registry import Adapter, register_adapter


def _textarena(game: str):
    from arenas.adapters import textarena

    return textarena.resolve(game)


def _textarena_games() -> list[str]:
    from arenas.adapters import textarena

    return textarena.games()


register_adapter(Adapter(
    "textarena", _textarena,
    "TextArena's text games (extra: textarena); free-text moves, TextArena's invalid-move rules",
    "textarena:TicTacToe-v0", _textarena_games))


def _openspiel(game: str):
    from arenas.adapters import openspiel

    return openspiel.resolve(game)


def _openspiel_games() -> list[str]:
    from arenas.adapters import openspiel

    return openspiel.games()


register_adapter(Adapter(
    "openspiel", _openspiel,
    "OpenSpiel's turn-based games (extra: spiel); chance resolved from the seed, exact evaluation",
    "openspiel:kuhn_poker", _openspiel_games))
