"""Negotiation: split a pool of items when each side values them privately ("Deal or No Deal", Lewis et al. 2017).

| Import             | ``arenas.make("negotiation_v0")`` (a complete channel is added by default) |
|--------------------|----------------------------------------------------------------------|
| Agents             | ``player_0`` (proposes first), ``player_1``                            |
| Actions            | ``propose A B C`` (what the proposer takes), ``accept``                 |
| Observations       | text: pool, your own values, the proposal history, the offer's worth   |
| Rewards            | general-sum: the value of the items you get, by your values; 0 if no deal |
| Parallel           | no (alternating turns)                                                 |

Each episode draws a count in 1..max_count per item type and, for each player, private integer values
with ``sum(count * value) == total_value``, uniformly over all such valuations, every type valued by at
least one player when possible. Players alternate: propose a split, or accept the other's last proposal,
which ends the game. After ``max_turns`` actions without acceptance nobody gets anything. Free talk is
part of the game (``<message>`` tags, through the channel). The heuristic accepts offers worth a falling
share of ``total_value`` (70% -> 40%) and otherwise keeps what it values most, conceding its cheapest items.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

from arenas.core import ANSWER_FORMAT, TextArenaEnv
from arenas.parsing import answer_candidates, normalize

NAME = "negotiation_v0"
AGENTS = ("player_0", "player_1")
ITEMS = ("book", "hat", "ball", "pen", "cup", "key")
RULES = """Negotiation with {other}: split a pool of items. Each player privately values each item type; the whole
pool is worth {total} to each player, but the other player's values may differ and are hidden from you.
Players alternate. On your turn either propose a split, 'propose {letters}' = how many of each item type YOU take
({names}, in that order; the other player gets the rest), or 'accept' the other player's last proposal.
An accepted proposal ends the game: each player scores the value of the items they get, by their own values.
After {turns} turns with no accepted proposal there is no deal and both score 0. Talking is part of the game:
a message for the other player goes in <message>...</message> tags next to your answer."""


def propose(split: tuple[int, ...] | list[int]) -> str:
    return "propose " + " ".join(map(str, split))


def _ways(counts: list[int], total: int) -> list[list[int]]:
    """``ways[i][t]``: how many valuations of item types ``i..`` are worth exactly ``t`` (a small DP)."""
    ways = [[0] * (total + 1) for _ in counts] + [[1] + [0] * total]
    for i in reversed(range(len(counts))):
        for t in range(total + 1):
            ways[i][t] = sum(ways[i + 1][t - counts[i] * v] for v in range(t // counts[i] + 1))
    return ways


def sample_values(rng: Any, counts: list[int], total: int, low: list[int] | None = None) -> list[int] | None:
    """Integer values ``v >= low`` with ``sum(c * v) == total``, uniform over all solutions (None if none)."""
    low = low or [0] * len(counts)
    rest = total - sum(c * lo for c, lo in zip(counts, low))
    ways = _ways(counts, rest) if rest >= 0 else None
    if ways is None or ways[0][rest] == 0:
        return None
    values = []
    for i, c in enumerate(counts):
        weights = [ways[i + 1][rest - c * v] for v in range(rest // c + 1)]
        v = int(rng.choice(len(weights), p=[w / sum(weights) for w in weights]))
        values.append(v + low[i])
        rest -= c * v
    return values


class raw_env(TextArenaEnv):
    metadata = {"render_modes": ["human", "ansi"], "name": NAME, "is_parallelizable": False}
    requires_channel = True

    def __init__(self, *, num_item_types: int = 3, max_count: int = 4, total_value: int = 10, max_turns: int = 6,
                 invalid_action: str = "penalize", render_mode: str | None = None):
        if not 1 <= num_item_types <= len(ITEMS):
            raise ValueError(f"num_item_types must be in 1..{len(ITEMS)}, got {num_item_types}")
        if max_count < 1 or total_value < 0 or max_turns < 1:
            raise ValueError("need max_count >= 1, total_value >= 0 and max_turns >= 1")
        self.items, self.max_count = ITEMS[:num_item_types], max_count
        self.total_value, self.max_turns = total_value, max_turns
        self.all_splits = list(itertools.product(range(max_count + 1), repeat=num_item_types))
        vocabulary = ["accept"] + [propose(s) for s in self.all_splits]
        super().__init__({a: vocabulary for a in AGENTS}, invalid_action, render_mode)

    def _new_game(self, options: dict) -> None:
        """Options ``counts`` (list) and ``values`` ({agent: list}) fix the deal; the rest is drawn."""
        n, rng = len(self.items), self.np_random
        counts = options.get("counts")
        if counts is None:
            for _ in range(100):  # a pool whose values can add up to total_value
                counts = [int(c) for c in rng.integers(1, self.max_count + 1, size=n)]
                if _ways(counts, self.total_value)[0][self.total_value]:
                    break
            else:
                counts[0] = 1  # a single unit of one type makes every total reachable
        if len(counts) != n or not all(1 <= c <= self.max_count for c in counts):
            raise ValueError(f"counts must be {n} integers in 1..{self.max_count}, got {counts}")
        values = dict(options.get("values") or {})
        if "player_0" not in values:
            values["player_0"] = sample_values(rng, counts, self.total_value)
        if "player_1" not in values:  # prefer values that make every item type worth something to someone
            low = [int(v == 0) for v in values["player_0"] or []]
            values["player_1"] = sample_values(rng, counts, self.total_value, low) or sample_values(rng, counts, self.total_value)
        for a in AGENTS:
            if values[a] is None or len(values[a]) != n or sum(c * v for c, v in zip(counts, values[a])) != self.total_value:
                raise ValueError(f"{a}'s values {values[a]} do not price the pool {counts} at {self.total_value}")
        self.counts, self.values = list(counts), {a: list(values[a]) for a in AGENTS}
        self.history: list[tuple[str, tuple[int, ...]]] = []  # (proposer, what the proposer takes)
        self.deal: tuple[str, tuple[int, ...]] | None = None
        self.agent_selection = AGENTS[0]

    def _legal(self, agent: str) -> list[str]:
        offer = ["accept"] if self.history and self.history[-1][0] != agent else []
        return offer + [propose(s) for s in self.all_splits if all(x <= c for x, c in zip(s, self.counts))]

    def _parse(self, agent: str, text: str, legal: list[str]) -> str | None:
        return parse_action(text, self.items)

    def _worth(self, agent: str, items: list[int]) -> int:
        return sum(x * v for x, v in zip(items, self.values[agent]))

    def _share(self, agent: str, proposer: str, split: tuple[int, ...]) -> list[int]:
        """What ``agent`` gets if ``proposer``'s split is accepted."""
        return list(split) if agent == proposer else [c - x for c, x in zip(self.counts, split)]

    def _words(self, items: list[int] | tuple[int, ...]) -> str:
        return ", ".join(f"{x} {name}" + "s" * (x != 1) for x, name in zip(items, self.items))

    def _prompt(self, agent: str) -> str:
        other = AGENTS[agent == AGENTS[0]]
        letters = " ".join("ABCDEF"[: len(self.items)])
        names = ", ".join(i + "s" for i in self.items)
        values = ", ".join(f"{name} {v}" for name, v in zip(self.items, self.values[agent]))
        lines = [
            RULES.format(other=other, total=self.total_value, letters=letters, names=names, turns=self.max_turns),
            f"You are {agent}{' (you propose first)' if agent == AGENTS[0] else ''}. Maximise your own score.",
            f"Pool: {self._words(self.counts)}.", f"Your values: {values} (total {self.total_value}).",
            "History:" if self.history else "History: no proposals yet.",
        ]
        for k, (who, split) in enumerate(self.history, 1):
            rest = [c - x for c, x in zip(self.counts, split)]
            who_text, left = ("you", other) if who == agent else (who, "you")
            lines.append(f"  Turn {k}: {who_text} proposed to take {self._words(split)}, "
                         f"leaving {left} {self._words(rest)}.")
        if self.deal is not None or all(self.terminations.values()):
            deal = "no deal" if self.deal is None else f"deal; you got {self._words(self._share(agent, *self.deal))}"
            return "\n".join(lines + [f"The game is over: {deal}."])
        turn = len(self.history) + 1
        last = " (the last: if you do not accept, there is no deal)" if turn == self.max_turns else ""
        lines.append(f"Turn {turn} of {self.max_turns}{last}.")
        if self.history and self.history[-1][0] != agent:
            share = self._share(agent, *self.history[-1])
            worth = self._worth(agent, share)
            lines.append(f"Offer on the table: you get {self._words(share)}, worth {worth} to you if you accept.")
        if agent != self.agent_selection:
            return "\n".join(lines + [f"It is {other}'s turn; wait."])
        bounds = ", ".join(f"0<={ch}<={c}" for ch, c in zip(letters.split(), self.counts))
        accept = ", or accept" if "accept" in self._legal(agent) else ""
        lines += [f"Legal actions: propose {letters} with {bounds}{accept}.", ANSWER_FORMAT]
        return "\n".join(lines)

    def _play(self, agent: str, action: str) -> None:
        if action == "accept":
            self.deal = self.history[-1]
            self._end({a: float(self._worth(a, self._share(a, *self.deal))) for a in AGENTS})
            return
        self.history.append((agent, tuple(int(x) for x in action.split()[1:])))
        if len(self.history) >= self.max_turns:
            self._end({a: 0.0 for a in AGENTS})
        else:
            self.agent_selection = AGENTS[agent == AGENTS[0]]

    def _summary(self) -> str:
        last = f"{self.history[-1][0]} takes {list(self.history[-1][1])}" if self.history else "no proposal"
        return f"pool {self.counts} values {self.values}: {last} ({'DEAL' if self.deal else len(self.history)})"


_ACCEPT = re.compile(r"\b(accept|accepted|accepting|deal|agree|agreed)\b")
_NEGATION = re.compile(r"\b(no|not|don't|dont|never|reject|decline|refuse|won't|can't|cannot)\b")


def parse_split(text: str, items: tuple[str, ...]) -> list[int] | None:
    """A split from 'propose 2 1 0', 'propose: 2, 1, 0', '(2,1,0)', 'books=2 hats=1 balls=0', '2 books 1 hat 0 balls'."""
    keyword = list(re.finditer(r"\bpropos\w*", text))
    if keyword:  # read what follows the last 'propose', not the reasoning before it
        text = text[keyword[-1].end():]
    for pattern in (r"\b{}s?\b\s*[=:]?\s*(\d+)", r"(?<![\w.])(\d+)\s*{}s?\b"):  # "books=2", then "2 books"
        found = [re.findall(pattern.format(name), text) for name in items]
        if all(len(f) == 1 for f in found):
            return [int(f[0]) for f in found]
    numbers = re.findall(r"\d+", text)
    if (keyword or re.fullmatch(r"[\d\s,;()\[\]/-]+", text)) and len(numbers) == len(items):
        return [int(x) for x in numbers]
    return None


def parse_action(text: str, items: tuple[str, ...]) -> str | None:
    """'accept'/'deal'/'I accept your offer' -> accept; a proposal in any format above -> 'propose A B C'."""
    for candidate in answer_candidates(text):
        c = normalize(candidate)
        split = parse_split(c, items)
        if split is not None:
            return propose(split)
        if not re.search(r"\bpropos", c) and _ACCEPT.search(c) and not _NEGATION.search(c):
            return "accept"
    return None


_POOL = re.compile(r"^Pool: (.*)\.$", re.M)
_VALUES = re.compile(r"^Your values: (.*) \(total", re.M)
_TURN = re.compile(r"^Turn (\d+) of (\d+)", re.M)
_OFFER = re.compile(r"^Offer on the table: .* worth (\d+) to you", re.M)


def heuristic(text: str, info: dict, rng: Any) -> str:
    """Accept an offer worth >= a falling threshold, else keep the items worth most to it (reads only the text)."""
    values = [int(v) for v in re.findall(r"\w+ (\d+)", _VALUES.search(text).group(1))]
    counts = [int(n) for n in re.findall(r"(\d+) \w+", _POOL.search(text).group(1))]
    turn, max_turns = (int(x) for x in _TURN.search(text).groups())
    threshold = sum(c * v for c, v in zip(counts, values)) * (0.7 - 0.3 * (turn - 1) / max(max_turns - 1, 1))
    offer = _OFFER.search(text)
    if offer and "accept" in info.get("legal_actions", ["accept"]) and (int(offer[1]) >= threshold or turn == max_turns):
        return "accept"  # on the last turn any deal beats no deal
    # keep everything but the cheapest item type, then concede cheap units while the rest stays >= threshold
    keep = list(counts)
    keep[min(range(len(counts)), key=lambda i: (values[i], -counts[i]))] = 0
    kept = sum(k * v for k, v in zip(keep, values))
    for i in sorted(range(len(counts)), key=lambda i: values[i]):
        while keep[i] > 0 and kept - values[i] >= threshold:
            keep[i] -= 1
            kept -= values[i]
    return propose(keep)
