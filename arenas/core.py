"""The base of every Agora arena: a PettingZoo AEC environment whose observations and actions are text.

A game subclasses :class:`TextArenaEnv` and writes only its rules, through five hooks:
``_new_game`` (deal), ``_legal`` (legal action strings now), ``_prompt`` (what an agent reads),
``_play`` (apply one legal action) and ``_summary`` (one line for rendering). Everything a language
model can get wrong is handled here, once: any action text is accepted, parsed tolerantly, and an
unparseable action follows the ``invalid_action`` rule (``penalize``: the offender loses and the
episode ends, like TextArena; ``fallback``: a random legal action), always counted in ``infos``.

Spaces: the observation is ``Dict(text=Text(printable), action_mask=Box{0,1}^n)`` where the mask runs
over the agent's fixed action vocabulary; the action space is :class:`TextAction`, a ``Text`` space that
knows that vocabulary, so ``sample(mask)`` draws a legal action string (PettingZoo's tests use it).
A turn with no legal action (all-zero mask, ``info["phase"] == "talk"``) is a talk turn: the whole
text is a message for the communication channel and the game only advances. Games whose moves are free
text (``free_text = True``, e.g. code) instead get ``info["phase"] == "write"``: the whole text is the move.
An agent with an empty vocabulary has no mask: its observation is ``Dict(text=Text(printable))``.
"""

from __future__ import annotations

import copy
import re
import string
from typing import Any, Literal

import gymnasium
import numpy as np
from gymnasium.spaces import Box, Dict, Text
from gymnasium.utils import seeding
from pettingzoo import AECEnv

from arenas.parsing import parse_choice

CHARSET = string.printable
MAX_TEXT = 16384
InvalidRule = Literal["penalize", "fallback"]


class TextAction(Text):
    """Free text, plus the agent's action vocabulary: ``sample(mask)`` returns a legal action string."""

    def __init__(self, vocabulary: list[str], max_length: int = MAX_TEXT, seed: int | None = None):
        super().__init__(max_length=max_length, min_length=0, charset=CHARSET, seed=seed)
        self.vocabulary = list(vocabulary)

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        if isinstance(mask, np.ndarray) and mask.shape == (len(self.vocabulary),):
            legal = np.flatnonzero(mask)
            if len(legal) == 0:  # a talk turn: any text
                return super().sample()
            return self.vocabulary[int(self.np_random.choice(legal))]
        return super().sample(mask=mask, probability=probability)

    def __repr__(self) -> str:
        return f"TextAction({len(self.vocabulary)} actions)"


_OUTSIDE = re.compile(f"[^{re.escape(CHARSET)}]")


def clip_text(text: str) -> str:
    """Keep an observation inside its space: printable ASCII, at most ``MAX_TEXT`` characters."""
    text = _OUTSIDE.sub("?", text)
    if len(text) > MAX_TEXT:
        text = text[: MAX_TEXT - 16] + "\n[...truncated]"
    return text


def format_legal(actions: list[str]) -> str:
    return ", ".join(actions) if len(actions) <= 24 else ", ".join(actions[:24]) + f", ... ({len(actions)} in all)"


ANSWER_FORMAT = "Think if you like, then give your final choice on the last line as: <answer>YOUR CHOICE</answer>"


def answer_text(action: str) -> str:
    """The canonical completion that plays ``action`` (what the format warm-start imitates)."""
    return f"<answer>{action}</answer>"


class TextArenaEnv(AECEnv):
    """Shared machinery of all text arenas (see the module docstring)."""

    metadata: dict[str, Any] = {"render_modes": ["human", "ansi"], "name": "text_arena", "is_parallelizable": False}
    zero_sum = False  # two-player zero-sum: penalize gives the opponent +1
    requires_channel = False  # talk is part of the game: make() adds a complete channel by default
    free_text = False  # a turn without legal actions is a free-text move ("write"), not a talk turn
    invalid_reward = -1.0

    def __init__(self, vocabularies: dict[str, list[str]], invalid_action: InvalidRule = "penalize", render_mode: str | None = None):
        if invalid_action not in ("penalize", "fallback"):
            raise ValueError(f"invalid_action must be 'penalize' or 'fallback', got {invalid_action!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.invalid_action = invalid_action
        self.render_mode = render_mode
        self.possible_agents = list(vocabularies)
        self.vocabularies = vocabularies
        self._index = {a: {act: i for i, act in enumerate(v)} for a, v in vocabularies.items()}
        self._observation_spaces = {
            a: Dict({"text": Text(MAX_TEXT, min_length=0, charset=CHARSET), "action_mask": Box(0, 1, (len(v),), np.int8)})
            if v else Dict({"text": Text(MAX_TEXT, min_length=0, charset=CHARSET)})  # free text only: no mask
            for a, v in vocabularies.items()
        }
        self._action_spaces = {a: TextAction(v) for a, v in vocabularies.items()}
        self.np_random, self.np_random_seed = seeding.np_random(None)

    def __deepcopy__(self, memo: dict) -> TextArenaEnv:
        """A copy of the game's state that shares what describes the game and never changes (its vocabularies and
        spaces, most of the cost of a copy): tree credit and counterfactual answers copy an arena at every move."""
        for fixed in (self.vocabularies, self._index, self._observation_spaces, self._action_spaces):
            memo[id(fixed)] = fixed
        twin = memo[id(self)] = object.__new__(type(self))
        twin.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return twin

    # ------------------------------------------------------------------ hooks for games
    def _new_game(self, options: dict) -> None:
        """Set up a fresh game from ``self.np_random``; set ``self.agent_selection``."""
        raise NotImplementedError

    def _legal(self, agent: str) -> list[str]:
        """Legal action strings for ``agent`` now (``[]`` on a talk turn)."""
        raise NotImplementedError

    def _prompt(self, agent: str) -> str:
        """Everything ``agent`` may read: rules, role, visible history, legal actions, answer format."""
        raise NotImplementedError

    def _play(self, agent: str, action: str) -> None:
        """Apply a legal action (or talk-turn text): update state, ``rewards``, ``terminations``, next agent."""
        raise NotImplementedError

    def _summary(self) -> str:
        """The public state in a few lines, for ``render``."""
        raise NotImplementedError

    def _parse(self, agent: str, text: str, legal: list[str]) -> str | None:
        """Map raw text to a legal action; games with richer formats override it."""
        return parse_choice(text, legal)

    def _private(self, agent: str) -> str | None:
        """What only ``agent`` knows (a card, a target, a number), as ``info["private"]``: the meaning that
        coordination analysis relates messages to. Space-separated attribute values where the game has them."""
        return None

    def parse_action(self, agent: str, text: str) -> str | None:
        """The legal action ``text`` means for ``agent`` now, or None; the env does not change."""
        return self._legal_action(agent, text, self._legal(agent))

    def _legal_action(self, agent: str, text: str, legal: list[str]) -> str | None:
        parsed = self._parse(agent, text, legal) if legal else None
        return parsed if parsed in legal else None

    # ------------------------------------------------------------------ PettingZoo API
    def observation_space(self, agent: str) -> Dict:
        return self._observation_spaces[agent]

    def action_space(self, agent: str) -> TextAction:
        return self._action_spaces[agent]

    def reset(self, seed: int | None = None, options: dict | None = None) -> None:
        if seed is not None:
            self.np_random, self.np_random_seed = seeding.np_random(seed)
        self.agents = list(self.possible_agents)
        self.rewards = {a: 0.0 for a in self.agents}
        self._cumulative_rewards = {a: 0.0 for a in self.agents}
        self.terminations = {a: False for a in self.agents}
        self.truncations = {a: False for a in self.agents}
        self.infos = {a: {"phase": "wait", "legal_actions": [], "invalid_actions": 0} for a in self.agents}
        self.invalid_counts = {a: 0 for a in self.agents}
        self.offenders: list[str] = []
        self._new_game(options or {})
        for a in self.agents if self._simultaneous else [self.agent_selection]:
            self._refresh_info(a)

    def observe(self, agent: str) -> dict[str, Any]:
        if not self.vocabularies[agent]:
            return {"text": clip_text(self._prompt(agent))}
        mask = np.zeros(len(self.vocabularies[agent]), dtype=np.int8)
        if not self.terminations.get(agent, True) and (agent == self.agent_selection or self._simultaneous):
            index = self._index[agent]
            mask[[index[a] for a in self._legal(agent)]] = 1
        return {"text": clip_text(self._prompt(agent)), "action_mask": mask}

    def step(self, action: Any) -> None:
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            self._was_dead_step(action)
            return
        self._cumulative_rewards[agent] = 0.0
        self.rewards = {a: 0.0 for a in self.agents}
        text = action if isinstance(action, str) else ("" if action is None else str(action))
        legal = self._legal(agent)
        parsed: str | None = text if not legal else self._legal_action(agent, text, legal)
        valid = parsed is not None
        if not valid:
            self.invalid_counts[agent] += 1
            if self.invalid_action == "fallback":
                parsed = legal[int(self.np_random.integers(len(legal)))]
        if parsed is None:
            self._penalize(agent)
        else:
            self._play(agent, parsed)
        self.infos[agent].update(valid=valid, parsed_action=parsed if legal else None, legal_actions=[],
                                 invalid_actions=self.invalid_counts[agent])
        self._accumulate_rewards()
        for a in self.agents if self._simultaneous else [self.agent_selection]:
            if not (self.terminations[a] or self.truncations[a]):
                self._refresh_info(a)
        if self.render_mode == "human":
            self.render()

    @property
    def _simultaneous(self) -> bool:
        """Every live agent moves each round (parallel arenas): all of them see their legal actions."""
        return bool(self.metadata.get("is_parallelizable"))

    def _refresh_info(self, agent: str) -> None:
        legal = self._legal(agent)
        info = self.infos[agent]
        info["phase"] = "act" if legal else ("write" if self.free_text else "talk")
        info["legal_actions"] = legal
        info["invalid_actions"] = self.invalid_counts[agent]
        private = self._private(agent)
        if private is not None:
            info["private"] = private

    def _penalize(self, offender: str) -> None:
        """The offender of an unparseable action loses and the episode ends.

        In simultaneous arenas the episode may only end with the round (PettingZoo's parallel API ends
        agents at the end of a cycle): the offender's move is ``None`` and the game calls
        :meth:`_settle_offenders` when its round closes.
        """
        if self._simultaneous:
            self.offenders.append(offender)
            self._play(offender, None)
            return
        for a in self.agents:
            self.terminations[a] = True
        self.rewards[offender] = self.invalid_reward
        if self.zero_sum:
            for a in self.agents:
                if a != offender:
                    self.rewards[a] = -self.invalid_reward / (len(self.agents) - 1)

    def _settle_offenders(self) -> bool:
        """At the end of a simultaneous round: end the episode if anyone moved invalidly (offenders get
        ``invalid_reward``, the others 0). Returns whether it did."""
        if not self.offenders:
            return False
        self._end({a: self.invalid_reward if a in self.offenders else 0.0 for a in self.possible_agents})
        return True

    def _end(self, rewards: dict[str, float]) -> None:
        """End the episode with these final rewards."""
        self.rewards.update(rewards)
        for a in self.agents:
            self.terminations[a] = True

    def render(self) -> str | None:
        if self.render_mode is None:
            gymnasium.logger.warn("render() called without render_mode; pass render_mode='ansi' or 'human'.")
            return None
        text = self._summary()
        if self.render_mode == "human":
            print(text)
            return None
        return text

    def close(self) -> None:
        pass
