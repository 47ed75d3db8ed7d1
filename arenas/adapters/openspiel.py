"""OpenSpiel games as Agora arenas: ``arenas.make("openspiel:leduc_poker")``.

| Import             | ``arenas.make("openspiel:<game>", observation="auto", invalid_action="penalize")`` |
|--------------------|-------------------------------------------------------------------------|
| Agents             | ``player_0`` .. ``player_{n-1}`` (OpenSpiel's players 0 .. n-1)          |
| Actions            | OpenSpiel's action strings (``Pass``, ``x(1,1)``, ``2-5``), parsed tolerantly |
| Observations       | text: the game's information-state or observation string, legal actions, answer format |
| Rewards            | OpenSpiel's rewards as they accrue (``returns()`` differences); the final returns sum to them |
| Parallel           | no (turn-based games only)                                              |

``<game>`` is anything ``pyspiel.load_game`` accepts, parameters included:
``openspiel:liars_dice(numdice=2)``. Chance nodes are resolved inside the arena from its seed, so agents
only ever see decision nodes. ``observation="auto"`` shows imperfect-information games through their
information-state string (perfect recall: what exploitability is defined on) and perfect-information games
through their observation string (the board) plus the moves so far; ``"info_state"`` or ``"observation"``
force one. The action mask runs over OpenSpiel's distinct actions; its vocabulary names them as the game
spells them at the start (``#<id>`` when there are more than 64 or they clash), and that name is accepted as a
move too whenever the action is legal.

``reset(options={"history": [...]})`` replays OpenSpiel action ids (chance outcomes included) before play
continues: exact evaluation walks the game tree through it (``league.exploitability``).

Simultaneous-move games (``goofspiel``, matrix games) are refused with
:class:`~arenas.registry.UnsupportedArena`; OpenSpiel's own ``turn_based_simultaneous_game(game=...)``
wrapper makes them turn-based (each player then moves without seeing the others' choice).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from arenas.core import ANSWER_FORMAT, CHARSET, TextArenaEnv, clip_text, format_legal
from arenas.parsing import parse_choice
from arenas.registry import ArenaSpec, UnsupportedArena

PREFIX = "openspiel"
OBSERVATIONS = ("auto", "info_state", "observation")
SUITS = str.maketrans({"\u2660": "S", "\u2665": "H", "\u2666": "D", "\u2663": "C"})  # card games' suit symbols
MAX_NAMED_ACTIONS = 64  # larger action spaces (chess: 4674) are named #<id> in the mask's vocabulary


def ascii_name(text: str) -> str:
    """Text inside the observation space (printable ASCII): card suits become letters, anything else '?'."""
    return "".join(c if c in CHARSET else "?" for c in text.translate(SUITS))


def _pyspiel():
    try:
        import pyspiel
    except ImportError:
        raise UnsupportedArena("OpenSpiel is not installed: pip install open_spiel (the project's spiel extra)") from None
    return pyspiel


def load(game: str):
    """The pyspiel game for a name with optional parameters, checked to be a turn-based game we can play."""
    pyspiel = _pyspiel()
    short = game.partition("(")[0]
    if short not in pyspiel.registered_names() and short.startswith("python_"):
        import open_spiel.python.games  # noqa: F401  (registers OpenSpiel's games written in Python)
    if short not in pyspiel.registered_names():
        import difflib

        close = difflib.get_close_matches(short, pyspiel.registered_names(), n=3)
        raise KeyError(f"unknown arena '{PREFIX}:{game}': OpenSpiel has no game {short!r}."
                       + (f" Did you mean {', '.join(close)}?" if close else ""))
    try:
        loaded = pyspiel.load_game(game)
    except pyspiel.SpielError as e:
        raise UnsupportedArena(f"{PREFIX}:{game}: OpenSpiel cannot load it: {e}") from None
    kind = loaded.get_type()
    if kind.dynamics == pyspiel.GameType.Dynamics.SIMULTANEOUS:
        raise UnsupportedArena(
            f"{PREFIX}:{game} is a simultaneous-move game; arenas from this adapter are turn-based (AEC). "
            f"Wrap it in OpenSpiel's turn-based version: {PREFIX}:turn_based_simultaneous_game(game={game})")
    if kind.dynamics != pyspiel.GameType.Dynamics.SEQUENTIAL:
        raise UnsupportedArena(f"{PREFIX}:{game}: {kind.dynamics.name.lower()} games are not supported, only turn-based ones")
    if kind.chance_mode == pyspiel.GameType.ChanceMode.SAMPLED_STOCHASTIC:
        raise UnsupportedArena(f"{PREFIX}:{game}: its chance outcomes are sampled inside OpenSpiel (no explicit "
                               "chance nodes), so the arena's seed could not decide them")
    if not (kind.provides_information_state_string or kind.provides_observation_string):
        raise UnsupportedArena(f"{PREFIX}:{game} provides neither information-state nor observation strings: "
                               "there is no text to show an agent")
    return loaded


class raw_env(TextArenaEnv):
    """One OpenSpiel game (see the module docstring)."""

    metadata = {"render_modes": ["human", "ansi"], "name": "openspiel", "is_parallelizable": False}

    def __init__(self, game: str, *, observation: str = "auto", invalid_action: str = "penalize",
                 render_mode: str | None = None):
        if observation not in OBSERVATIONS:
            raise ValueError(f"observation must be one of {OBSERVATIONS}, got {observation!r}")
        pyspiel = _pyspiel()
        self.game_name = game
        self.game = load(game)
        kind = self.game.get_type()
        perfect = kind.information == pyspiel.GameType.Information.PERFECT_INFORMATION
        if observation == "auto":
            observation = "observation" if (perfect and kind.provides_observation_string) or \
                not kind.provides_information_state_string else "info_state"
        if observation == "info_state" and not kind.provides_information_state_string:
            raise UnsupportedArena(f"{PREFIX}:{game} provides no information-state string; use observation='observation'")
        if observation == "observation" and not kind.provides_observation_string:
            raise UnsupportedArena(f"{PREFIX}:{game} provides no observation string; use observation='info_state'")
        self.observation, self.show_history = observation, perfect
        self.metadata = {**self.metadata, "name": f"{PREFIX}:{game}"}
        self.zero_sum = kind.utility == pyspiel.GameType.Utility.ZERO_SUM
        self.invalid_reward = float(self.game.min_utility())  # an unparseable move loses as badly as the game allows
        n = self.game.num_players()
        super().__init__({f"player_{p}": self._vocabulary(p) for p in range(n)}, invalid_action, render_mode)

    def _vocabulary(self, player: int) -> list[str]:
        """The mask's names of OpenSpiel's distinct actions: as the game spells them at the start when there are
        few and all are distinct, else ``#<id>``. Either spelling of a legal action is accepted as a move."""
        n = self.game.num_distinct_actions()
        if n <= MAX_NAMED_ACTIONS:
            state = self.game.new_initial_state()
            try:
                names = [ascii_name(state.action_to_string(player, a)) for a in range(n)]
            except _pyspiel().SpielError:
                names = []
            if len(set(names)) == n:
                return names
        return [f"#{a}" for a in range(n)]

    # ------------------------------------------------------------------ hooks
    def _new_game(self, options: dict) -> None:
        self.state = self.game.new_initial_state()
        self.moves: list[str] = []  # every action so far as spelled when it was taken ("chance: ..." for chance)
        for action in options.get("history", ()):
            self._apply(int(action))
        self._returns = np.zeros(self.game.num_players())
        self._advance()

    def _advance(self) -> None:
        """Resolve chance nodes from the arena's generator; pay out the change in returns; pick who moves."""
        while self.state.is_chance_node():
            outcomes, probs = zip(*self.state.chance_outcomes())
            probs = np.asarray(probs, dtype=float)
            self._apply(int(outcomes[int(self.np_random.choice(len(outcomes), p=probs / probs.sum()))]))
        returns = np.asarray(self.state.returns(), dtype=float)
        delta, self._returns = returns - self._returns, returns
        gains = {f"player_{p}": float(delta[p]) for p in range(len(delta))}
        if self.state.is_terminal():
            self._end(gains)
            return
        for agent, gain in gains.items():
            self.rewards[agent] += gain
        self.agent_selection = f"player_{self.state.current_player()}"

    def _apply(self, action: int) -> None:
        player = self.state.current_player()
        name = ascii_name(self.state.action_to_string(player, action))
        self.moves.append(f"chance: {name}" if self.state.is_chance_node() else name)
        self.state.apply_action(action)

    def _legal_ids(self) -> list[int]:
        return list(self.state.legal_actions()) if not self.state.is_terminal() else []

    def _legal(self, agent: str) -> list[str]:
        p = int(agent.rsplit("_", 1)[1])
        if self.state.is_terminal() or self.state.current_player() != p:
            return []
        return list(self._legal_names(p))

    def _legal_names(self, player: int) -> dict[str, int]:
        """Legal action strings now -> action ids (``#id`` added where two legal actions share a name)."""
        ids = self._legal_ids()
        names = [ascii_name(self.state.action_to_string(player, a)) for a in ids]
        return {(s if names.count(s) == 1 else f"{s} #{a}"): a for s, a in zip(names, ids)}

    def _parse(self, agent: str, text: str, legal: list[str]) -> str | None:
        p = int(agent.rsplit("_", 1)[1])
        by_id = {a: s for s, a in self._legal_names(p).items()}
        vocab = self.vocabularies[agent]
        aliases = {vocab[a]: s for a, s in by_id.items() if vocab[a] != s}  # the start-of-game spelling
        return parse_choice(text, legal, aliases)

    def _play(self, agent: str, action: str) -> None:
        p = int(agent.rsplit("_", 1)[1])
        self._apply(self._legal_names(p)[action])
        self._advance()

    def _text(self, player: int) -> str:
        try:
            if self.observation == "info_state":
                return self.state.information_state_string(player)
            return self.state.observation_string(player)
        except Exception:  # noqa: BLE001 - some games do not describe terminal states
            return str(self.state)

    def _prompt(self, agent: str) -> str:
        p = int(agent.rsplit("_", 1)[1])
        label = "Your information state" if self.observation == "info_state" else "What you observe"
        lines = [f"OpenSpiel game {self.game.get_type().long_name} ({self.game_name}). "
                 f"You are player {p} of {self.game.num_players()}.",
                 f"{label} (OpenSpiel's string):", self._text(p).translate(SUITS) or "(empty: the game has just started)"]
        if self.show_history:  # perfect information: every move is public
            lines.append(f"Moves so far: {', '.join(self.moves) if self.moves else 'none'}.")
        legal = self._legal(agent)
        if legal:
            lines += [f"Legal actions: {format_legal(legal)}.", ANSWER_FORMAT]
        elif self.state.is_terminal():
            lines.append(f"The game is over. Your return: {self.state.returns()[p]:g}.")
        else:
            lines.append(f"It is player {self.state.current_player()}'s turn.")
        return clip_text("\n".join(lines))

    def observe(self, agent: str) -> dict[str, Any]:
        mask = np.zeros(len(self.vocabularies[agent]), dtype=np.int8)
        if not self.terminations.get(agent, True) and agent == self.agent_selection:
            mask[self._legal_ids()] = 1
        return {"text": self._prompt(agent), "action_mask": mask}

    def _summary(self) -> str:
        return f"{self.game_name}: {str(self.state).strip() or 'start'}\nreturns so far {self._returns.tolist()}"


# ---------------------------------------------------------------------------- the adapter
def games() -> list[str]:
    """OpenSpiel's registered names of turn-based games (simultaneous-move ones left out)."""
    pyspiel = _pyspiel()
    return sorted(g.short_name for g in pyspiel.registered_games()
                  if g.dynamics == pyspiel.GameType.Dynamics.SEQUENTIAL)


def resolve(game: str) -> ArenaSpec:
    loaded = load(game)
    pyspiel = _pyspiel()
    U = pyspiel.GameType.Utility
    rewards = {U.ZERO_SUM: "zero-sum", U.IDENTICAL: "shared", U.CONSTANT_SUM: "constant-sum"}.get(
        loaded.get_type().utility, "general-sum")
    return ArenaSpec(f"{PREFIX}:{game}", functools.partial(raw_env, game), str(loaded.num_players()), False, rewards,
                     f"OpenSpiel's {loaded.get_type().long_name}")
