"""Tic-tac-toe.

| Import             | ``arenas.make("tictactoe_v0")``                           |
|--------------------|-----------------------------------------------------------|
| Agents             | ``player_0`` (X, moves first), ``player_1`` (O)            |
| Actions            | a free cell, ``1``..``9`` (row by row from the top left)   |
| Observations       | text: rules, the board with cell numbers, legal cells      |
| Rewards            | zero-sum: +1 win, -1 loss, 0 draw                          |
| Parallel           | no (turn-based)                                           |

The heuristic wins when it can, blocks when it must, then prefers the centre, corners, edges.
"""

from __future__ import annotations

import re
from typing import Any

from arenas.core import ANSWER_FORMAT, TextArenaEnv

NAME = "tictactoe_v0"
CELLS = [str(i) for i in range(1, 10)]
LINES = ((0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8), (0, 4, 8), (2, 4, 6))
RULES = "Tic-tac-toe on a 3x3 board. Cells are numbered 1-9 row by row. Three of your marks in a row, column or diagonal wins."
MARKS = ("X", "O")


class raw_env(TextArenaEnv):
    metadata = {"render_modes": ["human", "ansi"], "name": NAME, "is_parallelizable": False}
    zero_sum = True

    def __init__(self, *, invalid_action: str = "penalize", render_mode: str | None = None):
        super().__init__({"player_0": CELLS, "player_1": CELLS}, invalid_action, render_mode)

    def _new_game(self, options: dict) -> None:
        self.board = [""] * 9
        self.agent_selection = "player_0"

    def _legal(self, agent: str) -> list[str]:
        return [CELLS[i] for i in range(9) if not self.board[i]]

    def _grid(self) -> str:
        b = [m or str(i + 1) for i, m in enumerate(self.board)]
        return f"{b[0]}|{b[1]}|{b[2]}\n-+-+-\n{b[3]}|{b[4]}|{b[5]}\n-+-+-\n{b[6]}|{b[7]}|{b[8]}"

    def _prompt(self, agent: str) -> str:
        mark = MARKS[agent == "player_1"]
        return (
            f"{RULES}\nYou are {agent}, playing {mark}. Board (numbers are free cells):\n{self._grid()}\n"
            f"Legal actions: {', '.join(self._legal(agent))}.\n{ANSWER_FORMAT}"
        )

    def _play(self, agent: str, action: str) -> None:
        me = agent == "player_1"
        self.board[int(action) - 1] = MARKS[me]
        if winner(self.board) is not None:
            self._end({agent: 1.0, ("player_0", "player_1")[not me]: -1.0})
        elif all(self.board):
            self._end({})
        else:
            self.agent_selection = ("player_1", "player_0")[me]

    def _summary(self) -> str:
        return self._grid()


def winner(board: list[str]) -> str | None:
    for a, b, c in LINES:
        if board[a] and board[a] == board[b] == board[c]:
            return board[a]
    return None


_ROW = re.compile(r"^([XO1-9])\|([XO1-9])\|([XO1-9])$", re.M)


def heuristic(text: str, info: dict, rng: Any) -> str:
    board = [c if c in "XO" else "" for row in _ROW.findall(text) for c in row]
    me = re.search(r"playing ([XO])", text).group(1)
    other = "O" if me == "X" else "X"
    free = [i for i in range(9) if not board[i]]
    for mark in (me, other):  # win, else block
        for i in free:
            trial = board.copy()
            trial[i] = mark
            if winner(trial) == mark:
                return CELLS[i]
    for group in ((4,), (0, 2, 6, 8), (1, 3, 5, 7)):
        options = [i for i in group if i in free]
        if options:
            return CELLS[int(rng.choice(options))]
    return CELLS[free[0]]
