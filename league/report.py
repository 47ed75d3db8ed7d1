"""What a league folder says, for people: ``agora league status`` (rich tables) and ``agora league report``
(one self-contained HTML page with embedded PNGs).

Everything is read from the league's durable state (``league.db``); nothing here writes to it, so both
commands are safe while the league runs. The page shows, from the top:

1. a summary in words: rounds, matches, snapshots, the champion, and how far the main agent's
   exploitability fell (``kuhn_poker_v0``);
2. the exploitability curve: each learner's exact exploitability after every round, the snapshots as
   dots, the uniform policy (0.458) and the target (0.10) as lines;
3. the payoff heatmap: the row member's win rate against the column member, blank where they never met;
4. rating curves: every member's openskill ordinal (mu - 3 sigma) after each of its matches;
5. the dominance graph (networkx): an arrow A -> B where A beats B more often than not, thicker for a
   larger margin; members placed left to right by when they joined, bottom to top by rating;
6. the leaderboard and the meta-game Nash mixture over the members (two-player zero-sum arenas).
"""

from __future__ import annotations

import base64
import html
import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.panel import Panel
from rich.table import Table

from league.state import LeagueState

UNIFORM = 11 / 24  # exploitability of the uniform random Kuhn poker policy
TARGET = 0.10
ROLE_COLOURS = {"main_agent": "#1f77b4", "main_exploiter": "#d62728", "league_exploiter": "#ff7f0e", "snapshot": "#7f7f7f"}
MAX_TABLE_MEMBERS = 16  # the payoff table in the terminal shows the learners and the latest snapshots


# ---------------------------------------------------------------------------- reading the state
def league_data(state: LeagueState) -> dict[str, Any]:
    """Everything the status and the report show, as plain data."""
    cfg = state.meta("config") or {}
    arena = cfg.get("arena", "")
    payoff = state.payoff(cfg.get("payoff_decay", 1.0))
    members = list(payoff.players)
    roles = {p.id: p.role for p in state.players()}
    snapshots = {r.snapshot.id: r for r in state.snapshots()}
    roles.update({s: "snapshot" for s in snapshots})
    parents = {s: r.snapshot.parent for s, r in snapshots.items()}
    games = np.array([[payoff.games(a, b) for b in members] for a in members]).reshape(len(members), len(members))
    return {"config": cfg, "arena": arena, "members": members, "roles": roles, "parents": parents,
            "win_rates": payoff.matrix(members), "games": games,
            "leaderboard": state.leaderboard(arena) if arena else [],
            "exploitability": state.meta("exploitability", {}) or {},
            "history": state.meta("history", []) or [], "round": int(state.meta("round", 0) or 0),
            "matches": state.match_count(), "finished": state.meta("finished"),
            "mlflow": state.meta("mlflow"), "elapsed_s": float(state.meta("elapsed_s", 0.0) or 0.0),
            "players": {p.id: p for p in state.players()}, "snapshot_records": snapshots}


def champion(state: LeagueState, cfg) -> dict[str, Any] | None:
    """The best main agent, current or frozen: lowest exact exploitability in Kuhn poker, else the best rating."""
    data = league_data(state)
    mains = [pid for pid, role in data["roles"].items() if role == "main_agent"]
    candidates = mains + [s for s, parent in data["parents"].items() if parent in mains]
    if not candidates:
        return None
    expl = dict(data["exploitability"])
    if data["history"]:  # the current main agents' exploitability after the last round
        for pid, row in data["history"][-1]["learners"].items():
            if row.get("exploitability") is not None:
                expl[pid] = row["exploitability"]
    ratings = {row.player_id: row.rating.ordinal for row in data["leaderboard"]}
    if all(c in expl for c in candidates):
        best = min(candidates, key=lambda c: (expl[c], -ratings.get(c, 0.0)))
    else:
        best = max(candidates, key=lambda c: ratings.get(c, float("-inf")))
    policy = data["players"][best].policy if best in data["players"] else data["snapshot_records"][best].snapshot.policy
    return {"id": best, "policy": policy, "exploitability": expl.get(best), "rating": ratings.get(best)}


def exploitability_curve(data: dict[str, Any]) -> dict[str, list[tuple[int, float]]]:
    """Per learner: (round, exploitability after that round), starting with the initial policy at round 0."""
    start = data["exploitability"].get("initial")
    curves: dict[str, list[tuple[int, float]]] = {}
    for h in data["history"]:
        for pid, row in h["learners"].items():
            if row.get("exploitability") is None:
                continue
            curve = curves.setdefault(pid, [(0, start)] if start is not None else [])
            curve.append((h["round"] + 1, row["exploitability"]))
    return curves


# ---------------------------------------------------------------------------- terminal: agora league status
def status_renderables(state: LeagueState, directory: Path, payoff: bool = True) -> list:
    data = league_data(state)
    cfg = data["config"]
    budget = []
    if cfg.get("rounds"):
        budget.append(f"{cfg['rounds']} rounds")
    if cfg.get("minutes"):
        budget.append(f"{cfg['minutes']:g} minutes")
    state_word = "finished" if data["finished"] else "running or stopped (resume with `agora league resume`)"
    lines = [f"[bold]{directory}[/]: {data['arena']}, {data['round']} rounds done of {' or '.join(budget) or '?'}, "
             f"{data['matches']} matches, {len(data['parents'])} snapshots, {data['elapsed_s'] / 60:.1f} minutes; {state_word}"]
    curves = exploitability_curve(data)
    for pid, curve in curves.items():
        lines.append(f"exploitability of {pid}: {curve[0][1]:.3f} at the start -> {curve[-1][1]:.3f} after round "
                     f"{curve[-1][0]} (uniform random: {UNIFORM:.3f})")
    out: list = [Panel("\n".join(lines), title="league", expand=False), leaderboard_table(data)]
    if payoff and data["members"]:
        out.append(payoff_table(data))
    return out


def leaderboard_table(data: dict[str, Any]) -> Table:
    kuhn = bool(data["exploitability"])
    table = Table(title=f"Leaderboard ({data['arena']}, openskill ordinal = mu - 3 sigma)")
    for col in ("#", "member", "role", "ordinal", "mu", "sigma", "games", "score") + (("exploitability",) if kuhn else ()):
        table.add_column(col, justify="left" if col in ("member", "role") else "right")
    current = exploitability_now(data)
    for i, row in enumerate(data["leaderboard"], 1):
        e = current.get(row.player_id)
        cells = [str(i), row.player_id, row.role, f"{row.rating.ordinal:.2f}", f"{row.rating.mu:.2f}",
                 f"{row.rating.sigma:.2f}", str(row.games), f"{row.score:.2f}"]
        if kuhn:
            cells.append("-" if e is None else f"{e:.3f}")
        table.add_row(*cells, style="bold" if row.role == "main_agent" else None)
    return table


def exploitability_now(data: dict[str, Any]) -> dict[str, float]:
    """Snapshots' exploitability, and each learner's after its last round."""
    out = {k: v for k, v in data["exploitability"].items() if k != "initial"}
    for pid, curve in exploitability_curve(data).items():
        out[pid] = curve[-1][1]
    return out


def payoff_table(data: dict[str, Any]) -> Table:
    members = shown_members(data)
    idx = [data["members"].index(m) for m in members]
    table = Table(title="Payoff: row's win rate against column (games in brackets; - never met)")
    table.add_column("")
    for m in members:
        table.add_column(m, justify="right")
    for i, m in zip(idx, members):
        cells = []
        for j in idx:
            g = data["games"][i, j]
            cells.append("-" if g == 0 else f"{data['win_rates'][i, j]:.2f} ({g:.0f})")
        table.add_row(m, *cells)
    return table


def shown_members(data: dict[str, Any], limit: int = MAX_TABLE_MEMBERS) -> list[str]:
    learners = [m for m in data["members"] if data["roles"].get(m) != "snapshot"]
    snaps = [m for m in data["members"] if data["roles"].get(m) == "snapshot"]
    return learners + snaps[-max(0, limit - len(learners)):] if limit > len(learners) else learners


# ---------------------------------------------------------------------------- files: payoff.csv and report.html
def write_payoff_csv(directory: str | Path) -> Path:
    """The payoff table as CSV: one row per ordered pair that met (home, away, wins, draws, losses, games, win_rate)."""
    directory = Path(directory)
    with LeagueState(directory) as state:
        data = league_data(state)
        payoff = state.payoff(data["config"].get("payoff_decay", 1.0))
    lines = ["home,away,wins,draws,losses,games,win_rate"]
    for a in data["members"]:
        for b in data["members"]:
            c = payoff.counts(a, b)
            if c["games"]:
                lines.append(f"{a},{b},{c['wins']:g},{c['draws']:g},{c['losses']:g},{c['games']:g},{payoff.win_rate(a, b):.4f}")
    path = directory / "payoff.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def write_report(directory: str | Path, out: str | Path | None = None) -> Path:
    directory = Path(directory)
    with LeagueState(directory) as state:
        data = league_data(state)
        ratings = rating_histories(state, data["arena"])
    path = Path(out) if out else directory / "report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(data, ratings, directory))
    return path


def rating_histories(state: LeagueState, arena: str) -> dict[str, list[tuple[int, float]]]:
    """Per member: (match number in the league, ordinal after that match)."""
    order = {m.match_id: i + 1 for i, m in enumerate(state.matches(arena))}
    out: dict[str, list[tuple[int, float]]] = {}
    for rec in state.rating_history(arena):
        out.setdefault(rec.player_id, []).append((order.get(rec.match_id, 0), rec.rating.ordinal))
    return out


def png_uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def plot_exploitability(data: dict[str, Any]) -> str | None:
    curves = exploitability_curve(data)
    if not curves:
        return None
    fig = new_figure(8, 3.8)
    ax = fig.subplots()
    for pid, curve in curves.items():
        role = data["roles"].get(pid, "main_agent")
        ax.plot([r for r, _ in curve], [v for _, v in curve], marker=".", label=pid, color=None if role == "main_agent" else ROLE_COLOURS[role],
                linewidth=2.2 if role == "main_agent" else 1.2)
    created = {}
    for h in data["history"]:
        for s in h.get("snapshots", []):
            created[s] = h["round"] + 1
    snaps = [(created[s], v) for s, v in data["exploitability"].items() if s in created]
    if snaps:
        ax.scatter([r for r, _ in snaps], [v for _, v in snaps], color=ROLE_COLOURS["snapshot"], s=18, zorder=3, label="snapshots")
    ax.axhline(UNIFORM, color="black", linestyle=":", linewidth=1, label=f"uniform random ({UNIFORM:.3f})")
    ax.axhline(TARGET, color="green", linestyle="--", linewidth=1, label=f"target ({TARGET:.2f})")
    ax.set_xlabel("round (0 = the initial policy)")
    ax.set_ylabel("exact exploitability")
    ax.set_ylim(0, max(0.6, max(v for c in curves.values() for _, v in c) * 1.05))
    ax.set_title("Exploitability (0 = Nash equilibrium; lower is better)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    return png_uri(fig)


def plot_payoff(data: dict[str, Any]) -> str | None:
    members = [m for i, m in enumerate(data["members"]) if data["games"][i].sum() > 0]
    if not members:
        return None
    idx = [data["members"].index(m) for m in members]
    rates = data["win_rates"][np.ix_(idx, idx)].copy()
    rates[data["games"][np.ix_(idx, idx)] == 0] = np.nan
    size = min(14, 3 + 0.45 * len(members))
    fig = new_figure(size + 1.5, size)
    ax = fig.subplots()
    im = ax.imshow(np.ma.masked_invalid(rates), cmap="RdBu", vmin=0, vmax=1)
    ax.set_xticks(range(len(members)), members, rotation=90, fontsize=7)
    ax.set_yticks(range(len(members)), members, fontsize=7)
    if len(members) <= 20:
        for i in range(len(members)):
            for j in range(len(members)):
                if not np.isnan(rates[i, j]):
                    ax.text(j, i, f"{rates[i, j]:.2f}", ha="center", va="center", fontsize=6,
                            color="white" if abs(rates[i, j] - 0.5) > 0.3 else "black")
    fig.colorbar(im, ax=ax, label="row's win rate against column", shrink=0.8)
    ax.set_facecolor("#e8e8e8")  # grey: the pair never met
    ax.set_title("Row's win rate against column", fontsize=10)
    return png_uri(fig)


def plot_ratings(data: dict[str, Any], histories: dict[str, list[tuple[int, float]]]) -> str | None:
    if not histories:
        return None
    fig = new_figure(8, 3.8)
    ax = fig.subplots()
    for pid, points in histories.items():
        role = data["roles"].get(pid, "snapshot")
        learner = role != "snapshot"
        ax.plot([m for m, _ in points], [o for _, o in points], color=ROLE_COLOURS.get(role) if not learner or role != "main_agent" else None,
                linewidth=2 if learner else 0.8, alpha=1 if learner else 0.5, label=pid if learner else None)
    ax.set_xlabel("match number")
    ax.set_ylabel("openskill ordinal (mu - 3 sigma)")
    ax.set_title("Ratings (learners bold, snapshots grey)")
    ax.grid(alpha=0.3)
    if any(data["roles"].get(p) != "snapshot" for p in histories):
        ax.legend(fontsize=8)
    return png_uri(fig)


def dominance_graph(data: dict[str, Any], min_games: int = 2, margin: float = 0.05):
    """networkx DiGraph: an edge A -> B when A's win rate against B exceeds 0.5 + margin over at least
    ``min_games`` games; the edge's ``margin`` is that win rate minus 0.5."""
    import networkx as nx

    g = nx.DiGraph()
    ratings = {row.player_id: row.rating.ordinal for row in data["leaderboard"]}
    for i, m in enumerate(data["members"]):
        if data["games"][i].sum() > 0:
            g.add_node(m, role=data["roles"].get(m, "snapshot"), order=i, rating=ratings.get(m, 0.0))
    for i, a in enumerate(data["members"]):
        for j, b in enumerate(data["members"]):
            if a != b and data["games"][i, j] >= min_games and data["win_rates"][i, j] > 0.5 + margin:
                g.add_edge(a, b, margin=float(data["win_rates"][i, j] - 0.5))
    return g


def plot_dominance(data: dict[str, Any]) -> str | None:
    import networkx as nx

    g = dominance_graph(data)
    if g.number_of_nodes() == 0:
        return None
    pos = {n: (d["order"], d["rating"]) for n, d in g.nodes(data=True)}
    fig = new_figure(9, 5)
    ax = fig.subplots()
    nx.draw_networkx_nodes(g, pos, ax=ax, node_size=260, node_color=[ROLE_COLOURS[g.nodes[n]["role"]] for n in g])
    labelled = list(g)
    if len(labelled) > 20:  # a crowded league: name the learners and the five best-rated snapshots only
        snaps = sorted((n for n in g if g.nodes[n]["role"] == "snapshot"), key=lambda n: -g.nodes[n]["rating"])
        labelled = [n for n in g if g.nodes[n]["role"] != "snapshot"] + snaps[:5]
    for n in labelled:
        ax.annotate(n, pos[n], xytext=(0, 9), textcoords="offset points", ha="center", fontsize=7)
    if g.number_of_edges():
        widths = [0.5 + 6 * d["margin"] for _, _, d in g.edges(data=True)]
        nx.draw_networkx_edges(g, pos, ax=ax, width=widths, alpha=0.5, arrowsize=10, connectionstyle="arc3,rad=0.15",
                               node_size=260)
    ax.set_xlabel("joined the league (left: early, right: late)")
    ax.set_ylabel("rating (openskill ordinal)")
    ax.tick_params(left=True, bottom=False, labelleft=True, labelbottom=False)
    ax.set_title("Who beats whom: A -> B when A wins more than 55% against B (thicker: larger margin)", fontsize=10)
    handles = [__import__("matplotlib.lines", fromlist=["Line2D"]).Line2D([], [], marker="o", linestyle="", color=c, label=r)
               for r, c in ROLE_COLOURS.items() if any(g.nodes[n]["role"] == r for n in g)]
    ax.legend(handles=handles, fontsize=8, loc="best")
    return png_uri(fig)


def nash_mixture(data: dict[str, Any]) -> list[tuple[str, float]]:
    """The Nash mixture over members of the win-rate meta-game (two-player zero-sum arenas); empty otherwise."""
    from league.ratings import nash_zero_sum

    members = [m for i, m in enumerate(data["members"]) if data["games"][i].sum() > 0]
    if len(members) < 2:
        return []
    idx = [data["members"].index(m) for m in members]
    try:
        nash = nash_zero_sum(data["win_rates"][np.ix_(idx, idx)])
    except (ValueError, ImportError):
        return []
    return sorted(((m, float(p)) for m, p in zip(members, nash.row) if p > 1e-3), key=lambda x: -x[1])


def summary_sentences(data: dict[str, Any]) -> list[str]:
    cfg = data["config"]
    out = [f"A league of {len(data['players'])} learners in <b>{html.escape(data['arena'])}</b>: "
           f"{data['round']} rounds, {data['matches']} matches, {len(data['parents'])} snapshots, "
           f"{data['elapsed_s'] / 60:.1f} minutes{' (finished)' if data['finished'] else ''}."]
    curves = exploitability_curve(data)
    for pid, curve in curves.items():
        if data["roles"].get(pid) == "main_agent":
            best = min(v for _, v in curve)
            out.append(f"The exact exploitability of <b>{pid}</b> went from {curve[0][1]:.3f} (its initial policy; "
                       f"uniform random is {UNIFORM:.3f}) to <b>{curve[-1][1]:.3f}</b> after round {curve[-1][0]} "
                       f"(best {best:.3f}; target {TARGET:.2f}).")
    if data["leaderboard"]:
        top = data["leaderboard"][0]
        out.append(f"Top rated: <b>{html.escape(top.player_id)}</b> ({top.role}, ordinal {top.rating.ordinal:.2f}, "
                   f"score {top.score:.2f} over {top.games} games).")
    roles = cfg.get("roles")
    out.append(f"Roles: {html.escape(json.dumps(roles))}; training per round: "
               f"{html.escape(json.dumps(cfg.get('train', {})))}; {cfg.get('matches_per_round')} matches per learner and round.")
    return out


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85em}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}
td:nth-child(2),th:nth-child(2),td:nth-child(3){text-align:left}img{max-width:100%}.note{color:#666;font-size:.9em}
pre{background:#f6f6f6;padding:1em;font-size:.8em;overflow:auto}"""


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render_html(data: dict[str, Any], ratings: dict[str, list[tuple[int, float]]], directory: Path) -> str:
    sections = [f"<h1>League report: {html.escape(str(directory))}</h1>",
                "<p>" + "<br>".join(summary_sentences(data)) + "</p>",
                f"<p class='note'>Written {time.strftime('%Y-%m-%d %H:%M:%S')} from {html.escape(str(directory / 'league.db'))}.</p>"]
    plots = [("Exploitability", plot_exploitability(data),
              "Exact exploitability (NashConv / 2) of each learner after every round, computed with OpenSpiel from the "
              "policy's probability of each legal answer at every information state; dots are snapshots."),
             ("Payoff", plot_payoff(data), "Win rate = (wins + 0.5 draws) / games of the row member against the column "
              "member: blue, the row wins; red, the row loses; grey, the pair never met."),
             ("Ratings", plot_ratings(data, ratings), "Openskill (Plackett-Luce) ordinal after each match, per arena."),
             ("Who beats whom", plot_dominance(data),
              "Edges point from the winner to the loser of each pair that met at least twice.")]
    for title, png, note in plots:
        if png:
            sections.append(f"<h2>{title}</h2><p class='note'>{note}</p><img alt='{title}' src='{png}'>")
    current = exploitability_now(data)
    rows = "".join(
        f"<tr><td>{i}</td><td>{html.escape(r.player_id)}</td><td>{r.role}</td><td>{r.rating.ordinal:.2f}</td>"
        f"<td>{r.rating.mu:.2f}</td><td>{r.rating.sigma:.2f}</td><td>{r.games}</td><td>{r.score:.2f}</td>"
        f"<td>{_fmt(current.get(r.player_id), 3)}</td></tr>"
        for i, r in enumerate(data["leaderboard"], 1))
    sections.append("<h2>Leaderboard</h2><table><tr><th>#</th><th>member</th><th>role</th><th>ordinal</th><th>mu</th>"
                    f"<th>sigma</th><th>games</th><th>score</th><th>exploitability</th></tr>{rows}</table>")
    nash = nash_mixture(data)
    if nash:
        sections.append("<h2>Meta-game Nash mixture</h2><p class='note'>The mixture over members that no member beats "
                        "in expectation (linear program over the payoff table).</p><table><tr><th>member</th><th>weight</th></tr>"
                        + "".join(f"<tr><td>{html.escape(m)}</td><td>{p:.3f}</td></tr>" for m, p in nash) + "</table>")
    if data["history"]:
        head = "<tr><th>round</th><th>learner</th><th>opponent</th><th>branch</th><th>win rate</th><th>exploitability</th><th>seconds</th></tr>"
        body = "".join(
            f"<tr><td>{h['round']}</td><td>{html.escape(pid)}</td><td>{html.escape(row['opponent'])}</td><td>{row['branch']}</td>"
            f"<td>{_fmt(row['win_rate'], 2)}</td><td>{_fmt(row.get('exploitability'), 3)}</td><td>{h['seconds']:.1f}</td></tr>"
            for h in data["history"][-40:] for pid, row in h["learners"].items())
        sections.append(f"<h2>Rounds (latest 40)</h2><table>{head}{body}</table>")
    m = data["mlflow"]
    if m:
        sections.append(f"<h2>MLflow</h2><p>Experiment <code>{html.escape(m['experiment'])}</code>, league run "
                        f"<code>{m['parent']}</code> (learners nested) at <code>{html.escape(m['uri'])}</code>. "
                        f"Browse with <code>mlflow ui --backend-store-uri {html.escape(m['uri'])}</code>.</p>")
    sections.append(f"<h2>Config</h2><pre>{html.escape(json.dumps(data['config'], indent=2))}</pre>")
    return f"<!doctype html><html><head><meta charset='utf-8'><title>League report</title><style>{CSS}</style></head><body>" \
           + "\n".join(sections) + "</body></html>\n"
