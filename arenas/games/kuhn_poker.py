"""Kuhn poker, with exactly OpenSpiel's ``kuhn_poker`` rules.

| Import             | ``arenas.make("kuhn_poker_v0")``                       |
|--------------------|--------------------------------------------------------|
| Agents             | ``player_0``, ``player_1``                             |
| Actions            | ``pass``, ``bet`` (aliases: check/fold -> pass, call/raise -> bet) |
| Observations       | text: rules, legal actions; last: seat, history, card  |
| Rewards            | zero-sum: +-1 or +-2 at the end; unreadable answer: -2 |
| Parallel           | no (turn-based)                                        |

A three-card deck (J < Q < K); each player antes 1 and gets one card; player 0 acts first. A pass
after a bet folds; two passes, or a bet and a call, go to showdown and the higher card takes the pot.
:func:`info_state` gives OpenSpiel's information-state string of an agent (``"2pb"``: a King, then
pass and bet), which exact exploitability needs. The heuristic plays a Nash equilibrium (Kuhn 1950,
``alpha = 1/6``); the game value for player 0 is -1/18 against it.
"""

from __future__ import annotations

import re
from typing import Any

from arenas.core import ANSWER_FORMAT, TextArenaEnv
from arenas.parsing import parse_choice

NAME = "kuhn_poker_v0"
CARDS = ("J", "Q", "K")
CARD_NAMES = ("Jack (J)", "Queen (Q)", "King (K)")
ACTIONS = ["pass", "bet"]
ALIASES = {"check": "pass", "fold": "pass", "call": "bet", "raise": "bet"}
RULES = (
    "Kuhn poker. Deck: Jack < Queen < King. Each player antes 1 chip and holds one card.\n"
    "Player 0 acts first. 'bet' puts 1 more chip in; 'pass' puts none. After a bet, 'pass' folds\n"
    "(the bettor wins the pot) and 'bet' calls. Two passes or a bet and a call: the higher card wins."
)


class raw_env(TextArenaEnv):
    metadata = {"render_modes": ["human", "ansi"], "name": NAME, "is_parallelizable": False}
    zero_sum = True
    invalid_reward = -2.0  # the largest pot: an unreadable answer must never beat a fold (-1) as a way to give up

    def __init__(self, *, invalid_action: str = "penalize", render_mode: str | None = None):
        super().__init__({"player_0": ACTIONS, "player_1": ACTIONS}, invalid_action, render_mode)

    def _new_game(self, options: dict) -> None:
        deal = options.get("deal")  # (card of player 0, card of player 1) as indices, for exact enumeration
        if deal is None:
            deal = tuple(int(c) for c in self.np_random.permutation(3)[:2])
        self.cards = tuple(deal)
        self.history = ""  # "p"/"b" per action, as in OpenSpiel
        self.agent_selection = "player_0"

    def _legal(self, agent: str) -> list[str]:
        return ACTIONS

    def _parse(self, agent: str, text: str, legal: list[str]) -> str | None:
        return parse_choice(text, legal, ALIASES)

    def _private(self, agent: str) -> str | None:
        return CARD_NAMES[self.cards[int(agent[-1])]].split()[0]  # "Jack"

    def _prompt(self, agent: str) -> str:
        i = int(agent[-1])
        moves = [f"player {k % 2} {'bet' if h == 'b' else 'passed'}" for k, h in enumerate(self.history)]
        # The information state comes last, on one line: the nearer the answer, the easier for a small model to read.
        return (
            f"{RULES}\nLegal actions: pass, bet.\n{ANSWER_FORMAT}\n"
            f"You are player {i}. History: {', '.join(moves) if moves else 'no actions yet'}. "
            f"Your card: {CARD_NAMES[self.cards[i]]}."
        )

    def _play(self, agent: str, action: str) -> None:
        self.history += action[0]
        payoff = showdown_payoff(self.cards, self.history)
        if payoff is None:
            self.agent_selection = "player_1" if agent == "player_0" else "player_0"
        else:
            self._end({"player_0": float(payoff), "player_1": float(-payoff)})

    def _summary(self) -> str:
        return f"cards {CARDS[self.cards[0]]}{CARDS[self.cards[1]]} history '{self.history}'"


def showdown_payoff(cards: tuple[int, int], history: str) -> int | None:
    """Player 0's payoff once the betting ``history`` is over, else None (OpenSpiel's rules)."""
    winner = 1 if cards[0] > cards[1] else -1
    return {"pp": winner, "pbp": -1, "pbb": 2 * winner, "bp": 1, "bb": 2 * winner}.get(history)


def info_state(env: Any, agent: str) -> str:
    """OpenSpiel's information-state string for ``agent``: its card index then the history."""
    base = env.unwrapped
    return f"{base.cards[int(agent[-1])]}{base.history}"


_CARD = re.compile(r"Your card: (Jack|Queen|King)")
_HIST = re.compile(r"History: (.*?)\. Your card")


def nash_probs(text: str, alpha: float = 1 / 6) -> dict[str, float]:
    """A Nash equilibrium of Kuhn poker (probability of each action), read from the observation text."""
    card = ("Jack", "Queen", "King").index(_CARD.search(text).group(1))
    hist = "".join("b" if " bet" in m else "p" for m in _HIST.search(text).group(1).split(", ") if m.startswith("player"))
    bet = {  # probability of 'bet' by (history, card)
        "": (alpha, 0.0, 3 * alpha),
        "pb": (0.0, alpha + 1 / 3, 1.0),
        "p": (1 / 3, 0.0, 1.0),
        "b": (0.0, 1 / 3, 1.0),
    }[hist][card]
    return {"bet": bet, "pass": 1.0 - bet}


def heuristic(text: str, info: dict, rng: Any) -> str:
    probs = nash_probs(text)
    return "bet" if rng.random() < probs["bet"] else "pass"
