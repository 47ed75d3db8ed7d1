"""Signalling: a Lewis referential game, the classic test-bed of emergent communication.

| Import             | ``arenas.make("signalling_v0")``                                              |
|--------------------|-------------------------------------------------------------------------------|
| Agents             | ``speaker`` (moves first), ``listener``                                       |
| Actions            | speaker: a message of ``message_length`` letters from the first ``vocab_size`` (``"ab"``); listener: ``1``..``K`` |
| Observations       | text: rules; speaker: the K objects, target marked; listener: them shuffled and numbered, and the message |
| Rewards            | shared: 1 to both if the listener picks the target, else 0 (chance: 1/K)      |
| Parallel           | no (turn-based)                                                               |

Each episode draws K distinct objects (one value per attribute: "large red circle") and a target. The
listener sees them in its own shuffled order, so position is useless and only a message that describes
the target can help; the letters have no agreed meaning, so a pair must invent a code (Lewis 1969;
Lazaridou et al. 2017). The message is the speaker's action, so no channel is needed. ``shuffle=False``
gives Lewis's original game: both see the objects in one numbered order, so a code may name positions;
with ``fixed_objects=True`` as well, every episode has the same K objects (the first K value combinations) in
the same order and only the target changes: Lewis's K states, with nothing else to read.
``reset(options={"objects": [(v0, v1), ...], "target": i})`` fixes the objects (value indices).
The heuristic is a fixed code (letter i names the value of attribute i, or a mixed-radix object index
when that does not fit; with ``shuffle=False`` the target's position); a heuristic pair always wins when
``vocab_size**message_length`` can name every object (every position).
"""

from __future__ import annotations

import itertools
import re
import string
from typing import Any

from arenas.core import ANSWER_FORMAT, TextArenaEnv, format_legal
from arenas.parsing import answer_candidates

NAME = "signalling_v0"
ATTRIBUTES = (
    ("color", ("red", "blue", "green", "yellow", "purple", "orange")),
    ("shape", ("circle", "square", "triangle", "star", "heart", "diamond")),
    ("size", ("tiny", "small", "medium", "large", "huge", "giant")),
    ("pattern", ("plain", "striped", "dotted", "checked", "wavy", "spotted")),
)
WORD_ORDER = (2, 3, 0, 1)  # English adjective order: "large striped red circle"
LETTERS = string.ascii_lowercase
MAX_MESSAGES = 4096
AGENTS = ("speaker", "listener")


class raw_env(TextArenaEnv):
    metadata = {"render_modes": ["human", "ansi"], "name": NAME, "is_parallelizable": False}

    def __init__(self, *, num_objects: int = 4, num_attributes: int = 2, num_values: int = 4, vocab_size: int = 8,
                 message_length: int = 2, shuffle: bool = True, fixed_objects: bool = False, invalid_action: str = "penalize",
                 render_mode: str | None = None):
        names = min(len(values) for _, values in ATTRIBUTES)
        if not 1 <= num_attributes <= len(ATTRIBUTES):
            raise ValueError(f"num_attributes must be between 1 and {len(ATTRIBUTES)}, got {num_attributes}")
        if not 2 <= num_values <= names:
            raise ValueError(f"num_values must be between 2 and {names} (the names defined per attribute), got {num_values}")
        if not 2 <= num_objects <= num_values**num_attributes:
            raise ValueError(f"num_objects must be between 2 and num_values**num_attributes = "
                             f"{num_values**num_attributes}, got {num_objects}")
        if not 2 <= vocab_size <= len(LETTERS):
            raise ValueError(f"vocab_size must be between 2 and {len(LETTERS)} (lowercase letters), got {vocab_size}")
        if message_length < 1 or vocab_size**message_length > MAX_MESSAGES:
            raise ValueError(f"need message_length >= 1 and vocab_size**message_length <= {MAX_MESSAGES}, "
                             f"got {vocab_size}**{message_length}")
        self.num_objects, self.num_attributes, self.num_values = num_objects, num_attributes, num_values
        self.vocab_size, self.message_length, self.shuffle = vocab_size, message_length, shuffle
        self.fixed_objects = fixed_objects
        messages = ["".join(m) for m in itertools.product(LETTERS[:vocab_size], repeat=message_length)]
        super().__init__({"speaker": messages, "listener": [str(i) for i in range(1, num_objects + 1)]},
                         invalid_action, render_mode)

    def _new_game(self, options: dict) -> None:
        k, a, v = self.num_objects, self.num_attributes, self.num_values
        if "objects" in options:
            self.objects = [tuple(int(x) for x in o) for o in options["objects"]]
            self.target = int(options.get("target", 0))
            if (len(self.objects) != k or len(set(self.objects)) != k or not 0 <= self.target < k
                    or any(len(o) != a or not all(0 <= x < v for x in o) for o in self.objects)):
                raise ValueError(f"options need {k} distinct objects of {a} value indices in [0, {v}) and a target in [0, {k})")
        else:
            picks = range(k) if self.fixed_objects else self.np_random.choice(v**a, size=k, replace=False)
            self.objects = [tuple(int(i) // v**j % v for j in range(a)) for i in picks]
            self.target = int(self.np_random.integers(k))
        self.order = [int(i) for i in self.np_random.permutation(k)] if self.shuffle else list(range(k))  # the listener's numbering
        self.message: str | None = None
        self.choice: int | None = None
        self.agent_selection = "speaker"

    def _legal(self, agent: str) -> list[str]:
        return self.vocabularies[agent]

    def _parse(self, agent: str, text: str, legal: list[str]) -> str | None:
        if agent == "listener":
            return super()._parse(agent, text, legal)
        for candidate in answer_candidates(text):  # "A B", "'ab'." -> "ab"
            message = re.sub(r"[^a-z0-9]", "", candidate.lower())
            if message in self._index[agent]:
                return message
        return None

    def _private(self, agent: str) -> str | None:
        """The speaker's target: its attribute values, and its position first when positions are shared."""
        if agent != "speaker":
            return None
        target = self.describe(self.objects[self.target])
        return target if self.shuffle else f"{self.target + 1} {target}"

    def describe(self, obj: tuple[int, ...]) -> str:
        return " ".join(ATTRIBUTES[a][1][obj[a]] for a in WORD_ORDER if a < self.num_attributes)

    def _rules(self) -> str:
        attrs = "\n".join(f"  {name}: {', '.join(values[:self.num_values])}" for name, values in ATTRIBUTES[:self.num_attributes])
        n, last = self.message_length, LETTERS[self.vocab_size - 1]
        return (
            "Signalling game for two players, a speaker and a listener, who share one reward.\n"
            f"There are {self.num_objects} different objects. Objects differ in {self.num_attributes} attribute(s), "
            f"each with {self.num_values} possible values:\n{attrs}\n"
            f"The speaker sees which object is the target and sends a message of exactly {n} symbol(s), "
            f"each a letter from a to {last}.\nThe letters have no agreed meaning: the message only helps if "
            "the listener can work out what it describes.\nThe listener sees the same objects in "
            + ("its own shuffled order" if self.shuffle else "the same numbered order")
            + " and the message, then picks one object. Both players get reward 1 if it is the target, else 0."
        )

    def _prompt(self, agent: str) -> str:
        lines = [self._rules()]
        over = self.terminations.get(agent, True)
        if agent == "speaker":
            if self.shuffle:
                lines.append("You are the speaker. The objects (the listener sees them in a different order):")
            else:
                lines.append("You are the speaker. The objects, numbered as the listener sees them:")
            lines += [f"  {f'{i + 1}.' if not self.shuffle else '-'} {self.describe(o)}" + ("   <-- TARGET" if i == self.target else "")
                      for i, o in enumerate(self.objects)]
            if self.message is not None:
                lines.append(f'You sent the message "{self.message}".')
            elif not over:
                lines.append(f"Send your message now: your answer is the message, exactly {self.message_length} "
                             f"letter(s) from a to {LETTERS[self.vocab_size - 1]}.\n{ANSWER_FORMAT}")
                target = self.describe(self.objects[self.target])  # restated last: the nearer the answer, the easier to read
                lines.append(f"Target: {target}." if self.shuffle else f"Target: object {self.target + 1} ({target}).")
        else:
            lines.append("You are the listener. The objects, numbered in your order:")
            lines += [f"  {n}. {self.describe(self.objects[i])}" for n, i in enumerate(self.order, 1)]
            if self.message is None:
                lines.append("The speaker has not sent a message.")
            else:
                if self.choice is None and not over:
                    lines.append(f"Which object is the target? Answer with its number.\n"
                                 f"Legal actions: {format_legal(self.vocabularies[agent])}.\n{ANSWER_FORMAT}")
                lines.append(f'The speaker\'s message: "{self.message}"')  # last: the nearer the answer, the easier to read
        if self.choice is not None:
            won = self.choice == self.target
            lines.append(f"Result: the listener picked the {self.describe(self.objects[self.choice])}; the target was the "
                         f"{self.describe(self.objects[self.target])}. {'Success' if won else 'Failure'}: reward {int(won)} each.")
        elif over:
            lines.append("The game is over: the speaker's message was invalid.")
        return "\n".join(lines)

    def _play(self, agent: str, action: str) -> None:
        if agent == "speaker":
            self.message = action
            self.agent_selection = "listener"
        else:
            self.choice = self.order[int(action) - 1]
            reward = float(self.choice == self.target)
            self._end({"speaker": reward, "listener": reward})

    def _summary(self) -> str:
        objects = ", ".join(self.describe(o) + ("*" if i == self.target else "") for i, o in enumerate(self.objects))
        choice = "-" if self.choice is None else self.describe(self.objects[self.choice])
        return f"objects (*target): {objects}\nmessage: {self.message or '-'}  listener picked: {choice}"


def encode(values: tuple[int, ...], num_values: int, vocab_size: int, length: int) -> str:
    """The heuristic's code: one letter per attribute value, else the object's index in base ``vocab_size``."""
    if length >= len(values) and vocab_size >= num_values:
        return "".join(LETTERS[d] for d in list(values) + [0] * (length - len(values)))
    return index_code(sum(v * num_values**a for a, v in enumerate(values)), vocab_size, length)


def index_code(index: int, vocab_size: int, length: int) -> str:
    """``index`` written in base ``vocab_size`` with ``length`` letters (a = 0), wrapping around."""
    index %= vocab_size**length
    return "".join(LETTERS[index // vocab_size**i % vocab_size] for i in range(length))


_ATTR = re.compile(r"^  (\w+): ([a-z]+(?:, [a-z]+)*)$", re.M)
_CODE = re.compile(r"message of exactly (\d+) symbol\(s\), each a letter from a to ([a-z])")
_TARGET = re.compile(r"^  (?:-|\d+\.) ([a-z ]+?)   <-- TARGET$", re.M)
_CANDIDATE = re.compile(r"^  (\d+)\. ([a-z ]+)$", re.M)
_POSITION = re.compile(r"^Target: object (\d+) ", re.M)
_MESSAGE = re.compile(r'^The speaker\'s message: "([a-z0-9]*)"$', re.M)


def heuristic(text: str, info: dict, rng: Any) -> str:
    attrs = [values.split(", ") for _, values in _ATTR.findall(text)]
    found = _CODE.search(text)
    length, vocab = int(found.group(1)), LETTERS.index(found.group(2)) + 1
    speaker = "You are the speaker" in text

    if "in the same numbered order" in text:  # Lewis's original game: the code names positions
        if speaker:
            return index_code(int(_POSITION.search(text).group(1)) - 1, vocab, length)
        positions = {index_code(int(n) - 1, vocab, length): n for n, _ in _CANDIDATE.findall(text)}
        return positions.get(_MESSAGE.search(text).group(1)) or str(int(rng.integers(len(positions))) + 1)

    def code(description: str) -> str:
        words = set(description.split())
        values = tuple(next((i for i, name in enumerate(names) if name in words), 0) for names in attrs)
        return encode(values, len(attrs[0]), vocab, length)

    if speaker:
        return code(_TARGET.search(text).group(1))
    message = _MESSAGE.search(text).group(1)
    candidates = _CANDIDATE.findall(text)
    pool = [n for n, d in candidates if code(d) == message] or [n for n, _ in candidates]
    return pool[int(rng.integers(len(pool)))]
