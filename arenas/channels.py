"""Communication channels: talk between agents along a directed networkx graph.

:class:`ChannelWrapper` adds talk to any arena. An agent's output may carry a message::

    <message>text for my neighbours</message> <answer>bet</answer>
    <message to="player_2">only for player_2</message> ...

The message is cut out before the arena parses the action; on a talk turn (``info["phase"] == "talk"``)
the whole output is the message when no tag is given. Each out-edge (sender -> receiver) has its own
``bandwidth`` (characters kept), ``drop`` (probability the message is lost), ``noise`` (probability
each character is replaced), ``delay`` (extra receiver turns before delivery; in simultaneous-move
arenas a message reaches others at the start of the next round, never within the round it was sent)
and ``cost`` (reward charged to the sender per character sent on that edge).

Delivered messages appear at the end of the receiver's observations as JSON-quoted, single-line strings
after a sender name written by the channel itself, so no agent can forge the arena's text or another
agent's identity. Every message is logged as sent and as delivered (``log``, and ``infos``).
All randomness comes from the env seed.
"""

from __future__ import annotations

import json
import string
from typing import Any, Literal

import networkx as nx
import numpy as np
from pettingzoo.utils.wrappers import BaseWrapper
from pydantic import BaseModel, ConfigDict, Field

from arenas.core import clip_text
from arenas.parsing import split_message

NOISE_ALPHABET = string.ascii_lowercase + string.digits + " "
Topology = Literal["complete", "ring", "star", "line", "random"]


class EdgeOverride(BaseModel):
    """Settings of one directed edge that differ from the channel's defaults."""

    model_config = ConfigDict(extra="forbid")
    src: str
    dst: str
    bandwidth: int | None = Field(None, ge=0)
    drop: float | None = Field(None, ge=0, le=1)
    noise: float | None = Field(None, ge=0, le=1)
    delay: int | None = Field(None, ge=0)
    cost: float | None = Field(None, ge=0)


class ChannelConfig(BaseModel):
    """A channel: graph (named topology or explicit edges) and per-edge properties."""

    model_config = ConfigDict(extra="forbid")
    topology: Topology = "complete"
    edges: list[tuple[str, str]] | None = None  # explicit directed edges; replaces topology
    directed: bool = False  # named topologies: one-way edges (ring: i -> i+1; star: centre -> leaves)
    p: float = Field(0.5, ge=0, le=1)  # edge probability of the random topology
    graph_seed: int = 0  # seed of the random topology (the graph stays fixed across episodes)
    bandwidth: int = Field(64, ge=0)
    drop: float = Field(0.0, ge=0, le=1)
    noise: float = Field(0.0, ge=0, le=1)
    delay: int = Field(0, ge=0)
    cost: float = Field(0.0, ge=0)
    overrides: list[EdgeOverride] = []
    history: int = Field(20, ge=1)  # received messages shown in an observation


EDGE_KEYS = ("bandwidth", "drop", "noise", "delay", "cost")


def build_graph(agents: list[str], config: ChannelConfig) -> nx.DiGraph:
    """The channel's directed graph over ``agents`` with edge attributes (a pure function)."""
    n = len(agents)
    kind = nx.DiGraph if config.directed else nx.Graph
    if config.edges is not None:
        g = nx.DiGraph()
        g.add_nodes_from(agents)
        for src, dst in config.edges:
            for node in (src, dst):
                if node not in agents:
                    raise ValueError(f"channel edge ({src}, {dst}) names unknown agent {node!r}; agents: {agents}")
            g.add_edge(src, dst)
    else:
        g = {
            "complete": lambda: nx.complete_graph(n, create_using=kind),
            "ring": lambda: nx.cycle_graph(n, create_using=kind),
            "star": lambda: nx.star_graph(n - 1, create_using=kind),
            "line": lambda: nx.path_graph(n, create_using=kind),
            "random": lambda: nx.gnp_random_graph(n, config.p, seed=config.graph_seed, directed=config.directed),
        }[config.topology]()
        g = nx.relabel_nodes(nx.DiGraph(g), dict(enumerate(agents)))
    g.remove_edges_from(list(nx.selfloop_edges(g)))
    for u, v in g.edges:
        g.edges[u, v].update({k: getattr(config, k) for k in EDGE_KEYS})
    for o in config.overrides:
        if not g.has_edge(o.src, o.dst):
            raise ValueError(f"channel override names edge ({o.src}, {o.dst}), which is not in the graph")
        g.edges[o.src, o.dst].update({k: getattr(o, k) for k in EDGE_KEYS if getattr(o, k) is not None})
    return g


def quote(text: str) -> str:
    """One line, ASCII, quoted: what an agent wrote can never read as the arena's own text."""
    return json.dumps(text, ensure_ascii=True)


class ChannelWrapper(BaseWrapper):
    """Adds a communication channel to an arena (see the module docstring)."""

    def __init__(self, env: Any, config: ChannelConfig):
        super().__init__(env)
        self.config = config
        self.graph = build_graph(list(env.possible_agents), config)
        self._simultaneous = bool(env.metadata.get("is_parallelizable", False))
        self._rng = np.random.default_rng()

    def reset(self, seed: int | None = None, options: dict | None = None) -> None:
        self.env.reset(seed=seed, options=options)
        if seed is not None:
            self._rng = np.random.default_rng([seed, 0xC4A77E1])
        self.log: list[dict[str, Any]] = []
        self._turn = {a: 0 for a in self.env.possible_agents}
        self._received: dict[str, list[dict[str, Any]]] = {a: [] for a in self.env.possible_agents}
        self._seen: dict[str, set[int]] = {a: set() for a in self.env.possible_agents}
        for a in self.env.agents if self._simultaneous else [self.env.agent_selection]:
            self._update_inbox_info(a)

    def observe(self, agent: str) -> Any:
        obs = self.env.observe(agent)
        return {**obs, "text": clip_text(obs["text"] + self._channel_text(agent))}

    def step(self, action: Any) -> None:
        agent = self.env.agent_selection
        base = self.env.unwrapped
        if base.terminations[agent] or base.truncations[agent]:
            self.env.step(action)
            return
        text = action if isinstance(action, str) else ("" if action is None else str(action))
        talk_turn = base.infos[agent].get("phase") == "talk"
        message, to, rest = split_message(text)
        if message is None and talk_turn:
            message, rest = text.strip(), ""
        self._seen[agent] = {r["id"] for r in self._visible(agent)}
        self.env.step(rest if message is not None else text)
        sent = self._send(agent, message, to) if message else []
        self._turn[agent] += 1
        if agent in base.infos:
            base.infos[agent]["messages_sent"] = sent
        for a in base.agents if self._simultaneous else [base.agent_selection]:
            self._update_inbox_info(a)

    # ------------------------------------------------------------------ internals
    def _send(self, sender: str, message: str, to: list[str] | None) -> list[dict[str, Any]]:
        records, cost = [], 0.0
        for receiver in self.graph.successors(sender):
            if to is not None and receiver not in to:
                continue
            edge = self.graph.edges[sender, receiver]
            kept = message[: edge["bandwidth"]]
            cost += edge["cost"] * len(kept)
            dropped = bool(self._rng.random() < edge["drop"])
            delivered = None if dropped else self._noisy(kept, edge["noise"])
            due = (self._turn[sender] + 1 if self._simultaneous else self._turn[receiver]) + edge["delay"]
            record = {"id": len(self.log), "sender": sender, "receiver": receiver, "text": kept, "delivered": delivered,
                      "length": len(message), "bandwidth": edge["bandwidth"], "turn": self._turn[sender], "due": due}
            self.log.append(record)
            if not dropped:
                self._received[receiver].append(record)
            records.append(record)
        if cost:
            base = self.env.unwrapped
            base.rewards[sender] -= cost
            base._cumulative_rewards[sender] -= cost
        return records

    def _noisy(self, text: str, rate: float) -> str:
        if rate <= 0 or not text:
            return text
        flips = self._rng.random(len(text)) < rate
        subs = self._rng.integers(len(NOISE_ALPHABET), size=len(text))
        return "".join(NOISE_ALPHABET[s] if f else c for c, f, s in zip(text, flips, subs))

    def _visible(self, agent: str) -> list[dict[str, Any]]:
        return [r for r in self._received[agent] if r["due"] <= self._turn[agent]]

    def _update_inbox_info(self, agent: str) -> None:
        info = self.env.unwrapped.infos.get(agent)
        if info is not None:
            info["messages_received"] = [r for r in self._visible(agent) if r["id"] not in self._seen[agent]]

    def _channel_text(self, agent: str) -> str:
        out = list(self.graph.successors(agent))
        lines = ["", "--- Channel ---"]
        if out:
            widths = sorted({self.graph.edges[agent, r]["bandwidth"] for r in out})
            costs = sorted({self.graph.edges[agent, r]["cost"] for r in out})
            limit = f"at most {widths[0]} characters" if len(widths) == 1 else f"{widths[0]}-{widths[-1]} characters per neighbour"
            price = f"; each character costs {costs[-1]:g} reward" if costs[-1] > 0 else ""
            lines.append(f"You can send a message to {', '.join(out)} ({limit}{price}) by writing <message>...</message>.")
        else:
            lines.append("You cannot send messages.")
        visible = self._visible(agent)[-self.config.history:]
        if visible:
            lines.append("Messages you received (written by other agents, quoted; they are not the arena's words):")
            lines += [f"  [turn {r['turn'] + 1}] from {r['sender']}: {quote(r['delivered'])}" for r in visible]
        else:
            lines.append("No messages received yet.")
        return "\n".join(lines)
