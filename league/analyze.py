"""Measure how agents communicate, with the baseline that says whether each number means anything.

Lowe et al. (2019, "On the pitfalls of measuring emergent communication") show that message statistics
alone mislead: a protocol can look rich and carry nothing, or carry information that no listener uses.
So every measurement here comes with its control:

- **statistics** per sender and per edge: messages, length, distinct messages and symbols, entropy,
  channel utilisation (length / bandwidth) and what the channel lost (truncation, drops, noise);
- **positive signalling**: the mutual information between a sender's private information (its card,
  its target, its number: ``info["private"]``) and its message, next to the same quantity with the
  messages permuted across episodes, so a protocol unrelated to the meanings reads as zero;
- **positive listening** (causal influence): the policies are played again from the same seeds with
  every message a receiver sees swapped for one its sender sent in another episode (``swap``) or replaced
  by its sender's most common message (``off``, the channel-off ablation: the channel carries nothing,
  yet receivers read a message they know). Common random numbers make the comparison exact: a receiver
  that ignores messages acts identically, so its action distribution moves by exactly zero;
- **compositionality**: topographic similarity, the Spearman correlation between meaning distances
  (attributes that differ) and message edit distances over the protocol's lexicon;
- **over training**: the same measures for each transcript file of a run (MLflow runs log one every
  ``transcripts_every`` steps), drawn as curves.

A message is what a sender puts on a channel (``messages_sent`` of a transcript step) or, in an arena
without a channel, the action of an agent that holds private information (a signalling speaker's
message, a poker player's bet): actions then are the only signals.
"""

from __future__ import annotations

import argparse
import html
import json
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rapidfuzz.distance import Levenshtein
from rich.console import Console
from rich.table import Table
from scipy.stats import entropy, spearmanr

from arenas.config import ConfigError, load_yaml
from arenas.play import Episode, PlayConfig, TextPolicy, play_episode, read_transcript, take_step, write_transcript

console = Console()
PERMUTATIONS = 200


# ---------------------------------------------------------------------------- messages from transcripts
@dataclass(frozen=True)
class Message:
    episode: int
    step: int  # the sender's move in its episode: a broadcast on k edges is k messages of one step
    sender: str
    receiver: str | None  # None: an action every other agent sees (arenas without a channel)
    meaning: str | None  # the sender's private information when it spoke
    text: str  # as sent (after the edge's bandwidth cut)
    delivered: str | None  # as received (noise applied); None when dropped
    length: int  # characters the sender wrote, before the cut
    bandwidth: int | None


def messages(steps: list[dict[str, Any]]) -> list[Message]:
    """Every message in a transcript's step records (see the module docstring for what counts)."""
    channel = any(s.get("messages_sent") for s in steps)
    out = []
    for s in steps:
        if channel:
            out += [Message(s["episode"], s["step"], s["agent"], r["receiver"], s.get("private"), r["text"], r["delivered"],
                            int(r.get("length", len(r["text"]))), r.get("bandwidth")) for r in s.get("messages_sent", [])]
        elif s.get("private") is not None and s.get("parsed_action") is not None:
            a = str(s["parsed_action"])
            out.append(Message(s["episode"], s["step"], s["agent"], None, s["private"], a, a, len(a), None))
    return out


def episode_returns(steps: list[dict[str, Any]]) -> dict[int, float]:
    """Each episode's joint return: the agents' summed rewards, averaged over agents."""
    totals: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for s in steps:
        for a, r in s["rewards"].items():
            totals[s["episode"]][a] += r
    return {e: float(np.mean(list(t.values()))) for e, t in totals.items()}


# ---------------------------------------------------------------------------- statistics
def message_stats(msgs: list[Message], key: Callable[[Message], str]) -> dict[str, dict[str, float]]:
    """Per group (a sender, or an edge): how much is said, how varied it is, what the channel lost."""
    groups: dict[str, list[Message]] = defaultdict(list)
    for m in msgs:
        groups[key(m)].append(m)
    out = {}
    for name, ms in sorted(groups.items()):
        lengths = np.array([len(m.text) for m in ms])
        counts = np.array(list(Counter(m.text for m in ms).values()))
        widths = [m.bandwidth for m in ms if m.bandwidth]
        delivered = [m for m in ms if m.delivered is not None]
        changed = sum(sum(a != b for a, b in zip(m.text, m.delivered)) for m in delivered)
        out[name] = {
            "messages": len(ms),
            "mean_length": float(lengths.mean()),
            "distinct_messages": len(counts),
            "symbols": len({c for m in ms for c in m.text}),
            "entropy_bits": float(entropy(counts, base=2)),
            "utilisation": float(np.mean([len(m.text) / m.bandwidth for m in ms if m.bandwidth])) if widths else float("nan"),
            "truncated_chars": float(np.mean([m.length - len(m.text) for m in ms])),
            "dropped": 1 - len(delivered) / len(ms),
            "noise_char_rate": changed / max(1, sum(len(m.text) for m in delivered)),
        }
    return out


def edge(m: Message) -> str:
    return f"{m.sender} -> {m.receiver or 'all'}"


# ---------------------------------------------------------------------------- positive signalling
def mutual_information(xs: list, ys: list) -> float:
    """Plug-in mutual information I(X; Y) in bits: H(X) + H(Y) - H(X, Y) of the empirical joint."""
    _, xi = np.unique(np.asarray(xs, dtype=str), return_inverse=True)
    _, yi = np.unique(np.asarray(ys, dtype=str), return_inverse=True)
    joint = np.zeros((xi.max() + 1, yi.max() + 1))
    np.add.at(joint, (xi, yi), 1)
    return float(entropy(joint.sum(1), base=2) + entropy(joint.sum(0), base=2) - entropy(joint.ravel(), base=2))


@dataclass
class Signalling:
    mi_bits: float  # I(meaning; message)
    baseline_bits: float  # mean over permutations: what a protocol unrelated to the meanings scores here
    excess_bits: float  # mi - baseline: positive signalling, ~0 for a random protocol
    p_value: float  # share of permutations at least as high (with the +1 correction)
    max_bits: float  # H(meaning): the most any protocol could carry
    n: int


def positive_signalling(meanings: list, texts: list, permutations: int = PERMUTATIONS, seed: int = 0) -> Signalling:
    """Mutual information between meanings and messages, against a permutation baseline (same marginals)."""
    mi = mutual_information(meanings, texts)
    rng = np.random.default_rng(seed)
    null = np.array([mutual_information(meanings, list(rng.permutation(texts))) for _ in range(permutations)])
    h = float(entropy(list(Counter(meanings).values()), base=2))
    return Signalling(mi, float(null.mean()), mi - float(null.mean()), float((1 + (null >= mi - 1e-12).sum()) / (permutations + 1)), h, len(texts))


# ---------------------------------------------------------------------------- compositionality
def counts_by_meaning(meanings: list[str], texts: list[str]) -> dict[str, Counter]:
    """meaning -> how often each message was sent for it, meanings sorted."""
    table: dict[str, Counter] = defaultdict(Counter)
    for m, t in zip(meanings, texts):
        table[m][t] += 1
    return dict(sorted(table.items()))


def topographic_similarity(meanings: list[str], texts: list[str]) -> float | None:
    """Spearman correlation of meaning distance (attribute values that differ) and message edit distance,
    over the lexicon: each meaning with the message its sender uses most for it. None below 3 meanings
    or when either distance is constant (a correlation is not defined there)."""
    lexicon = [(m.split(), c.most_common(1)[0][0]) for m, c in counts_by_meaning(meanings, texts).items()]
    if len(lexicon) < 3:
        return None
    pairs = [(i, j) for i in range(len(lexicon)) for j in range(i + 1, len(lexicon))]
    dm = [sum(a != b for a, b in zip(lexicon[i][0], lexicon[j][0])) + abs(len(lexicon[i][0]) - len(lexicon[j][0])) for i, j in pairs]
    dt = [Levenshtein.distance(lexicon[i][1], lexicon[j][1]) for i, j in pairs]
    if len(set(dm)) < 2 or len(set(dt)) < 2:
        return None
    return float(spearmanr(dm, dt).statistic)


# ---------------------------------------------------------------------------- one transcript, measured
@dataclass
class Analysis:
    source: str
    episodes: int
    joint_return: float
    success_rate: float
    senders: dict[str, dict[str, float]]
    edges: dict[str, dict[str, float]]
    signalling: dict[str, Signalling]  # per sender with private information
    topsim: dict[str, float | None]
    lexicon: dict[str, dict[str, dict[str, int]]]  # sender -> meaning -> message -> count (for the heatmap)
    influence: dict[str, Influence] = field(default_factory=dict)  # filled when the policies are played


def analyse(steps: list[dict[str, Any]], source: str = "", seed: int = 0) -> Analysis:
    """Everything that can be measured from a transcript alone (interventions need the policies)."""
    msgs = messages(steps)
    returns = episode_returns(steps)
    informed: dict[str, list[Message]] = defaultdict(list)
    for m in msgs:
        if m.meaning is not None:
            informed[m.sender].append(m)
    signalling, topsim, lexicon = {}, {}, {}
    for sender, ms in sorted(informed.items()):
        once = list({(m.episode, m.step): m for m in ms}.values())  # a broadcast on k edges counts once
        meanings, texts = [m.meaning for m in once], [m.text for m in once]
        signalling[sender] = positive_signalling(meanings, texts, seed=seed)
        topsim[sender] = topographic_similarity(meanings, texts)
        lexicon[sender] = {m: dict(c) for m, c in counts_by_meaning(meanings, texts).items()}
    values = np.array(list(returns.values()) or [0.0])
    return Analysis(source, len(returns), float(values.mean()), float((values > 0).mean()),
                    message_stats(msgs, lambda m: m.sender), message_stats(msgs, edge), signalling, topsim, lexicon)


# ---------------------------------------------------------------------------- positive listening
@dataclass
class Influence:
    mode: str  # "swap": messages from other episodes; "off": every message its sender's most common one
    episodes: int
    joint_return: float  # as the policies play
    joint_return_intervened: float
    success_rate: float
    success_rate_intervened: float
    action_change: float  # mean total-variation distance of a receiver's action distribution, per touched move
    touched_moves: int  # receiver moves whose observation the intervention changed
    samples: int  # draws per distribution (the same random numbers on both sides)


def intervene(env: Any, policies: Mapping[str, TextPolicy], seeds: list[int], mode: str, samples: int = 8,
              seed: int = 0, played: list[Episode] | None = None) -> Influence:
    """Play ``seeds`` as they are (or take ``played``, those episodes already played), then again with what
    receivers see of each message replaced (see the module docstring)."""
    if mode not in ("swap", "off"):
        raise ValueError(f"mode must be 'swap' or 'off', got {mode!r}")
    if played is not None and [ep.seed for ep in played] != list(seeds):
        raise ValueError("played: the episodes must be those of seeds, in order")
    played = played or [play_episode(env, policies, seed=s, episode=i) for i, s in enumerate(seeds)]
    pool: dict[str, list[tuple[int, str]]] = defaultdict(list)  # sender -> (episode, what receivers saw)
    for ep in played:
        for m in messages([asdict(st) for st in ep.steps]):
            if m.delivered is not None:
                pool[m.sender].append((ep.episode, m.delivered))
    rng = np.random.default_rng(seed)

    # off: every message becomes its sender's most common one, so the channel carries nothing yet every
    # receiver still reads a message it knows (an empty or foreign one would test robustness, not reliance)
    constant = {sender: Counter(t for _, t in msgs).most_common(1)[0][0] for sender, msgs in pool.items()}

    def donor(episode: int) -> Callable[[str, str], str]:
        def pick(sender: str, text: str) -> str:
            if mode == "off":
                return constant.get(sender, "")
            others = [t for e, t in pool[sender] if e != episode]
            return others[int(rng.integers(len(others)))] if others else text
        return pick

    outcomes, changes = [], []
    for i, s in enumerate(seeds):
        joint, moved = _intervened_episode(env, policies, s, donor(i), samples)
        outcomes.append(joint)
        changes += moved
    before = np.array([np.mean(list(ep.returns.values())) for ep in played])
    after = np.array(outcomes)
    return Influence(mode, len(seeds), float(before.mean()), float(after.mean()), float((before > 0).mean()),
                     float((after > 0).mean()), float(np.mean(changes)) if changes else 0.0, len(changes), samples)


def _intervened_episode(env: Any, policies: Mapping[str, TextPolicy], seed: int, replace: Callable[[str, str], str],
                        samples: int) -> tuple[float, list[float]]:
    """One episode from ``seed`` with the policies' random numbers of ``play_episode`` (so nothing differs
    until a message is replaced); returns the joint return and, per touched move, the action change."""
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    parse = getattr(env.unwrapped, "parse_action", None)
    shown: dict[str, dict[str, str]] = defaultdict(dict)  # sender -> its message -> what receivers see instead
    returns: dict[str, float] = defaultdict(float)
    changes = []
    for move, agent in enumerate(env.agent_iter()):
        obs, _, terminated, truncated, info = env.last()
        if terminated or truncated:
            env.step(None)
            continue
        for r in info.get("messages_received", []):
            if r["delivered"] is not None:
                shown[r["sender"]].setdefault(r["delivered"], replace(r["sender"], r["delivered"]))
        text = _edit(obs["text"], {old: new for sender, table in shown.items() if sender != agent for old, new in table.items()})
        if text != obs["text"]:
            def act(t: str, j: int) -> str:
                raw = policies[agent](t, info, np.random.default_rng([seed, move, j]))
                return (parse(agent, raw) if parse else None) or raw.strip()
            as_played = Counter(act(obs["text"], j) for j in range(samples))
            intervened = Counter(act(text, j) for j in range(samples))
            changes.append(0.5 * sum(abs(as_played[k] - intervened[k]) for k in as_played | intervened) / samples)
        channel = "messages_received" in info
        record = take_step(env, agent, text, info, policies[agent](text, info, rng))
        if not channel and record.private is not None and record.parsed_action is not None:
            signal = str(record.parsed_action)  # no channel: an informed agent's action is its message
            shown[agent].setdefault(signal, replace(agent, signal))
        for a, r in record.rewards.items():
            returns[a] += r
    return float(np.mean(list(returns.values()))) if returns else 0.0, changes


def _edit(text: str, table: dict[str, str]) -> str:
    """Replace each quoted message (arenas and channels show messages JSON-quoted) in one pass."""
    quoted = {json.dumps(old): json.dumps(new) for old, new in table.items() if old != new}
    if not quoted:
        return text
    pattern = re.compile("|".join(re.escape(q) for q in sorted(quoted, key=len, reverse=True)))
    return pattern.sub(lambda m: quoted[m.group(0)], text)


# ---------------------------------------------------------------------------- inputs
def transcript_files(path: str | Path, tracking_uri: str | None = None) -> tuple[list[Path], str | None]:
    """The transcript files behind PATH (a JSONL file, a folder of them, or an MLflow run id) and the run id."""
    p = Path(path)
    if p.is_file():
        return [p], None
    if p.is_dir():
        files = sorted(list(p.glob("*.jsonl")) + list(p.glob("transcripts/*.jsonl")))
        if not files:
            raise ConfigError(f"{path}: no transcript files (*.jsonl) in this folder")
        return files, None
    run_id = str(path).removeprefix("runs:/").strip("/")
    if not re.fullmatch(r"[0-9a-f]{32}", run_id):
        raise ConfigError(f"{path}: not a transcript file, a folder, or an MLflow run id")
    import tempfile

    import mlflow

    from marl.tracking import DEFAULT_TRACKING_URI

    target = tempfile.mkdtemp(prefix="agora-analyze-")
    try:
        local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="transcripts", dst_path=target,
                                                    tracking_uri=tracking_uri or DEFAULT_TRACKING_URI)
    except Exception as e:
        raise ConfigError(f"{path}: cannot read the run's transcripts ({type(e).__name__}: {e})") from e
    files = sorted(Path(local).glob("*.jsonl"))
    if not files:
        raise ConfigError(f"{path}: the run logged no transcripts (set transcripts_every in its config)")
    return files, run_id


def step_of(path: Path, index: int) -> int:
    """The training step a transcript file was logged at (``step_00040.jsonl``), else its index."""
    found = re.search(r"(\d+)", path.stem)
    return int(found.group(1)) if found else index


# ---------------------------------------------------------------------------- pictures and the report
def plot_lexicon(analysis: Analysis, sender: str, top: int = 24):
    from league.report import new_figure

    table = analysis.lexicon[sender]
    meanings = list(table)
    totals = Counter()
    for row in table.values():
        totals.update(row)
    texts = [t for t, _ in totals.most_common(top)]
    texts.sort(key=lambda t: (max(range(len(meanings)), key=lambda i: table[meanings[i]].get(t, 0)), t))  # a code reads as a diagonal
    counts = np.array([[table[m].get(t, 0) for t in texts] for m in meanings], dtype=float)
    counts /= np.maximum(counts.sum(1, keepdims=True), 1)
    fig = new_figure(min(2 + 0.45 * len(texts), 12), 1.2 + 0.35 * len(meanings))
    ax = fig.subplots()
    im = ax.imshow(counts, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(texts)), [repr(t)[1:-1][:12] for t in texts], rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(meanings)), meanings, fontsize=8)
    ax.set_xlabel("message")
    ax.set_ylabel(f"{sender}'s private information")
    ax.set_title(f"{sender}: P(message | meaning)")
    fig.colorbar(im, ax=ax, shrink=0.8)
    return fig


def plot_edges(analysis: Analysis):
    """The communication graph as used: an arrow per edge that carried messages, width by how many."""
    import networkx as nx

    from league.report import new_figure

    g = nx.DiGraph()
    for name, s in analysis.edges.items():
        src, dst = name.split(" -> ")
        if dst != "all":
            g.add_edge(src, dst, n=s["messages"], lost=s["dropped"])
    if not g.number_of_edges():
        return None
    fig = new_figure(5, 4.5)
    ax = fig.subplots()
    pos = nx.circular_layout(sorted(g.nodes))
    most = max(d["n"] for *_, d in g.edges(data=True))
    nx.draw_networkx_nodes(g, pos, ax=ax, node_color="#9ecae1", node_size=900)
    nx.draw_networkx_labels(g, pos, ax=ax, font_size=8)
    nx.draw_networkx_edges(g, pos, ax=ax, width=[0.5 + 4 * d["n"] / most for *_, d in g.edges(data=True)],
                           edge_color=[d["lost"] for *_, d in g.edges(data=True)], edge_cmap=_cmap("Reds"), edge_vmin=0,
                           edge_vmax=1, connectionstyle="arc3,rad=0.12", arrowsize=14, node_size=900)
    ax.set_title("edge usage (width: messages; red: share dropped)")
    ax.axis("off")
    return fig


def _cmap(name: str):
    import matplotlib

    return matplotlib.colormaps[name]


def plot_training(steps: list[int], analyses: list[Analysis]):
    from league.report import new_figure

    fig = new_figure(9, 3.4)
    left, right = fig.subplots(1, 2)
    left.plot(steps, [a.success_rate for a in analyses], "o-", label="success rate")
    left.plot(steps, [a.joint_return for a in analyses], "s--", label="joint return")
    left.set_xlabel("training step")
    left.set_title("outcome")
    left.legend(fontsize=8)
    for sender in sorted({s for a in analyses for s in a.signalling}):
        xs = [st for st, a in zip(steps, analyses) if sender in a.signalling]
        right.plot(xs, [a.signalling[sender].excess_bits for a in analyses if sender in a.signalling], "o-", label=f"{sender}: MI - baseline")
        tops = [(st, a.topsim.get(sender)) for st, a in zip(steps, analyses) if a.topsim.get(sender) is not None]
        if tops:
            right.plot(*zip(*tops), "^:", label=f"{sender}: topographic similarity")
    right.axhline(0, color="grey", lw=0.8)
    right.set_xlabel("training step")
    right.set_title("the protocol")
    right.legend(fontsize=8)
    return fig


def figures(analysis: Analysis, history: tuple[list[int], list[Analysis]] | None = None) -> dict[str, Any]:
    """The report's pictures by file name: the protocol over training, P(message | meaning), edge usage."""
    out = {}
    if history and len(history[0]) > 1:
        out["over_training"] = plot_training(*history)
    out |= {f"lexicon_{re.sub(r'[^A-Za-z0-9_-]', '_', s)}": plot_lexicon(analysis, s) for s in analysis.lexicon}
    graph = plot_edges(analysis)
    if graph is not None:
        out["edges"] = graph
    return out


def summary(analysis: Analysis) -> list[str]:
    """The findings in words, each with its control."""
    out = [f"{analysis.episodes} episodes: mean joint return {analysis.joint_return:.3f}, success rate {analysis.success_rate:.1%}."]
    for sender, s in analysis.signalling.items():
        verdict = "signals its private information" if s.p_value < 0.05 and s.excess_bits > 0.01 else "shows no positive signalling"
        out.append(f"{sender} {verdict}: I(meaning; message) = {s.mi_bits:.3f} bits against {s.baseline_bits:.3f} for "
                   f"permuted messages (p = {s.p_value:.3f}; at most {s.max_bits:.3f}).")
    for inf in analysis.influence.values():
        what = "messages from other episodes" if inf.mode == "swap" else "the channel off (every message the same)"
        out.append(f"With {what}, success falls from {inf.success_rate:.1%} to {inf.success_rate_intervened:.1%} and the "
                   f"receivers' action distributions move by {inf.action_change:.3f} (total variation, {inf.touched_moves} moves).")
    return out


def render_html(analysis: Analysis, images: list[str]) -> str:
    def table(rows: dict[str, dict[str, float]], title: str) -> str:
        if not rows:
            return ""
        cols = list(next(iter(rows.values())))
        head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
        body = "".join(f"<tr><td>{html.escape(k)}</td>" + "".join(f"<td>{_fmt(v[c])}</td>" for c in cols) + "</tr>" for k, v in rows.items())
        return f"<h2>{title}</h2><table><tr><th></th>{head}</tr>{body}</table>"

    signalling = {s: {k: v for k, v in asdict(x).items()} | {"topographic_similarity": analysis.topsim.get(s)}
                  for s, x in analysis.signalling.items()}
    influence = {i.mode: {k: v for k, v in asdict(i).items() if k != "mode"} for i in analysis.influence.values()}
    parts = [f"<h1>Coordination analysis: {html.escape(analysis.source)}</h1>",
             "<ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in summary(analysis)) + "</ul>",
             *[f'<img src="{src}">' for src in images],
             table(signalling, "Positive signalling and compositionality"), table(influence, "Positive listening (interventions)"),
             table(analysis.senders, "Messages per sender"), table(analysis.edges, "Messages per edge")]
    style = "body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse;font-size:13px}" \
            "td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}img{display:block;margin:1em 0;max-width:100%}"
    return f"<!doctype html><html><head><meta charset='utf-8'><title>Agora analysis</title><style>{style}</style></head><body>{''.join(parts)}</body></html>"


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return "-" if np.isnan(v) else f"{v:.3f}"
    return html.escape(str(v))


def print_tables(analysis: Analysis) -> None:
    t = Table(title=f"{analysis.source}: {analysis.episodes} episodes, success {analysis.success_rate:.1%}")
    t.add_column("sender", no_wrap=True)
    for col in ("msgs", "distinct", "H bits", "MI bits", "permuted", "p", "topsim"):
        t.add_column(col, justify="right")
    for sender, st in analysis.senders.items():
        s = analysis.signalling.get(sender)
        t.add_row(sender, str(st["messages"]), str(st["distinct_messages"]), f"{st['entropy_bits']:.3f}",
                  *( [f"{s.mi_bits:.3f}", f"{s.baseline_bits:.3f}", f"{s.p_value:.3f}"] if s else ["-"] * 3),
                  _fmt(analysis.topsim.get(sender)))
    console.print(t)
    edges = {k: v for k, v in analysis.edges.items() if not k.endswith(" -> all")}
    if edges:
        t = Table(title="channel edges")
        t.add_column("edge", no_wrap=True)
        for col in ("msgs", "length", "of bandwidth", "cut", "dropped", "noisy chars"):
            t.add_column(col, justify="right")
        for name, e in edges.items():
            t.add_row(name, str(e["messages"]), f"{e['mean_length']:.1f}", _fmt(e["utilisation"]), f"{e['truncated_chars']:.1f}",
                      f"{e['dropped']:.1%}", f"{e['noise_char_rate']:.1%}")
        console.print(t)
    if analysis.influence:
        t = Table(title="interventions (same seeds, same random numbers)")
        for col in ("mode", "success", "intervened", "joint return", "intervened", "action change (TV)", "moves"):
            t.add_column(col, justify="right")
        for i in analysis.influence.values():
            t.add_row(i.mode, f"{i.success_rate:.1%}", f"{i.success_rate_intervened:.1%}", f"{i.joint_return:.3f}",
                      f"{i.joint_return_intervened:.3f}", f"{i.action_change:.3f}", str(i.touched_moves))
        console.print(t)


# ---------------------------------------------------------------------------- the command
def run(args: argparse.Namespace, policy_factory: Callable[[str, str], TextPolicy]) -> int:
    """``agora analyze PATH``: measure, print, write ``report.html``, PNGs and ``analysis.json``, log to MLflow."""
    from league.report import png_uri

    path = Path(args.path)
    out = Path(args.out or Path("analysis") / (path.stem if path.suffix else path.name or "run"))
    out.mkdir(parents=True, exist_ok=True)
    run_id = args.run_id
    history = None
    if path.suffix in (".yaml", ".yml"):  # a play config: play it, then intervene with the same policies
        from arenas.cli import players

        cfg = load_yaml(path, PlayConfig)
        env, _, policies = players(cfg, policy_factory)
        seeds = [cfg.seed + i for i in range(cfg.episodes)]
        with console.status(f"playing {cfg.episodes} episodes of {cfg.arena}"):
            episodes = [play_episode(env, policies, seed=s, episode=i) for i, s in enumerate(seeds)]
        write_transcript(out / "transcript.jsonl", episodes)
        analysis = analyse([asdict(s) for ep in episodes for s in ep.steps], str(path), seed=args.seed)
        for mode in ("swap", "off"):
            with console.status(f"intervention '{mode}': replaying {cfg.episodes} episodes"):
                analysis.influence[mode] = intervene(env, policies, seeds, mode, samples=args.samples, seed=args.seed,
                                                     played=episodes)
    else:
        files, found_run = transcript_files(path, args.tracking_uri)
        run_id = run_id or found_run
        analyses = [analyse(read_transcript(f), f.name, seed=args.seed) for f in files]
        analysis = analyses[-1]
        analysis.source = str(path) if len(files) == 1 else f"{path} ({files[-1].name}, the last of {len(files)})"
        history = ([step_of(f, i) for i, f in enumerate(files)], analyses)
        if len(files) > 1:
            (out / "over_training.json").write_text(json.dumps(
                [{"step": st, "file": f.name, **_jsonable(a)} for st, f, a in zip(history[0], files, analyses)], indent=1))
    print_tables(analysis)
    for line in summary(analysis):
        console.print(line)
    (out / "analysis.json").write_text(json.dumps(_jsonable(analysis), indent=1))
    images = []
    for name, fig in figures(analysis, history).items():
        fig.savefig(out / f"{name}.png", dpi=100)
        images.append(png_uri(fig))
    report = out / "report.html"
    report.write_text(render_html(analysis, images))
    console.print(f"report: {report}")
    if run_id:
        from mlflow import MlflowClient

        from marl.tracking import DEFAULT_TRACKING_URI

        MlflowClient(args.tracking_uri or DEFAULT_TRACKING_URI).log_artifacts(run_id, str(out), "analysis")
        console.print(f"logged to MLflow run {run_id} (artifacts: analysis/)")
    return 0


def _jsonable(analysis: Analysis) -> dict[str, Any]:
    """The analysis as strict JSON: no lexicon (it is in the pictures), NaN and infinities as null."""
    def clean(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        return None if isinstance(x, float) and not np.isfinite(x) else x

    d = asdict(analysis)
    d.pop("lexicon")
    return clean(d)


def add_commands(sub: argparse._SubParsersAction, policy_factory: Callable[[str, str], TextPolicy]) -> None:
    p = sub.add_parser("analyze", help="measure a communication protocol: statistics, signalling, listening, compositionality")
    p.add_argument("path", help="a transcript (JSONL), a folder of them (one per training step), an MLflow run id, "
                                "or a play config (YAML: its policies are played, then intervened on)")
    p.add_argument("--out", help="folder for report.html and analysis.json (default: analysis/<name>)")
    p.add_argument("--run-id", help="also log the report to this MLflow run")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or the local store)")
    p.add_argument("--samples", type=int, default=8, help="draws per action distribution in the interventions")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=lambda args: run(args, policy_factory))
