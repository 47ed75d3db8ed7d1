"""TextArena games as Agora arenas: ``arenas.make("textarena:TicTacToe-v0")``.

| Import             | ``arenas.make("textarena:<EnvId>", num_players=None, max_steps=None)``  |
|--------------------|-------------------------------------------------------------------------|
| Agents             | ``player_0`` .. ``player_{n-1}`` (TextArena's Player 0 .. n-1)          |
| Actions            | free text; the move sent to the game is the last ``<answer>`` tag's content, else the whole text |
| Observations       | ``Dict(text)``: every message the game sent this player, in order, plus a turn line |
| Rewards            | TextArena's final rewards, per agent, when the game ends                |
| Parallel           | no (TextArena games are turn-based)                                     |

``<EnvId>`` is any id of TextArena's registry (``TicTacToe-v0``, ``Poker-v0-small``, ...), with its default
action wrappers (e.g. brackets added to a bare move). ``num_players`` defaults to the smallest count the game
accepts, trying 2 first; ``env_kwargs`` pass through to the TextArena game.

Invalid moves follow TextArena's own rules: the game decides (usually one retry, then a loss; in
free-for-all games an elimination), and every invalid move is reported in the mover's ``infos``
(``valid=False``, ``invalid_reason``, ``invalid_actions`` count). ``info["legal_actions"]`` holds the moves the
game listed in its latest message to the player ("Available Moves: '[0]', '[4]'"), when it lists them,
else ``[]``: free-form games (negotiation, debate) have no list.

Seeding: TextArena draws from Python's global ``random`` (and a few games from ``numpy.random``); each arena
keeps its own private generator states, swapped in around every call into the game, so arenas seeded alike
replay alike even when interleaved (not across threads). Games that need the network (an LLM jury or game
master through OpenRouter, NLTK word lists downloaded at import) or a package that is not installed are refused
with :class:`~arenas.registry.UnsupportedArena` naming the reason.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import io
import importlib.util
import random
import re
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
from gymnasium.spaces import Dict, Text
from gymnasium.utils import seeding
from pettingzoo import AECEnv

from arenas.core import CHARSET, MAX_TEXT, TextAction, clip_text, format_legal
from arenas.parsing import MAX_PARSE_CHARS
from arenas.registry import ArenaSpec, UnsupportedArena

PREFIX = "textarena"
PLAYER_COUNTS = (2, 1, 3, 4, 5, 6, 7, 8)  # tried in this order when num_players is not given
_TAG = re.compile(r"<answer>(.*?)</answer>", re.S | re.I)
_LISTED = re.compile(r"(?:available|valid|legal)\s+(?:moves|actions)(?:\s+are)?\s*:(.*)", re.I)
_BRACKETED = re.compile(r"\[[^\[\]\n]{1,40}\]")
_LLM = re.compile(r"OpenRouterAgent|OpenRouterJury|OpenAI\(")
_NLTK_DOWNLOAD = re.compile(r"nltk\.download\(\s*(\[[^\]]*\]|[\"'][^\"']+[\"'])")
_NLTK_PATHS = {"words": "corpora/words", "averaged_perceptron_tagger_eng": "taggers/averaged_perceptron_tagger_eng"}


def _ta():
    try:
        import textarena
    except ImportError:
        raise UnsupportedArena("TextArena is not installed: pip install textarena==0.7.4 (the project's textarena extra)") from None
    return textarena


# ---------------------------------------------------------------------------- what a game needs
def _module_files(entry_point: str) -> list[Path]:
    """The game's module and the textarena modules it imports (one level deep), without importing them."""
    module = entry_point.partition(":")[0] if isinstance(entry_point, str) else entry_point.__module__
    found = importlib.util.find_spec(module)
    files = [Path(found.origin)] if found and found.origin else []
    if files:
        for node in ast.walk(ast.parse(files[0].read_text(), filename=str(files[0]))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("textarena.envs."):
                sub = importlib.util.find_spec(node.module)
                if sub and sub.origin and sub.origin.endswith(".py"):
                    files.append(Path(sub.origin))
    return files


def _nltk_resources(source: str) -> list[str]:
    names = []
    for arg in _NLTK_DOWNLOAD.findall(source):
        names += re.findall(r"[\"']([^\"']+)[\"']", arg)
    if re.search(r"from nltk\.corpus import words|words\.words\(", source):
        names.append("words")
    return sorted(set(names))


def requirements(env_id: str) -> str | None:
    """Why this TextArena game cannot run here (network, missing package), or None when it can."""
    ta = _ta()
    entry = ta.envs.registration.ENV_REGISTRY[env_id].entry_point
    try:
        files = _module_files(entry)
        for f in files:
            compile(f.read_text(), str(f), "exec", dont_inherit=True)
    except SyntaxError as e:
        return (f"its code does not compile on Python {sys.version.split()[0]} ({e.msg}, {Path(e.filename or '?').name} "
                f"line {e.lineno}); TextArena {ta.__version__} writes some games in Python 3.12 syntax")
    source = "\n".join(f.read_text() for f in files)
    if _LLM.search(source):
        who = "jury" if "Jury" in source else "game master"
        return (f"its {who} is an LLM reached over the network (OpenRouter), and arenas do not reach the network; "
                "play it with TextArena directly where that is intended")
    missing = []
    for f in files[:1]:
        for node in ast.parse(f.read_text()).body:
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else [])
            missing += [m.split(".")[0] for m in mods if importlib.util.find_spec(m.split(".")[0]) is None]
    if missing:
        return f"it needs the package(s) {', '.join(sorted(set(missing)))}, which are not installed"
    lacking = [r for r in _nltk_resources(source) if not _nltk_found(r)]
    if lacking:
        return (f"it needs the NLTK data {', '.join(lacking)}, which TextArena downloads over the network when the game "
                f"is imported; install it beforehand where there is network (python -m nltk.downloader {' '.join(lacking)})")
    return None


def _nltk_found(resource: str) -> bool:
    import nltk

    try:
        nltk.data.find(_NLTK_PATHS.get(resource, resource))
        return True
    except LookupError:
        return False


@contextmanager
def _no_downloads():
    """Importing a word game calls ``nltk.download``; its data is already there (checked), so skip the network."""
    import nltk

    download = nltk.download
    nltk.download = lambda *a, **k: True
    try:
        yield
    finally:
        nltk.download = download


# ---------------------------------------------------------------------------- the arena
def extract_move(text: str) -> str:
    """The move sent to the game: the content of the last ``<answer>`` tag, else the whole text."""
    tags = _TAG.findall(text[-MAX_PARSE_CHARS:])
    return tags[-1].strip() if tags else text


def listed_moves(messages: list[tuple[int, str, Any]], pid: int) -> list[str]:
    """The moves the game listed to player ``pid`` since its last move ("Available Moves: '[0]', '[4]'")."""
    for sender, message, _ in reversed(messages):
        if sender == pid:
            return []
        for line in reversed(str(message).splitlines()):
            found = _LISTED.search(line)
            if found:
                moves = list(dict.fromkeys(_BRACKETED.findall(found.group(1))))
                if moves:
                    return moves
    return []


class raw_env(AECEnv):
    """One TextArena game (see the module docstring)."""

    metadata = {"render_modes": ["human", "ansi"], "name": "textarena", "is_parallelizable": False}
    requires_channel = False
    free_text = True

    def __init__(self, env_id: str, *, num_players: int | None = None, max_steps: int | None = None,
                 env_kwargs: dict | None = None, render_mode: str | None = None):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}")
        if max_steps is not None and max_steps < 1:
            raise ValueError(f"max_steps must be >= 1 or None, got {max_steps}")
        self.env_id, self.max_steps, self.render_mode = env_id, max_steps, render_mode
        self.env_kwargs = dict(env_kwargs or {})
        self.metadata = {**self.metadata, "name": f"{PREFIX}:{env_id}"}
        self.np_random, self.np_random_seed = seeding.np_random(None)
        self._seed_generators(0)
        self.num_players = num_players if num_players is not None else self._probe_players()
        if num_players is not None:
            self._ta_reset(0)  # fails here, with TextArena's message, if the game refuses this count
        self.possible_agents = [f"player_{i}" for i in range(self.num_players)]
        space = Dict({"text": Text(MAX_TEXT, min_length=0, charset=CHARSET)})
        self._observation_spaces = {a: space for a in self.possible_agents}
        self._action_spaces = {a: TextAction([]) for a in self.possible_agents}

    # ------------------------------------------------------------------ TextArena under private randomness
    def _seed_generators(self, seed: int) -> None:
        self._py_state = random.Random(seed).getstate()
        self._np_state = np.random.RandomState(seed % 2**32).get_state()

    @contextmanager
    def _inside_game(self):
        """Run TextArena code with this arena's own random states, and without its prints."""
        outer_py, outer_np = random.getstate(), np.random.get_state()
        random.setstate(self._py_state)
        np.random.set_state(self._np_state)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                yield
        finally:
            self._py_state, self._np_state = random.getstate(), np.random.get_state()
            random.setstate(outer_py)
            np.random.set_state(outer_np)

    def _ta_reset(self, seed: int, num_players: int | None = None) -> None:
        """A fresh TextArena game each episode (some keep state across their own resets), dealt from ``seed``."""
        ta = _ta()
        self._seed_generators(seed)
        with self._inside_game(), _no_downloads():
            self._game = ta.make(self.env_id, **self.env_kwargs)
            self._base = self._game
            while isinstance(self._base, ta.Wrapper):
                self._base = self._base.env
            self._game.reset(num_players=num_players or self.num_players, seed=seed)
        state = self._base.state
        self._invalid: list[str] = []
        original = state.set_invalid_move
        single = isinstance(state, ta.SinglePlayerState)

        def recorded(*args: Any, **kwargs: Any) -> Any:  # TextArena decides; we only take note
            if single and len(args) == 2 and isinstance(args[0], (int, float)) and isinstance(args[1], str):
                args = (args[1], args[0])  # some 0.7.4 games pass (reward, reason) to set_invalid_move(reason, reward)
            self._invalid.append(str(kwargs.get("reason", args[0] if args else "")))
            result = original(*args, **kwargs)
            eliminated = set(getattr(state, "elimination_order", None) or [])
            if len(eliminated) >= state.num_players and not state.done:
                # Everyone is out: TextArena 0.7.4's free-for-all state would look for a next player forever.
                state.rewards = state.rewards or {p: -1 for p in range(state.num_players)}
                for p in range(state.num_players):
                    state.game_info[p]["reason"] = "every player was eliminated by invalid moves"
                state.done = True
            return result

        state.set_invalid_move = recorded

    def _probe_players(self) -> int:
        errors = {}
        for n in PLAYER_COUNTS:
            try:
                self._ta_reset(0, n)
                return n
            except Exception as e:  # noqa: BLE001 - TextArena refuses a count with asserts or ValueErrors
                errors[n] = f"{type(e).__name__}: {e}"
        if len(set(errors.values())) == 1:  # the same failure whatever the count: the game is broken here
            raise UnsupportedArena(f"{PREFIX}:{self.env_id} does not start in TextArena {_ta().__version__}: "
                                   f"{next(iter(errors.values()))}")
        raise UnsupportedArena(f"{PREFIX}:{self.env_id}: no player count in {PLAYER_COUNTS} starts the game "
                               f"({'; '.join(f'{n}: {e}' for n, e in list(errors.items())[:4])}); pass num_players=")

    # ------------------------------------------------------------------ PettingZoo API
    def observation_space(self, agent: str) -> Dict:
        return self._observation_spaces[agent]

    def action_space(self, agent: str) -> TextAction:
        return self._action_spaces[agent]

    def reset(self, seed: int | None = None, options: dict | None = None) -> None:
        if seed is not None:
            self.np_random, self.np_random_seed = seeding.np_random(seed)
        self._ta_reset(int(self.np_random.integers(2**31)))
        self.agents = list(self.possible_agents)
        self.rewards = {a: 0.0 for a in self.agents}
        self._cumulative_rewards = {a: 0.0 for a in self.agents}
        self.terminations = {a: False for a in self.agents}
        self.truncations = {a: False for a in self.agents}
        self.infos = {a: {"phase": "wait", "legal_actions": [], "invalid_actions": 0} for a in self.agents}
        self.invalid_counts = {a: 0 for a in self.agents}
        self.messages: dict[int, list[tuple[int, str, Any]]] = {i: [] for i in range(self.num_players)}
        self.steps = 0
        self._collect()
        self.agent_selection = f"player_{self._base.state.current_player_id}"
        self._refresh_info(self.agent_selection)

    def _collect(self) -> None:
        """Move the messages TextArena queued for each player into their logs (the current player's through
        the game's own ``get_observation``, which some games extend)."""
        state = self._base.state
        if not state.done:
            with self._inside_game():
                pid, current = self._base.get_observation()
            self.messages[pid].extend(current)
        for pid, queued in state.observations.items():
            if pid in self.messages:
                self.messages[pid].extend(queued)
                state.observations[pid] = []

    def observe(self, agent: str) -> dict[str, str]:
        pid = int(agent.rsplit("_", 1)[1])
        log = [f"[{'GAME' if s == -1 else f'Player {s}'}] {m}" for s, m, _ in self.messages[pid]]
        head = (f"TextArena game {self.env_id}. You are Player {pid} (of {self.num_players}). "
                "What the game has told you so far:\n")
        if agent == self.agent_selection and not (self.terminations[agent] or self.truncations[agent]):
            legal = self.infos[agent].get("legal_actions") or []
            tail = ("\n\nIt is your turn." + (f" Moves the game lists: {format_legal(legal)}." if legal else "") +
                    " Think if you like, then give your move in the game's own format on the last line as: "
                    "<answer>YOUR MOVE</answer>")
        else:
            tail = "\n\nIt is not your turn." if not any(self.terminations.values()) else "\n\nThe game is over."
        body = "\n".join(log)
        room = MAX_TEXT - len(head) - len(tail) - 64
        if len(body) > room and log:  # keep the rules (first message) and the latest messages
            first = log[0][: room // 3]
            body = first + "\n[... earlier messages omitted ...]\n" + body[-(room - len(first)):]
        return {"text": clip_text(head + body + tail)}

    def step(self, action: Any) -> None:
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            self._was_dead_step(action)
            return
        self._cumulative_rewards[agent] = 0.0
        self.rewards = {a: 0.0 for a in self.agents}
        text = action if isinstance(action, str) else ("" if action is None else str(action))
        move = extract_move(text)
        self._invalid = []
        try:
            with self._inside_game():
                done, _ = self._game.step(move)
        except Exception as e:
            e.add_note(f"raised inside TextArena {_ta().__version__}'s game {self.env_id} (move {move[:80]!r})")
            raise
        state = self._base.state
        invalid = bool(self._invalid)
        self.invalid_counts[agent] += invalid
        self.steps += 1
        self._collect()
        info = self.infos[agent]
        info.update(valid=not invalid, parsed_action=move, legal_actions=[], invalid_actions=self.invalid_counts[agent],
                    invalid_reason=self._invalid[-1] if self._invalid else None)
        if done or state.done:
            final = state.rewards or {}
            self.rewards.update({f"player_{p}": float(r) for p, r in final.items() if f"player_{p}" in self.rewards})
            for a in self.agents:
                self.terminations[a] = True
                self.infos[a]["game_info"] = {k: v for k, v in state.game_info.get(int(a.rsplit("_", 1)[1]), {}).items()
                                              if isinstance(v, (str, int, float, bool))}
        elif self.max_steps is not None and self.steps >= self.max_steps:
            for a in self.agents:
                self.truncations[a] = True
        else:
            self.agent_selection = f"player_{state.current_player_id}"
            eliminated = set(getattr(state, "elimination_order", []) or [])
            for a in self.agents:
                self.infos[a]["eliminated"] = int(a.rsplit("_", 1)[1]) in eliminated
            self._refresh_info(self.agent_selection)
        self._accumulate_rewards()
        if self.render_mode == "human":
            self.render()

    def _refresh_info(self, agent: str) -> None:
        pid = int(agent.rsplit("_", 1)[1])
        info = self.infos[agent]
        info["phase"] = "write"
        info["legal_actions"] = listed_moves(self.messages[pid], pid)
        info["invalid_actions"] = self.invalid_counts[agent]

    def render(self) -> str | None:
        if self.render_mode is None:
            gymnasium.logger.warn("render() called without render_mode; pass render_mode='ansi' or 'human'.")
            return None
        state = self._base.state
        last = next((m for msgs in self.messages.values() for s, m, _ in reversed(msgs) if s == -1), "")
        text = f"{self.env_id}: turn {state.turn}, Player {state.current_player_id} to move, done={state.done}\n{last}"
        if self.render_mode == "human":
            print(text)
            return None
        return text

    def close(self) -> None:
        pass


# ---------------------------------------------------------------------------- the adapter
def games() -> list[str]:
    """Every id in TextArena's registry (wrapper variants such as ``-train``/``-raw`` included)."""
    return sorted(_ta().envs.registration.ENV_REGISTRY)


def resolve(env_id: str) -> ArenaSpec:
    ta = _ta()
    registry = ta.envs.registration.ENV_REGISTRY
    if env_id not in registry:
        import difflib

        close = difflib.get_close_matches(env_id, registry, n=3)
        raise KeyError(f"unknown arena '{PREFIX}:{env_id}': TextArena has no game {env_id!r}."
                       + (f" Did you mean {', '.join(close)}?" if close else ""))
    why = requirements(env_id)
    if why:
        raise UnsupportedArena(f"{PREFIX}:{env_id} is not supported: {why}")
    factory = functools.partial(raw_env, env_id)
    return ArenaSpec(f"{PREFIX}:{env_id}", factory, "TextArena's count", False, "TextArena's rewards",
                     f"TextArena game {env_id}")
