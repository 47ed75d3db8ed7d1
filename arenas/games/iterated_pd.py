"""Iterated prisoner's dilemma, with simultaneous moves and optional talk before each round.

| Import             | ``arenas.make("iterated_pd_v0")``, ``arenas.make_parallel("iterated_pd_v0")`` |
|--------------------|---------------------------------------------------------------------|
| Agents             | ``player_0``, ``player_1``                                           |
| Actions            | ``cooperate``, ``defect`` (aliases: c/coop/silent, d/betray/confess)  |
| Observations       | text: rules and payoff table, round k of N, both players' past moves  |
| Rewards            | general-sum: the payoff table, every round                            |
| Parallel           | yes (simultaneous moves)                                              |

Each round both players choose at once: the AEC order is player_0 then player_1, and a round's moves
and payoffs become visible only once both have moved, so ``aec_to_parallel`` is exact. With
``talk=True`` each round opens with a talk cycle (both write a message, delivered by the channel at
the start of the move cycle) and the arena asks for a channel by default. An invalid move under
``penalize`` ends the episode at the end of its cycle (-1 to each offender), because PettingZoo's
parallel API allows agents to finish only at a cycle's end. The heuristic plays tit-for-tat.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from arenas.core import ANSWER_FORMAT, TextArenaEnv
from arenas.parsing import parse_choice

NAME = "iterated_pd_v0"
AGENTS = ("player_0", "player_1")
ACTIONS = ["cooperate", "defect"]
ALIASES = {"c": "cooperate", "coop": "cooperate", "cooperation": "cooperate", "silent": "cooperate",
           "stay silent": "cooperate", "d": "defect", "defection": "defect", "betray": "defect", "confess": "defect"}
PAYOFFS = {"reward": 3.0, "sucker": 0.0, "temptation": 5.0, "punishment": 1.0}
PAST = {"cooperate": "cooperated", "defect": "defected"}


class raw_env(TextArenaEnv):
    metadata = {"render_modes": ["human", "ansi"], "name": NAME, "is_parallelizable": True}

    def __init__(self, *, rounds: int = 5, payoffs: Mapping[str, float] = PAYOFFS, talk: bool = False,
                 invalid_action: str = "penalize", render_mode: str | None = None):
        if rounds < 1:
            raise ValueError(f"rounds must be >= 1, got {rounds}")
        unknown = sorted(set(payoffs) - set(PAYOFFS))
        if unknown:
            raise ValueError(f"unknown payoff keys {unknown}; the keys are {sorted(PAYOFFS)}")
        p = {**PAYOFFS, **{k: float(v) for k, v in payoffs.items()}}
        if not p["temptation"] > p["reward"] > p["punishment"] > p["sucker"]:
            raise ValueError(f"a prisoner's dilemma needs temptation > reward > punishment > sucker, got {p}")
        super().__init__({a: ACTIONS for a in AGENTS}, invalid_action, render_mode)
        self.rounds, self.payoffs, self.talk = rounds, p, talk
        self.requires_channel = talk  # the talk cycles need a channel to carry anything
        # table[(my move, their move)] = (my points, their points)
        R, S, T, P = p["reward"], p["sucker"], p["temptation"], p["punishment"]
        self.table = {("cooperate", "cooperate"): (R, R), ("cooperate", "defect"): (S, T),
                      ("defect", "cooperate"): (T, S), ("defect", "defect"): (P, P)}

    def _new_game(self, options: dict) -> None:
        self.history: list[tuple[str, str]] = []  # (player_0's move, player_1's move) per finished round
        self.phase = "talk" if self.talk else "move"
        self.pending: dict[str, str] = {}  # moves of the current cycle, hidden until it ends
        self.agent_selection = AGENTS[0]

    def _legal(self, agent: str) -> list[str]:
        return ACTIONS if self.phase == "move" else []

    def _parse(self, agent: str, text: str, legal: list[str]) -> str | None:
        return parse_choice(text, legal, ALIASES)

    def _prompt(self, agent: str) -> str:
        i, other, p = AGENTS.index(agent), AGENTS[agent == AGENTS[0]], self.payoffs
        lines = [
            f"Iterated prisoner's dilemma, {self.rounds} rounds. Each round you and {other} choose at the same time,",
            "without seeing the other's choice: cooperate or defect. Points this round (you, them):",
            f"  both cooperate: {p['reward']:g}, {p['reward']:g}   both defect: {p['punishment']:g}, {p['punishment']:g}",
            f"  you cooperate, they defect: {p['sucker']:g}, {p['temptation']:g}   "
            f"you defect, they cooperate: {p['temptation']:g}, {p['sucker']:g}",
            f"Maximise your own total points. You are {agent}.",
        ]
        if self.history:
            lines.append("History:")
            for k, moves in enumerate(self.history, 1):
                mine, theirs = self.table[(moves[i], moves[1 - i])]
                lines.append(f"  Round {k}: you {PAST[moves[i]]}, {other} {PAST[moves[1 - i]]}; "
                             f"you got {mine:g}, they got {theirs:g}.")
        else:
            lines.append("History: no rounds played yet.")
        totals = [sum(self.table[(m[i], m[1 - i])][j] for m in self.history) for j in (0, 1)]
        lines.append(f"Total so far: you {totals[0]:g}, {other} {totals[1]:g}.")
        now = f"Round {len(self.history) + 1} of {self.rounds}"
        if all(self.terminations.values()):
            lines.append("The game is over.")
        elif self.phase == "talk":
            lines += [f"{now}: talk first. Everything you write now is sent to {other} as one short message",
                      "(they read it before choosing); no move is made on this turn."]
        else:
            lines += [f"{now}: choose your move.", f"Legal actions: {', '.join(ACTIONS)}.", ANSWER_FORMAT]
        return "\n".join(lines)

    def _play(self, agent: str, action: str) -> None:
        if self.phase == "move":
            self.pending[agent] = action
        if agent == AGENTS[0]:
            self.agent_selection = AGENTS[1]
        else:
            self._end_cycle()

    def _end_cycle(self) -> None:
        self.agent_selection = AGENTS[0]
        if self._settle_offenders():
            return
        if self.phase == "talk":
            self.phase = "move"
        else:
            moves = (self.pending[AGENTS[0]], self.pending[AGENTS[1]])
            self.history.append(moves)
            self.pending = {}
            self.rewards.update(zip(AGENTS, self.table[moves]))
            if len(self.history) == self.rounds:
                self._end({})
            else:
                self.phase = "talk" if self.talk else "move"

    def _summary(self) -> str:
        moves = " ".join(a[0].upper() + b[0].upper() for a, b in self.history) or "-"
        return f"round {len(self.history)}/{self.rounds} ({self.phase}) moves {moves}"


_ROUND = re.compile(r"^  Round \d+: you (cooperated|defected), \S+ (cooperated|defected);", re.M)


def heuristic(text: str, info: dict, rng: Any) -> str:
    """Tit-for-tat: cooperate first, then copy the other's last move; on talk turns, say so."""
    if not info.get("legal_actions"):
        return "I play tit-for-tat: I cooperate as long as you do."
    rounds = _ROUND.findall(text)
    return "defect" if rounds and rounds[-1][1] == "defected" else "cooperate"
