"""League state in SQLite: matches written once, payoff replayed from them, immutable hashed snapshots,
everything back after reopening (and after the writer is killed)."""

import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from league.league import League, LeagueExploiter, MainAgent, MainExploiter, MatchResult, Payoff
from league.ratings import replay, update_ratings
import league.state as league_state
from league.state import LeagueState, hash_directory

ARENA = "kuhn_poker_v0"


def policy_dir(path, content=b"weights-v1"):
    path.mkdir(parents=True, exist_ok=True)
    (path / "model.safetensors").write_bytes(content)
    (path / "config.json").write_text('{"n_layer": 4}')
    (path / "sub").mkdir(exist_ok=True)
    (path / "sub" / "extra.txt").write_text("x")
    return path


def random_results(n, players, seed=0, arena=ARENA):
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        home, away = rng.choice(players, size=2, replace=False)
        score = float(rng.choice([-2, -1, 0, 1, 2]))
        out.append(MatchResult(f"m{k}", arena, (str(home), str(away)), (score, -score), seed=k))
    return out


def test_state_file_is_wal(tmp_path):
    with LeagueState(tmp_path) as state:
        assert state.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert (tmp_path / "league.db").is_file()


def test_duplicate_match_id_is_a_no_op_and_never_double_counted(tmp_path):
    with LeagueState(tmp_path) as state:
        r = MatchResult("match-1", ARENA, ("a", "b"), (1.0, -1.0), seed=5)
        ratings = update_ratings({}, r.players, r.scores)
        assert state.record_match(r) is True
        again = MatchResult("match-1", ARENA, ("a", "b"), (-1.0, 1.0), seed=5)  # a re-run with another outcome
        assert state.record_match(again) is False
        assert state.match_count() == 1 and state.matches() == [r]
        assert state.payoff().counts("a", "b") == {"wins": 1, "draws": 0, "losses": 0, "games": 1}
        assert len(state.rating_history(ARENA)) == 2
        assert state.ratings(ARENA) == ratings  # the first write's ratings


def test_ratings_follow_the_matches_and_a_failed_write_leaves_nothing(tmp_path, monkeypatch):
    results = [MatchResult(f"m{k}", ARENA, ("a", "b") if k % 2 else ("b", "a"), (1.0, -1.0) if k % 3 else (0.0, 0.0))
               for k in range(12)]
    results.append(MatchResult("self", ARENA, ("a", "a"), (1.0, -1.0)))  # no rating change
    results.append(MatchResult("coop", "signalling_v0", ("a", "b", "c"), (1.0, 1.0, 1.0)))
    with LeagueState(tmp_path) as state:
        for r in results:
            state.record_match(r)
        state.record_match(MatchResult("unrated", ARENA, ("a", "b"), (5.0, -5.0)), rate=False)
        expected = replay(results)
        assert state.ratings(ARENA) == expected[ARENA] and set(expected[ARENA]) == {"a", "b"}
        assert state.ratings("signalling_v0") == expected["signalling_v0"]  # SQLite REAL keeps every bit
        assert len(state.rating_history(ARENA, "a")) == 12
        def broken(*args):
            raise RuntimeError("rating failed")

        monkeypatch.setattr(league_state, "update_ratings", broken)
        with pytest.raises(RuntimeError, match="rating failed"):
            state.record_match(MatchResult("late", ARENA, ("a", "b"), (1.0, -1.0)))
        assert not state.has_match("late") and state.match_count() == 15  # rolled back with its ratings
        monkeypatch.undo()
        assert state.record_match(MatchResult("late", ARENA, ("a", "b"), (1.0, -1.0))) is True  # the id is still free


@pytest.mark.parametrize("decay", [1.0, 0.9])
def test_payoff_rebuilt_from_db_equals_in_memory_payoff(tmp_path, decay):
    players = ["p0", "p1", "p2", "p3"]
    results = random_results(300, players, seed=1)
    results.append(MatchResult("coop", "signalling_v0", ("p0", "p1", "p2"), (1.0, 1.0, 1.0)))  # no win/loss
    memory = Payoff(decay)
    with LeagueState(tmp_path) as state:
        for r in results:
            state.record_match(r)
            if len(r.players) == 2:
                memory.add_result(r)
        rebuilt = state.payoff(decay)
    assert rebuilt == memory
    np.testing.assert_allclose(rebuilt.matrix(players), memory.matrix(players))
    assert not np.allclose(memory.matrix(players), 0.5)  # the comparison is not vacuous
    assert rebuilt != Payoff(decay)


def test_everything_survives_reopening(tmp_path):
    rng = np.random.default_rng(0)
    main = MainAgent("main", ARENA, str(policy_dir(tmp_path / "work" / "main")), step=7)
    exploiter = MainExploiter("exp", ARENA, str(policy_dir(tmp_path / "work" / "exp", b"e")), step=3)
    with LeagueState(tmp_path / "league") as state:
        state.save_player(main, progress={"optimizer": "work/main/opt.pt", "loss": 0.25})
        state.save_player(exploiter)
        snap = main.checkpoint(rng)
        record = state.take_snapshot(snap, main)
        for r in random_results(20, ["main", "exp", snap.id]):
            state.record_match(r)
        state.set_progress("exp", episodes=128)
        state.set_meta("config", {"arena": ARENA, "seed": 3})
        memory = League(payoff=state.payoff())
        for p in (main, exploiter, snap):
            memory.add(p)
        board = state.leaderboard(ARENA)
    with LeagueState(tmp_path / "league") as state:
        assert state.players() == [main, exploiter]
        assert state.snapshots() == [record]
        assert state.progress("main") == {"loss": 0.25, "optimizer": "work/main/opt.pt"}
        assert state.progress("exp") == {"episodes": 128}
        assert state.meta("config") == {"arena": ARENA, "seed": 3} and state.meta("nothing", 1) == 1
        assert state.match_count(ARENA) == 20 and state.leaderboard(ARENA) == board
        league = state.load_league()
        assert list(league.players) == ["main", "exp", "main@7"]
        assert league.players == memory.players and league.payoff == memory.payoff
        assert league.snapshot_ids(ARENA, parent="main") == ["main@7"]


def test_hash_directory_is_deterministic_and_sensitive(tmp_path):
    a = policy_dir(tmp_path / "a")
    b = policy_dir(tmp_path / "b")
    assert hash_directory(a) == hash_directory(b)
    os.utime(b / "config.json", (1, 1))  # timestamps do not matter
    assert hash_directory(a) == hash_directory(b)
    (b / "model.safetensors").write_bytes(b"weights-v2")
    assert hash_directory(a) != hash_directory(b)
    c = policy_dir(tmp_path / "c")
    (c / "sub" / "extra.txt").rename(c / "sub" / "renamed.txt")
    assert hash_directory(a) != hash_directory(c)
    with pytest.raises(ValueError, match="not a directory"):
        hash_directory(tmp_path / "nope")


def test_snapshots_are_copied_immutable_and_verified(tmp_path):
    rng = np.random.default_rng(0)
    source = policy_dir(tmp_path / "work" / "lx")
    lx = LeagueExploiter("lx", ARENA, str(source), step=5)
    with LeagueState(tmp_path / "league") as state:
        with pytest.raises(ValueError, match="parent 'lx' is not a saved player"):
            state.take_snapshot(lx.checkpoint(rng))
        lx.checkpoint_step = 0
        snap = lx.checkpoint(rng)
        record = state.take_snapshot(snap, lx)
        copy = tmp_path / "league" / "snapshots" / "lx@5"
        assert copy.is_dir() and record.sha256 == hash_directory(source) == hash_directory(copy)
        assert state.players()[0].checkpoint_step == 5  # the parent's new state, in the same transaction
        assert state.take_snapshot(snap, lx) == record  # the same files again: a no-op
        (source / "model.safetensors").write_bytes(b"trained further")
        with pytest.raises(ValueError, match="snapshot lx@5 is already recorded.*immutable"):
            state.take_snapshot(snap, lx)
        assert state.verify_snapshots() == {}
        (copy / "model.safetensors").write_bytes(b"tampered")
        assert "differs from the recorded" in state.verify_snapshots()["lx@5"]
        shutil.rmtree(copy)
        assert state.verify_snapshots()["lx@5"].startswith("missing")


def test_snapshot_left_half_done_by_a_crash_is_redone(tmp_path):
    rng = np.random.default_rng(0)
    main = MainAgent("main", ARENA, str(policy_dir(tmp_path / "work")), step=2)
    with LeagueState(tmp_path / "league") as state:
        state.save_player(main)
        stale = tmp_path / "league" / "snapshots" / "main@2"
        stale.mkdir(parents=True)
        (stale / "partial").write_text("half a copy")
        (tmp_path / "league" / "snapshots" / "main@2.tmp").mkdir()
        record = state.take_snapshot(main.checkpoint(rng), main)
        assert not (stale / "partial").exists() and not (tmp_path / "league" / "snapshots" / "main@2.tmp").exists()
        assert record.sha256 == hash_directory(tmp_path / "work") and state.verify_snapshots() == {}


def test_leaderboard_sorts_by_ordinal_and_counts_scores(tmp_path):
    with LeagueState(tmp_path) as state:
        for p in ("strong", "weak"):
            state.save_player(MainAgent(p, ARENA, f"p/{p}"))
        state.save_player(MainAgent("elsewhere", "tictactoe_v0", "p/e"))
        outcomes = [(1.0, -1.0)] * 8 + [(0.0, 0.0)] * 2
        for k, scores in enumerate(outcomes):
            r = MatchResult(f"m{k}", ARENA, ("weak", "strong")[:: -1 if k % 2 else 1], scores if k % 2 else scores[::-1])
            state.record_match(r)
        board = state.leaderboard(ARENA)
        assert [row.player_id for row in board] == ["strong", "weak"]
        assert board[0].games == 10 and board[0].score == pytest.approx(0.9)
        assert board[1].score == pytest.approx(0.1) and board[0].rating.mu > 25 > board[1].rating.mu
        assert len(state.rating_history(ARENA, "strong")) == 10
        state.record_match(MatchResult("self", ARENA, ("strong", "strong"), (1.0, -1.0)))
        board = {row.player_id: row for row in state.leaderboard(ARENA)}
        assert board["strong"].games == 11 and board["strong"].score == pytest.approx(9.5 / 11)  # self-play: one game, half a point


WRITER = """
import sys
from league.league import MatchResult
from league.state import LeagueState
state = LeagueState(sys.argv[1])
k = 0
while True:
    r = MatchResult(f"m{k}", "kuhn_poker_v0", ("a", "b"), (1.0, -1.0) if k % 3 else (-1.0, 1.0), seed=k)
    state.record_match(r)
    k += 1
"""


def test_writer_killed_mid_stream_leaves_whole_matches(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], env=env)
    try:
        deadline = time.time() + 20
        while time.time() < deadline:
            time.sleep(0.2)
            if (tmp_path / "league.db").exists():
                with LeagueState(tmp_path) as peek:
                    if peek.match_count() >= 30:
                        break
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    with LeagueState(tmp_path) as state:
        assert state.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        n = state.match_count()
        assert n >= 30
        seqs = [s for (s,) in state.conn.execute("SELECT seq FROM matches ORDER BY seq")]
        assert seqs == list(range(1, n + 1))
        per_match = dict(state.conn.execute("SELECT match_id, COUNT(*) FROM ratings GROUP BY match_id"))
        assert per_match == {f"m{k}": 2 for k in range(n)}  # every match with its ratings, none without
        assert state.payoff().games("a", "b") == n
        assert state.record_match(MatchResult(f"m{n - 1}", ARENA, ("a", "b"), (0.0, 0.0))) is False
