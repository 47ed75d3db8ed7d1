"""Play episodes of an arena with text policies and record what happened, step by step.

A policy here is any callable ``(observation_text, info, rng) -> action_text``: scripted policies and
language models (through ``marl``) alike. Each step becomes a :class:`Step` record; a JSONL transcript
is one JSON line per step.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

TextPolicy = Callable[[str, dict, np.random.Generator], str]


@dataclass
class Step:
    """One agent's move, as written to a transcript line."""

    episode: int
    step: int
    agent: str
    observation: str
    raw_action: str
    parsed_action: str | None
    valid: bool
    rewards: dict[str, float]  # every agent's reward from this step (channel costs included)
    messages_sent: list[dict[str, Any]] = field(default_factory=list)
    messages_delivered: list[dict[str, Any]] = field(default_factory=list)  # shown to this agent at this step
    private: str | None = None  # what only this agent knew (info["private"]): a card, a target, a number


@dataclass
class Episode:
    episode: int
    seed: int | None
    returns: dict[str, float]
    invalid: dict[str, int]
    steps: list[Step]


def take_step(env: Any, agent: str, observation: str, info: dict, action: str, episode: int = 0, step: int = 0) -> Step:
    """Play ``action`` for ``agent`` and record it: what it was shown (read before the move: the env updates
    ``info`` in place) and what the move did."""
    delivered, private = list(info.get("messages_received", [])), info.get("private")
    env.step(action)
    after = env.infos.get(agent, {})
    return Step(episode=episode, step=step, agent=agent, observation=observation, raw_action=action,
                parsed_action=after.get("parsed_action"), valid=bool(after.get("valid", True)),
                rewards={a: float(r) for a, r in env.rewards.items()}, messages_sent=list(after.get("messages_sent", [])),
                messages_delivered=delivered, private=private)


def play_episode(env: Any, policies: Mapping[str, TextPolicy], seed: int | None = None, episode: int = 0) -> Episode:
    """Run one episode of an AEC arena; ``policies`` maps every agent to a text policy."""
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    returns = {a: 0.0 for a in env.possible_agents}
    steps: list[Step] = []
    for agent in env.agent_iter():
        obs, _, terminated, truncated, info = env.last()
        if terminated or truncated:
            env.step(None)
            continue
        record = take_step(env, agent, obs["text"], info, policies[agent](obs["text"], info, rng), episode, len(steps))
        for a, r in record.rewards.items():
            returns[a] += r
        steps.append(record)
    invalid = {a: sum(not s.valid for s in steps if s.agent == a) for a in env.possible_agents}
    return Episode(episode, seed, returns, invalid, steps)


def write_transcript(path: str | Path, episodes: Iterable[Episode]) -> Path:
    """Write one JSON line per step; the folder is created if needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for ep in episodes:
            for s in ep.steps:
                f.write(json.dumps(asdict(s)) + "\n")
    return path


def read_transcript(path: str | Path) -> list[dict[str, Any]]:
    with Path(path).open() as f:
        return [json.loads(line) for line in f if line.strip()]


# ---------------------------------------------------------------------------- configuration
from pydantic import BaseModel, ConfigDict, Field  # noqa: E402

from arenas.channels import ChannelConfig  # noqa: E402


class PlayConfig(BaseModel):
    """``agora play``: which arena, who plays it, how often, and where the transcript goes."""

    model_config = ConfigDict(extra="forbid")
    arena: str
    params: dict[str, Any] = {}  # the arena's keyword arguments
    policies: list[str] = ["random"]  # one per agent in order, or one for all
    episodes: int = Field(10, ge=1)
    seed: int = 0
    channel: ChannelConfig | None = None
    transcript: str | None = None  # default: transcripts/<arena>.jsonl
