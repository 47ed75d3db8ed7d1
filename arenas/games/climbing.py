"""The climbing game (Claus & Boutilier 1998): a cooperative 3x3 matrix game with simultaneous moves.

| Import             | ``arenas.make("climbing_v0")``, ``arenas.make_parallel("climbing_v0")`` |
|--------------------|---------------------------------------------------------------------|
| Agents             | ``agent_0`` (row player), ``agent_1`` (column player)                |
| Actions            | ``a``, ``b``, ``c`` (aliases: "option A", "action A", "choice A", ...) |
| Observations       | text: rules, the payoff table, your role, past rounds, legal actions  |
| Rewards            | shared: both agents get the table's payoff, every round               |
| Parallel           | yes (simultaneous moves)                                              |

The payoff table (row = agent_0's action, column = agent_1's action; both agents get the entry)::

            a     b     c
      a    11   -30     0
      b   -30     7     6
      c     0     0     5

The optimum is (a, a), but miscoordinating around it costs -30, so independent learners are known to
settle on (c, c) or (b, b): the game separates joint (centralised) from independent training.

Each round both agents choose at once: the AEC order is agent_0 then agent_1, and a round's moves and
payoff become visible only once both have moved, so ``aec_to_parallel`` is exact. ``rounds`` (default 1)
repeats the game; the reward of each round is given at its end, so a return sums the rounds' payoffs.
``payoffs`` replaces the table (a 3x3 list of lists of numbers). With ``normalize=True`` (the default)
rewards are the payoffs divided by the table's largest absolute value (30 by default), so they lie in
[-1, 1] like the -1 for an invalid action; the prompt always shows the table's own numbers as points.
An invalid move under ``penalize`` ends the episode at the end of its round (-1 to each offender, 0 to the
other), because PettingZoo's parallel API allows agents to finish only at a cycle's end.

The heuristic plays its part of the best joint action of the table it reads in the prompt: the social
optimum, ``a`` with the default table (both playing it get 11 points each).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from numbers import Real
from typing import Any

from arenas.core import ANSWER_FORMAT, TextArenaEnv
from arenas.parsing import parse_choice

NAME = "climbing_v0"
AGENTS = ("agent_0", "agent_1")
ACTIONS = ["a", "b", "c"]
ALIASES = {f"{word} {x}": x for word in ("option", "action", "choice", "play", "choose") for x in ACTIONS}
PAYOFFS = ((11.0, -30.0, 0.0), (-30.0, 7.0, 6.0), (0.0, 0.0, 5.0))


def _validate(payoffs: Any) -> tuple[tuple[float, ...], ...]:
    if isinstance(payoffs, (str, bytes)) or not isinstance(payoffs, Sequence) or len(payoffs) != 3:
        raise ValueError(f"payoffs must be a 3x3 list of lists of numbers (rows: agent_0's a, b, c), got {payoffs!r}")
    rows = []
    for i, row in enumerate(payoffs):
        if isinstance(row, (str, bytes)) or not isinstance(row, Sequence) or len(row) != 3:
            raise ValueError(f"payoffs must be a 3x3 list of lists of numbers; row {i} is {row!r}")
        for v in row:
            if isinstance(v, bool) or not isinstance(v, Real) or not math.isfinite(v):
                raise ValueError(f"payoffs must hold finite numbers; row {i} holds {v!r}")
        rows.append(tuple(float(v) for v in row))
    return tuple(rows)


class raw_env(TextArenaEnv):
    metadata = {"render_modes": ["human", "ansi"], "name": NAME, "is_parallelizable": True}

    def __init__(self, *, rounds: int = 1, payoffs: Sequence[Sequence[float]] = PAYOFFS, normalize: bool = True,
                 invalid_action: str = "penalize", render_mode: str | None = None):
        if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
            raise ValueError(f"rounds must be an integer >= 1, got {rounds!r}")
        table = _validate(payoffs)
        super().__init__({a: ACTIONS for a in AGENTS}, invalid_action, render_mode)
        self.rounds, self.payoffs, self.normalize = rounds, table, bool(normalize)
        self.scale = (max(abs(v) for row in table for v in row) or 1.0) if self.normalize else 1.0

    def payoff(self, row: str, column: str) -> float:
        """Points of the joint action (agent_0 plays ``row``, agent_1 plays ``column``), before normalising."""
        return self.payoffs[ACTIONS.index(row)][ACTIONS.index(column)]

    def _new_game(self, options: dict) -> None:
        self.history: list[tuple[str, str]] = []  # (agent_0's move, agent_1's move) per finished round
        self.pending: dict[str, str] = {}  # moves of the current round, hidden until it ends
        self.agent_selection = AGENTS[0]

    def _legal(self, agent: str) -> list[str]:
        return ACTIONS

    def _parse(self, agent: str, text: str, legal: list[str]) -> str | None:
        return parse_choice(text, legal, ALIASES)

    def _table(self, agent: str) -> list[str]:
        """The payoff table from ``agent``'s side: rows are its own action, columns the other's."""
        mine = agent == AGENTS[0]
        lines = [" " * 9 + "".join(f"{x:>6}" for x in ACTIONS)]
        for x in ACTIONS:
            cells = [self.payoff(x, y) if mine else self.payoff(y, x) for y in ACTIONS]
            lines.append(f"  you {x}: " + "".join(f"{v:>6g}" for v in cells))
        return lines

    def _prompt(self, agent: str) -> str:
        i, other = AGENTS.index(agent), AGENTS[agent == AGENTS[0]]
        lines = [
            f"A cooperative game, {self.rounds} round{'s' * (self.rounds > 1)}. You and {other} are on the same team:",
            "you always get the same points. Each round you both choose at the same time, without seeing the",
            "other's choice, one of the options a, b, c. Points for each of you (rows: your choice,",
            f"columns: {other}'s choice):",
            *self._table(agent),
            f"Maximise the team's total points. You are {agent}.",
        ]
        if self.history:
            lines.append("History:")
            for k, moves in enumerate(self.history, 1):
                lines.append(f"  Round {k}: you chose {moves[i]}, {other} chose {moves[1 - i]}; "
                             f"you both got {self.payoff(*moves):g}.")
        else:
            lines.append("History: no rounds played yet.")
        lines.append(f"Team total so far: {sum(self.payoff(*m) for m in self.history):g}.")
        if all(self.terminations.values()):
            lines.append("The game is over.")
        else:
            lines += [f"Round {len(self.history) + 1} of {self.rounds}: choose your option.",
                      f"Legal actions: {', '.join(ACTIONS)}.", ANSWER_FORMAT]
        return "\n".join(lines)

    def _play(self, agent: str, action: str) -> None:
        self.pending[agent] = action
        if agent == AGENTS[0]:
            self.agent_selection = AGENTS[1]
        else:
            self._end_round()

    def _end_round(self) -> None:
        self.agent_selection = AGENTS[0]
        if self._settle_offenders():
            return
        moves = (self.pending[AGENTS[0]], self.pending[AGENTS[1]])
        self.history.append(moves)
        self.pending = {}
        reward = self.payoff(*moves) / self.scale
        self.rewards.update({a: reward for a in AGENTS})
        if len(self.history) == self.rounds:
            self._end({})

    def _summary(self) -> str:
        moves = " ".join(a + b for a, b in self.history) or "-"
        total = sum(self.payoff(*m) for m in self.history)
        return f"round {len(self.history)}/{self.rounds} moves {moves} team points {total:g}"


_ROW = re.compile(r"^  you ([abc]):\s+(\S+)\s+(\S+)\s+(\S+)\s*$", re.M)


def heuristic(text: str, info: dict, rng: Any) -> str:
    """The social optimum: my part of the best joint action in the table (``a`` with the default table)."""
    best, choice = -math.inf, "a"
    for row in _ROW.findall(text):
        try:
            values = [float(v) for v in row[1:]]
        except ValueError:
            continue
        if max(values) > best:
            best, choice = max(values), row[0]
    return choice
