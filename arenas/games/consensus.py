"""Consensus: every agent must learn the sum (or max) of all private numbers by talking over a channel graph.

| Import             | ``arenas.make("consensus_v0", channel={"topology": "ring"})`` (default: complete channel) |
|--------------------|---------------------------------------------------------------------------|
| Agents             | ``agent_0`` .. ``agent_{N-1}`` (N >= 3)                                    |
| Actions            | talk rounds: free text (the message); report round: ``0``..``N*(V-1)`` (sum) or ``0``..``V-1`` (max) |
| Observations       | text: rules, own private number, round, what to do; then received messages (added by the channel) |
| Rewards            | shared: the fraction of agents whose report is correct, at the end         |
| Parallel           | yes (simultaneous rounds: ``arenas.make_parallel("consensus_v0")``)        |

A gossip / distributed-aggregation task whose difficulty is set by the channel rather than by the
rules: a message reaches a neighbour at the start of the next round, so information moves one hop per
round and a team can only always win when ``talk_rounds`` is at least the graph's diameter (directed
graphs: the longest shortest path). The flooding heuristic meets that bound exactly, which makes the
effect of topology, bandwidth, drop and noise measurable. Moves are simultaneous: all agents act once per
round (AEC order agent_0, agent_1, ...) and the state changes only when a round ends, so an invalid report
under ``penalize`` also takes effect at the end of the round (offenders -1, the others 0).
"""

from __future__ import annotations

import json
import re
from typing import Any

from arenas.core import ANSWER_FORMAT, TextArenaEnv

NAME = "consensus_v0"
TASKS = ("sum", "max")


class raw_env(TextArenaEnv):
    metadata = {"render_modes": ["human", "ansi"], "name": NAME, "is_parallelizable": True}
    requires_channel = True

    def __init__(self, *, num_agents: int = 4, num_values: int = 10, talk_rounds: int = 2, task: str = "sum",
                 invalid_action: str = "penalize", render_mode: str | None = None):
        if num_agents < 3:
            raise ValueError(f"num_agents must be >= 3, got {num_agents}")
        if num_values < 2:
            raise ValueError(f"num_values must be >= 2, got {num_values}")
        if talk_rounds < 0:
            raise ValueError(f"talk_rounds must be >= 0, got {talk_rounds}")
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        self.n, self.num_values, self.talk_rounds, self.task = num_agents, num_values, talk_rounds, task
        top = num_agents * (num_values - 1) if task == "sum" else num_values - 1
        answers = [str(i) for i in range(top + 1)]
        super().__init__({f"agent_{i}": answers for i in range(num_agents)}, invalid_action, render_mode)

    def _new_game(self, options: dict) -> None:
        values = options.get("values")
        if values is None:
            values = self.np_random.integers(self.num_values, size=self.n)
        self.values = [int(v) for v in values]
        if len(self.values) != self.n or not all(0 <= v < self.num_values for v in self.values):
            raise ValueError(f"options['values'] must be {self.n} numbers in [0, {self.num_values})")
        self.round = 1  # talk rounds 1..talk_rounds, then the report round
        self.reports: dict[str, int] = {}
        self.answer = sum(self.values) if self.task == "sum" else max(self.values)
        self.agent_selection = "agent_0"

    def _reporting(self) -> bool:
        return self.round > self.talk_rounds

    def _legal(self, agent: str) -> list[str]:
        return self.vocabularies[agent] if self._reporting() else []

    def _private(self, agent: str) -> str | None:
        return str(self.values[int(agent.split("_")[1])])

    def _prompt(self, agent: str) -> str:
        n, task, last = self.n, self.task.upper(), int(self.vocabularies[agent][-1])
        total = self.talk_rounds + 1
        lines = [
            f"Consensus game with {n} agents (agent_0 to agent_{n - 1}). Each agent has a private whole number "
            f"from 0 to {self.num_values - 1}.",
            f"Goal: in the last round every agent reports the {task} of all {n} private numbers. Everyone gets the "
            "same reward: the fraction of agents whose report is correct.",
            f"There are {self.talk_rounds} talk round(s), then the report round. You can only talk to your neighbours "
            "on the channel (see below); a message reaches them at the start of the next round, so information "
            "moves one hop per round: pass on what you have heard.",
            f"You are {agent}. Your private number is {self.values[int(agent.split('_')[1])]}.",
        ]
        if self.terminations.get(agent, True):
            reports = ", ".join(f"{a}: {self.reports.get(a, 'invalid')}" for a in self.possible_agents)
            correct = sum(r == self.answer for r in self.reports.values())
            lines.append(f"The game is over. Reports: {reports}. The correct {self.task} was {self.answer}; "
                         f"{correct} of {n} agents were right.")
        elif self._reporting():
            lines.append(f"Round {self.round} of {total} (report round): report the {task} of all private numbers, "
                         f"a whole number from 0 to {last}.\n{ANSWER_FORMAT}")
        else:
            left = self.talk_rounds - self.round + 1
            lines.append(f"Round {self.round} of {total} (talk round, {left} talk round(s) left including this one): "
                         "write your message to your neighbours now; your whole reply is sent.")
        return "\n".join(lines)

    def _play(self, agent: str, action: str) -> None:
        if self._reporting() and action is not None:
            self.reports[agent] = int(action)
        self._advance(agent)

    def _advance(self, agent: str) -> None:
        i = int(agent.split("_")[1])
        self.agent_selection = f"agent_{(i + 1) % self.n}"
        if i < self.n - 1:
            return
        if not self._reporting():
            self.round += 1
        elif not self._settle_offenders():
            score = sum(r == self.answer for r in self.reports.values()) / self.n
            self._end({a: score for a in self.possible_agents})

    def _summary(self) -> str:
        reports = " ".join(f"{a}={r}" for a, r in self.reports.items())
        return f"round {self.round}/{self.talk_rounds + 1}  values {self.values}  {self.task}={self.answer}  reports: {reports or '-'}"


_SETUP = re.compile(r"Consensus game with (\d+) agents .* from 0 to (\d+)\.\nGoal: .* reports the (SUM|MAX) ")
_ME = re.compile(r"You are agent_(\d+)\. Your private number is (\d+)\.")
_RECEIVED = re.compile(r'^  \[turn \d+\] from [\w\-]+: (".*")$', re.M)
_PAIR = re.compile(r"\ba(\d+)=(\d+)\b")
_LIMIT = re.compile(r"\((?:at most )?(\d+)(?:-\d+)? characters")


def heuristic(text: str, info: dict, rng: Any) -> str:
    """Flooding: tell neighbours every value known (``a0=3 a2=7``); report from what is known."""
    n, top, task = _SETUP.search(text).groups()
    n, top = int(n), int(top)
    me, own = map(int, _ME.search(text).groups())
    known = {me: own}
    for quoted in _RECEIVED.findall(text):
        try:
            message = json.loads(quoted)
        except ValueError:
            continue
        for i, v in _PAIR.findall(message):
            if int(i) < n and int(v) <= top:
                known.setdefault(int(i), int(v))
    if "(report round)" in text:
        guess = max(known.values()) if task == "MAX" else sum(known.values()) + (n - len(known)) * round(top / 2)
        return str(guess)
    limit = _LIMIT.search(text)
    out = ""
    for i, v in sorted(known.items()):  # whole entries only: a cut "a5=12" would read as "a5=1"
        entry = f"{out} a{i}={v}".strip()
        if limit and len(entry) > int(limit.group(1)):
            break
        out = entry
    return out
