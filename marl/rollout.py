"""Rollouts: many episodes of an arena played in lock step, so each policy generates for a whole batch.

``marl`` knows arenas only through the PettingZoo AEC API: ``reset``, ``agent_iter``-style stepping via
``agent_selection``/``last``/``step``. At every tick each unfinished episode contributes the prompt of
its current agent; prompts are grouped by policy (agents sharing a policy share one batch) and one
``generate`` call answers them all.

Two shapes of group: ``tree=False`` plays ``group_size`` independent episodes from each start state;
``tree=True`` expands a tree instead, as in the MAGRPO authors' per-turn training: every move is sampled
``group_size`` times from the same state (the env is deep-copied for each sample), so a node's children
are a group, and the rollouts returned are the root-to-leaf paths (they share their common turns).

``counterfactual`` names agents whose final moves are also played with each of their legal actions, on copies of
the env: ``Turn.counterfactual`` then holds the rewards of every alternative, for the trainer's counterfactual term.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from arenas.core import answer_text
from arenas.play import Step, play_episode, take_step
from marl.policy import Policy


@dataclass
class Turn:
    """One agent's move: what the trainer needs to compute its loss."""

    agent: str
    tick: int  # index of the env step in its episode (for discounting)
    prompt: str
    prompt_ids: list[int]
    completion_ids: list[int]
    logprobs: list[float]
    text: str
    valid: bool
    talk: bool
    path: tuple[int, ...] = ()  # tree mode: the sample index at each tick up to this turn (its node in the group's tree)
    reach_logprob: float = 0.0  # log-probability of the agent's own earlier moves in this episode (its own reach)
    legal: tuple[str, ...] = ()  # the legal actions at this move (none on talk and free-text turns)
    counterfactual: tuple[dict[str, float], ...] = ()  # a final move: every agent's reward had each legal action been played


@dataclass
class Rollout:
    """One episode: the turns of every agent and every agent's reward at every env step."""

    seed: int
    group: int  # rollouts of one group share ``seed`` (the same start state)
    turns: list[Turn] = field(default_factory=list)
    rewards: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # agent -> [(tick, reward)]
    messages: int = 0
    message_chars: int = 0
    transcript: list[Step] = field(default_factory=list)  # the records of `agora play` (episode numbers set on writing)

    def returns(self, gamma: float = 1.0) -> dict[str, float]:
        return {a: sum(r * gamma**t for t, r in rs) for a, rs in self.rewards.items()}


def collect(make_env: Callable[[], Any], policies: dict[str, Policy], seeds: list[int], group_size: int,
            *, max_new_tokens: int, temperature: float = 1.0, top_p: float = 1.0, sample_seed: int = 0,
            keep_transcripts: bool = False, tree: bool = False, max_episodes: int = 4096, max_ticks: int = 1000,
            counterfactual: frozenset[str] = frozenset()) -> list[Rollout]:
    """Play ``group_size`` episodes from each start seed (or expand a tree of them), all in lock step; grouped by seed."""
    envs, rollouts = [], []
    for g_index, seed in enumerate(seeds):
        for _ in range(1 if tree else group_size):
            env = make_env()
            env.reset(seed=seed)
            envs.append(env)
            rollouts.append(Rollout(seed=seed, group=g_index, rewards={a: [] for a in env.possible_agents}))
    ticks = [0] * len(envs)
    paths: list[tuple[int, ...]] = [()] * len(envs)
    order = {id(p): k for k, p in enumerate(dict.fromkeys(policies.values()))}  # stable ids for seeding
    for tick_round in range(max_ticks):
        for env in envs:
            while env.agents:  # retire finished agents (PettingZoo wants step(None) for them)
                _, _, term, trunc, _ = env.last()
                if not (term or trunc):
                    break
                env.step(None)
        if tree:  # every unfinished episode branches into group_size copies before its next move
            for i in [i for i, env in enumerate(envs) if env.agents]:
                if len(envs) + group_size - 1 > max_episodes:
                    raise ValueError(f"tree mode needs more than {max_episodes} episodes ({group_size} samples per move); "
                                     "use a smaller group_size, or trajectory credit for long episodes")
                for j in range(1, group_size):
                    envs.append(copy.deepcopy(envs[i]))
                    rollouts.append(_branch(rollouts[i]))
                    ticks.append(ticks[i])
                    paths.append(paths[i] + (j,))
                paths[i] += (0,)
        waiting: dict[int, list[tuple[int, str, str, dict]]] = {}  # id(policy) -> [(env index, agent, text, info)]
        owners: dict[int, Policy] = {}
        for i, env in enumerate(envs):
            if not env.agents:
                continue
            agent = env.agent_selection
            obs, _, _, _, info = env.last()
            policy = policies[agent]
            waiting.setdefault(id(policy), []).append((i, agent, obs["text"], info))
            owners[id(policy)] = policy
        if not waiting:
            break
        for key, items in waiting.items():
            outs = owners[key].generate([text for _, _, text, _ in items], max_new_tokens=max_new_tokens,
                                        temperature=temperature, top_p=top_p, stop=("</answer>",),
                                        seed=sample_seed + tick_round * 7919 + order[key], infos=[info for *_, info in items])
            for (i, agent, text, info), out in zip(items, outs):
                ro = rollouts[i]
                talk, legal = info.get("phase") == "talk", tuple(info.get("legal_actions") or ())  # before the step clears them
                alternatives = final_outcomes(envs[i], agent, text, info, legal) if agent in counterfactual else ()
                record = take_step(envs[i], agent, text, info, out.text, step=ticks[i])
                for a, r in record.rewards.items():
                    if r:
                        ro.rewards[a].append((ticks[i], r))
                ro.messages += len(record.messages_sent)
                ro.message_chars += sum(len(m["text"]) for m in record.messages_sent)
                mine = next((t for t in reversed(ro.turns) if t.agent == agent), None)  # the agent's last move
                reach = mine.reach_logprob + sum(mine.logprobs) if mine else 0.0
                ro.turns.append(Turn(agent, ticks[i], text, out.prompt_ids, out.completion_ids, out.logprobs, out.text,
                                     record.valid, talk, paths[i], reach, legal, alternatives))
                if keep_transcripts:
                    ro.transcript.append(record)
                ticks[i] += 1
    return sorted(rollouts, key=lambda r: r.group)


def final_outcomes(env: Any, agent: str, text: str, info: dict, legal: tuple[str, ...]) -> tuple[dict[str, float], ...]:
    """Every agent's reward had ``agent`` played each ``legal`` action here, each on a copy of ``env``; empty unless
    every one of them ends the episode (after a move that does not, the rewards still depend on later play)."""
    outcomes = []
    for action in legal:
        twin = copy.deepcopy(env)
        record = take_step(twin, agent, text, info, answer_text(action))
        if any(not (twin.terminations[a] or twin.truncations[a]) for a in twin.agents):
            return ()
        outcomes.append(record.rewards)
    return tuple(outcomes)


def replay(make_env: Callable[[], Any], seed: int, moves: dict[str, Turn], gamma: float = 1.0) -> dict[str, float]:
    """The returns of a new episode from ``seed`` in which each agent plays the one move given (``credit: cross``).

    Pairing moves of different rollouts is only meaningful when no move depends on another's: an agent asked to
    move twice, or shown a prompt other than the one its move answered, is an error."""
    played: set[str] = set()

    def answer(agent: str) -> Callable[[str, dict, Any], str]:
        def policy(text: str, info: dict, rng: Any) -> str:
            move = moves.get(agent)
            if move is None or agent in played or text != move.prompt:
                raise ValueError(f"cross credit pairs the moves of different rollouts, so each agent must move once, from a "
                                 f"prompt the others' moves do not change (one simultaneous round); {agent} "
                                 + ("moves again" if agent in played else "sees another prompt" if move else "has no move to replay"))
            played.add(agent)
            return move.text
        return policy

    env = make_env()
    episode = play_episode(env, {a: answer(a) for a in env.possible_agents}, seed=seed)
    return {a: sum(s.rewards.get(a, 0.0) * gamma**tick for tick, s in enumerate(episode.steps)) for a in env.possible_agents}


def transcript_jsonl(rollouts: list[Rollout]) -> str:
    """The kept transcripts as JSONL lines of `agora play`'s format, episodes numbered in order."""
    return "".join(json.dumps(asdict(s) | {"episode": e}) + "\n" for e, r in enumerate(rollouts) for s in r.transcript)


def _branch(r: Rollout) -> Rollout:
    """A copy of an unfinished episode that shares its past turns (they are one node of the tree)."""
    return Rollout(r.seed, r.group, list(r.turns), {a: list(rs) for a, rs in r.rewards.items()}, r.messages,
                   r.message_chars, list(r.transcript))
