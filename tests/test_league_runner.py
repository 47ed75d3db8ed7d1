"""The league runner end to end: a tiny league runs, is tracked in MLflow, reports, and survives SIGKILL.

One reference league (tiny GPTs on Kuhn poker, a few rounds, every role) is run once per module, in
process; the tests read its folder. The SIGKILL test runs the same config in a subprocess, kills it at
random moments, resumes, and must end with exactly the reference's matches and snapshots.
"""

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from league.cli import main
from league.report import dominance_graph, league_data
from league.runner import LeagueConfig, LeagueRunner
from league.state import LeagueState, hash_directory

ROOT = Path(__file__).resolve().parents[1]
CONFIG = {
    "arena": "kuhn_poker_v0",
    "roles": {"main_agents": 1, "main_exploiters": 1, "league_exploiters": 1},
    "initial_policy": {"gpt": {"n_layer": 1, "n_embd": 16, "n_head": 2, "block_size": 512}, "seed": 3},
    "rounds": 3,
    "matches_per_round": 4,
    "train": {"steps": 2, "batch_size": 2, "group_size": 2},
    "snapshot": {"min_steps": 1, "max_steps": 3},
    "threads": 1,
    "seed": 7,
    "tracking": {"enabled": False},
}


def write_config(path: Path, **changes) -> Path:
    cfg = {**CONFIG, **changes}
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory, mlflow_template_db):
    """The reference league, tracked in its own MLflow store."""
    tmp = tmp_path_factory.mktemp("league")
    db = tmp / "mlflow.db"
    shutil.copyfile(mlflow_template_db, db)
    uri = f"sqlite:///{db}"
    from mlflow import MlflowClient

    MlflowClient(uri).create_experiment("league-test", artifact_location=(tmp / "artifacts").resolve().as_uri())
    config = write_config(tmp / "league.yaml", tracking={"enabled": True, "experiment": "league-test", "tracking_uri": uri})
    directory = tmp / "run"
    assert main(["league", "run", str(config), "--dir", str(directory), "--quiet"]) == 0
    return {"dir": directory, "uri": uri, "config": config}


def stderr(capsys) -> str:
    """What the command wrote to stderr, with rich's line wrapping undone."""
    return " ".join(capsys.readouterr().err.split())


def match_rows(directory: Path) -> list[tuple]:
    with LeagueState(directory) as state:
        return [(m.match_id, m.players, m.scores, m.seed) for m in state.matches()]


def round_records(directory: Path) -> tuple:
    """Per round: each learner's opponent, step and exploitability, and the snapshots taken; every snapshot's
    exploitability."""
    with LeagueState(directory) as state:
        history = [(h["round"], h["snapshots"], {p: (row["opponent"], row["step"], row["exploitability"])
                                                 for p, row in h["learners"].items()}) for h in state.meta("history")]
        return history, state.meta("exploitability")


def snapshot_hashes(directory: Path) -> dict[str, str]:
    with LeagueState(directory) as state:
        return {r.snapshot.id: r.sha256 for r in state.snapshots()}


# ---------------------------------------------------------------------------- the reference league
def test_tiny_league_runs_end_to_end(reference):
    d = reference["dir"]
    cfg = LeagueConfig.model_validate(CONFIG)
    learners = 3
    with LeagueState(d) as state:
        assert state.meta("round") == cfg.rounds and state.meta("finished")
        assert state.match_count() == cfg.rounds * learners * cfg.matches_per_round
        ids = {m.match_id for m in state.matches()}
        assert ids == {f"r{r:05d}-{p}-{k:03d}" for r in range(cfg.rounds) for p in ("main_0", "main_exploiter_0", "league_exploiter_0")
                       for k in range(cfg.matches_per_round)}
        players = {p.id: p for p in state.players()}
        assert set(players) == {"main_0", "main_exploiter_0", "league_exploiter_0"}
        assert all(p.step == cfg.rounds * 2 for p in players.values())  # train.steps per round
        assert players["main_0"].policy == f"players/main_0/r{cfg.rounds:05d}"
        assert (d / players["main_0"].policy / "model.safetensors").is_file()
        snaps = state.snapshots()
        assert snaps and state.verify_snapshots() == {}  # every snapshot hashes as recorded
        assert all(r.sha256 == hash_directory(d / r.snapshot.policy) for r in snaps)
        assert {r.snapshot.parent for r in snaps} == set(players)  # max_steps 3 forces one per learner
        expl = state.meta("exploitability")
        assert set(expl) == {"initial"} | {r.snapshot.id for r in snaps}
        assert all(0 <= v <= 0.5 for v in expl.values())  # a tiny GPT is somewhere between Nash (0) and the worst
        history = state.meta("history")
        assert [h["round"] for h in history] == list(range(cfg.rounds))
        assert all(0 <= h["learners"]["main_0"]["exploitability"] <= 0.5 for h in history)
        assert len(state.rating_history("kuhn_poker_v0")) > 0
    assert not any((d / "players" / "main_0").glob("*.tmp"))
    assert sorted(p.name for p in (d / "players" / "main_0").iterdir()) == [f"r{cfg.rounds:05d}"]  # old versions gone
    assert (d / "report.html").is_file() and (d / "payoff.csv").read_text().startswith("home,away,")


def test_status_prints_leaderboard_and_payoff(reference, capsys):
    assert main(["league", "status", str(reference["dir"])]) == 0
    out = capsys.readouterr().out
    assert "Leaderboard" in out and "Payoff" in out and "main_0" in out and "exploitability" in out
    assert f"{CONFIG['rounds']} rounds done" in out


def test_report_is_one_self_contained_html_file(reference, tmp_path, capsys):
    out = tmp_path / "r.html"
    assert main(["league", "report", str(reference["dir"]), "--out", str(out)]) == 0
    page = out.read_text()
    assert page.count("data:image/png;base64,") == 4  # exploitability, payoff, ratings, dominance graph
    assert "src='http" not in page and "<script" not in page
    for needle in ("Exploitability", "Payoff", "Ratings", "Who beats whom", "Leaderboard", "main_0", "exploitability of"):
        assert needle in page
    with LeagueState(reference["dir"]) as state:
        g = dominance_graph(league_data(state), min_games=1, margin=0.0)
    assert all(d["margin"] > 0 for _, _, d in g.edges(data=True))


def test_mlflow_parent_run_with_nested_learners_artifacts_and_champion(reference):
    from mlflow import MlflowClient

    client = MlflowClient(reference["uri"])
    with LeagueState(reference["dir"]) as state:
        ids = state.meta("mlflow")
    parent = client.get_run(ids["parent"])
    assert parent.info.status == "FINISHED"
    metrics = parent.data.metrics
    for key in ("league/matches_per_s", "exploitability/main_0", "rating/main_0", "win_rate/main_0"):
        assert key in metrics, key
    assert len(client.get_metric_history(parent.info.run_id, "exploitability/main_0")) == CONFIG["rounds"]
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"report.html", "payoff.csv", "snapshots", "champion"} <= artifacts
    assert set(ids["learners"]) == {"main_0", "main_exploiter_0", "league_exploiter_0"}
    for name, run_id in ids["learners"].items():
        child = client.get_run(run_id)
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id and child.info.status == "FINISHED"
        assert "loss/learner" in child.data.metrics
    champion = parent.data.tags["champion"]
    version = client.get_model_version_by_alias("agora-kuhn_poker_v0", "champion")
    assert version.tags["league_member"] == champion and version.run_id == parent.info.run_id


# ---------------------------------------------------------------------------- crash safety
def _progress(db: Path) -> tuple[int, int]:
    """(matches recorded, rounds done) read without taking any lock the league needs."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as c:
            matches = c.execute("SELECT COUNT(*) FROM matches").fetchone()[0]
            row = c.execute("SELECT value FROM meta WHERE key = 'round'").fetchone()
        return matches, int(row[0]) if row else 0
    except sqlite3.Error:
        return 0, 0


def test_sigkill_at_random_moments_then_resume_loses_and_doubles_nothing(reference, tmp_path):
    config = write_config(tmp_path / "league.yaml")
    d = tmp_path / "run"
    rng = random.Random(1234)
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    seen: dict[str, str] = {}
    kills = 0
    for attempt in range(3):
        args = ["run", str(config), "--dir", str(d)] if attempt == 0 else ["resume", str(d)]
        before = _progress(d / "league.db")
        proc = subprocess.Popen([sys.executable, "-m", "league.cli", "league", *args, "--quiet"], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 90
        while time.time() < deadline and proc.poll() is None and _progress(d / "league.db") <= before:
            time.sleep(0.05)  # wait for this attempt to make progress, then kill it a random moment later
        time.sleep(rng.uniform(0.0, 1.5))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        assert proc.returncode in (0, -signal.SIGKILL), proc.stderr.read().decode()[-2000:]
        for sid, sha in snapshot_hashes(d).items():  # a snapshot, once recorded, never changes
            assert seen.setdefault(sid, sha) == sha
    assert kills >= 2
    assert main(["league", "resume", str(d), "--quiet"]) == 0
    with LeagueState(d) as state:
        assert state.verify_snapshots() == {}
        assert state.meta("round") == CONFIG["rounds"]
        ratings = [(r.player_id, r.match_id) for r in state.rating_history("kuhn_poker_v0")]
        assert len(ratings) == len(set(ratings))
    for sid, sha in snapshot_hashes(d).items():
        assert seen.get(sid, sha) == sha
    # exactly the uninterrupted reference league: every match once, with the same result; the same snapshots
    assert match_rows(d) and sorted(match_rows(d)) == sorted(match_rows(reference["dir"]))
    assert snapshot_hashes(d) == snapshot_hashes(reference["dir"])
    assert round_records(d) == round_records(reference["dir"])


# ---------------------------------------------------------------------------- errors
@pytest.mark.parametrize("change,needle", [
    ({"rounds": None}, "give rounds, minutes, or both"),
    ({"arena": "kuhn_poker"}, "unknown arena"),
    ({"colour": "red"}, "colour: unknown key"),
    ({"train": {"arena": "tictactoe_v0"}}, "set by the league itself"),
    ({"train": {"lr": -1}}, "train: lr"),
    ({"initial_policy": {"path": "nowhere", "gpt": {}}}, "exactly one of path"),
    ({"initial_policy": {"path": "nowhere"}}, "not a saved policy folder"),
    ({"roles": "round_robin"}, "roles"),
    ({"roles": "best_response", "arena": "tictactoe_v0"}, "roles: best_response needs exact best responses"),
    ({"roles": {"matchmaking": "best_response"}}, "best_response needs main_exploiters >= 1"),
    ({"params": {"no_such_param": 1}}, "params"),
])
def test_config_errors_exit_2_naming_the_key(tmp_path, capsys, change, needle):
    config = write_config(tmp_path / "bad.yaml", **change)
    if change.get("rounds", 1) is None:
        cfg = yaml.safe_load(config.read_text())
        del cfg["rounds"]
        config.write_text(yaml.safe_dump(cfg))
    assert main(["league", "run", str(config), "--dir", str(tmp_path / "run")]) == 2
    assert needle in stderr(capsys)
    assert not (tmp_path / "run").exists()


def test_folder_errors_exit_2(reference, tmp_path, capsys):
    config = write_config(tmp_path / "ok.yaml")
    assert main(["league", "resume", str(tmp_path / "missing")]) == 2
    assert "no such league folder" in stderr(capsys)
    assert main(["league", "status", str(tmp_path)]) == 2
    assert "not a league folder" in stderr(capsys)
    assert main(["league", "report", str(tmp_path)]) == 2
    assert main(["league", "run", str(config), "--dir", str(reference["dir"])]) == 2
    assert "already holds a league" in stderr(capsys)
    assert main(["league", "run", str(tmp_path / "nope.yaml"), "--dir", str(tmp_path / "x")]) == 2
    assert "config file not found" in stderr(capsys)
    assert main(["league", "resume", str(reference["dir"]), "--rounds", "0"]) == 2


def test_resume_of_a_finished_league_extends_it(reference, tmp_path):
    d = tmp_path / "run"
    shutil.copytree(reference["dir"], d)
    with LeagueState(d) as state:
        cfg = state.meta("config")
        cfg["tracking"]["enabled"] = False  # the copy logs nowhere
        state.set_meta("config", cfg)
        before = state.match_count()
    LeagueRunner(d, progress=False).run()  # nothing left to do: no new matches
    with LeagueState(d) as state:
        assert state.match_count() == before
    assert main(["league", "resume", str(d), "--rounds", str(CONFIG["rounds"] + 1), "--quiet"]) == 0
    with LeagueState(d) as state:
        assert state.meta("round") == CONFIG["rounds"] + 1
        assert state.match_count() == before + 3 * CONFIG["matches_per_round"]


def test_best_response_league_trains_the_main_agent_against_its_exact_best_response(tmp_path):
    """``roles: best_response``: each round the main exploiter is the exact best response to the main agent as
    the round starts (a tabular policy, never trained), and the main agent trains against it; also on resume."""
    from league.exploitability import action_probs, best_response
    from marl.policy import load_policy

    config = write_config(tmp_path / "br.yaml", roles="best_response", rounds=1)  # snapshots every round: no resets
    d = tmp_path / "run"
    assert main(["league", "run", str(config), "--dir", str(d), "--quiet"]) == 0

    def table_of(player: str) -> tuple[dict, dict]:
        with LeagueState(d) as state:
            policy = next(p.policy for p in state.players() if p.id == player)
        return load_policy(str(d / policy), "kuhn_poker_v0").table if player == "main_exploiter_0" else \
            best_response(action_probs(load_policy(str(d / policy), "kuhn_poker_v0")))

    assert table_of("main_exploiter_0") == best_response(action_probs(load_policy(str(d / "initial"), "kuhn_poker_v0")))
    after_round_0 = table_of("main_0")
    assert main(["league", "resume", str(d), "--rounds", "2", "--quiet"]) == 0
    assert table_of("main_exploiter_0") == after_round_0
    with LeagueState(d) as state:
        rows = [h["learners"] for h in state.meta("history")]
        steps = {p.id: p.step for p in state.players()}
        frozen = [rec.snapshot for rec in state.snapshots() if rec.snapshot.parent == "main_exploiter_0"]
    assert len(frozen) == 2 and not any(snap.reset for snap in frozen)
    assert [r["main_0"]["opponent"] for r in rows] == ["main_exploiter_0"] * 2
    assert {r["main_0"]["branch"] for r in rows} == {"best_response"}
    assert steps == {"main_0": 4, "main_exploiter_0": 4}  # the exploiter's steps pace its snapshots, untrained


# ---------------------------------------------------------------------------- Ray (slow), and learning
@pytest.mark.slow
def test_ray_executor_plays_the_same_matches_as_local(tmp_path):
    pytest.importorskip("ray")
    cfg = {**CONFIG, "roles": "self_play", "rounds": 2}
    for kind in ("local", "ray"):
        assert main(["league", "run", str(write_config(tmp_path / f"{kind}.yaml", **cfg, executor=kind, num_workers=2)),
                     "--dir", str(tmp_path / kind), "--quiet"]) == 0
    assert match_rows(tmp_path / "local") == match_rows(tmp_path / "ray")
    assert snapshot_hashes(tmp_path / "local") == snapshot_hashes(tmp_path / "ray")


def test_quick_kuhn_league_brings_the_main_agents_exploitability_down(tmp_path):
    """configs/league_kuhn.yaml (the main agent against its exact best response) for 32 rounds, about 2 minutes:
    its exact exploitability falls clearly below the warm start's, and far below 1/3, the least a policy blind to
    its own card can have."""
    cfg = yaml.safe_load((ROOT / "configs" / "league_kuhn.yaml").read_text())
    cfg.update(rounds=32, minutes=None, tracking={"enabled": False})
    assert main(["league", "run", str(write_config(tmp_path / "kuhn.yaml", **cfg)), "--dir", str(tmp_path / "run"), "--quiet"]) == 0
    with LeagueState(tmp_path / "run") as state:
        start = state.meta("exploitability")["initial"]
        final = [h["learners"]["main_0"]["exploitability"] for h in state.meta("history")]
    late = sum(final[-8:]) / 8
    # measured: 0.193 at the start, the last 8 rounds 0.114 to 0.169 (mean 0.150), the best 0.114
    assert start < 11 / 24 - 0.1 and late < start - 0.03 and min(final) < start - 0.06, (start, final)
