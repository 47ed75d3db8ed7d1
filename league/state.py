"""Durable league state: one SQLite file and a folder of immutable snapshots, from which a league resumes.

A league folder holds ``league.db`` (players, snapshots, matches, ratings history, learner progress)
and ``snapshots/<id>/`` (frozen policy files). The rules that make it safe to kill at any moment:

- A match result is written once, in one transaction, under its unique match id, together with the
  rating updates it caused (computed inside that transaction from the latest ratings). Writing the same id again changes nothing and returns False: a re-run
  match can never be counted twice (the first write wins).
- The payoff table is never stored: :meth:`LeagueState.payoff` replays the matches table, so it is
  always what the durable results say.
- A snapshot is copied into the league folder (into a temporary folder, then renamed), hashed, and
  recorded with its hash in the same transaction as its parent's new state. Registering an existing
  snapshot id again is a no-op when the files hash the same and an error when they do not;
  :meth:`LeagueState.verify_snapshots` re-hashes every snapshot on disk.

SQLite runs in WAL mode (readers such as ``league status`` never block the writer) with
``synchronous=NORMAL``: a committed transaction survives the process being killed; only an operating
system crash may lose the last few commits, never corrupt the file.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from league.league import League, MatchResult, Payoff, Player, Snapshot, player_from_dict
from league.ratings import Rating, new_rating, update_ratings

DB_NAME = "league.db"
SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS players (
    id TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    arena TEXT NOT NULL,
    policy TEXT NOT NULL,
    data TEXT NOT NULL,             -- every field of the player as JSON (Player.to_dict)
    joined INTEGER NOT NULL,        -- order of joining the league, shared with snapshots
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshots (
    id TEXT PRIMARY KEY,
    player_id TEXT NOT NULL REFERENCES players(id),
    arena TEXT NOT NULL,
    step INTEGER NOT NULL,
    path TEXT NOT NULL,             -- relative to the league folder
    source TEXT NOT NULL,
    reset INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    joined INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS matches (
    match_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL UNIQUE,    -- the order results were written: the payoff table replays it
    arena TEXT NOT NULL,
    players TEXT NOT NULL,          -- JSON list, one player id per seat
    scores TEXT NOT NULL,           -- JSON list, one return per seat
    outcome TEXT,                   -- seat 0's win/draw/loss in two-seat matches, else NULL
    seed INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS ratings (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    arena TEXT NOT NULL,
    player_id TEXT NOT NULL,
    match_id TEXT NOT NULL REFERENCES matches(match_id),
    mu REAL NOT NULL,
    sigma REAL NOT NULL,
    ordinal REAL NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS ratings_by_player ON ratings (arena, player_id, seq);
CREATE TABLE IF NOT EXISTS progress (
    player_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,            -- JSON
    updated REAL NOT NULL,
    PRIMARY KEY (player_id, key)
);
"""
_NEXT_JOINED = "(SELECT COALESCE(MAX(j), 0) + 1 FROM (SELECT MAX(joined) AS j FROM players " \
               "UNION ALL SELECT MAX(joined) FROM snapshots))"


def hash_directory(path: str | Path) -> str:
    """SHA-256 over every file under ``path``: relative POSIX paths in sorted order, sizes and contents.
    Independent of timestamps, permissions and the folder's own location."""
    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"cannot hash {root}: not a directory")
    digest = hashlib.sha256()
    for file in sorted((p for p in root.rglob("*") if p.is_file()), key=lambda p: p.relative_to(root).as_posix()):
        name = file.relative_to(root).as_posix().encode()
        digest.update(len(name).to_bytes(8, "little") + name + file.stat().st_size.to_bytes(8, "little"))
        with file.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class SnapshotRecord:
    """A snapshot as stored: the league's :class:`Snapshot` plus its files' hash and creation time."""

    snapshot: Snapshot
    sha256: str
    created: float


@dataclass(frozen=True)
class RatingRecord:
    arena: str
    player_id: str
    match_id: str
    rating: Rating
    created: float


@dataclass(frozen=True)
class LeaderboardRow:
    player_id: str
    role: str  # main_agent, main_exploiter, league_exploiter or snapshot
    rating: Rating
    games: int  # two-seat matches played
    score: float  # (wins + 0.5 draws) / games over those matches; 0.5 when none


class LeagueState:
    """A league folder's durable state. Open it with ``LeagueState(folder)`` (created if missing); use it
    as a context manager or call :meth:`close`."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / DB_NAME
        self.conn = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)  # transactions are explicit
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        with self._transaction():
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    self.conn.execute(statement)
            row = self.conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                self.conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) != SCHEMA_VERSION:
                raise ValueError(f"{self.path}: league state schema version {row[0]}, this code reads {SCHEMA_VERSION}")

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> LeagueState:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (taken at once, so two writers never interleave); rolled back on error."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # ------------------------------------------------------------------ meta (e.g. the league's config)
    def set_meta(self, key: str, value: Any) -> None:
        with self._transaction() as c:
            c.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                      (key, json.dumps(value)))

    def meta(self, key: str, default: Any = None) -> Any:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    # ------------------------------------------------------------------ players and learner progress
    def save_player(self, player: Player, progress: Mapping[str, Any] | None = None) -> None:
        """Insert or update a learning player, and with it (same transaction) any learner progress values."""
        with self._transaction() as c:
            self._upsert_player(c, player)
            self._set_progress(c, player.id, progress or {})

    def _upsert_player(self, c: sqlite3.Connection, player: Player) -> None:
        c.execute(f"INSERT INTO players (id, role, arena, policy, data, joined, updated) "
                  f"VALUES (?, ?, ?, ?, ?, {_NEXT_JOINED}, ?) "
                  "ON CONFLICT(id) DO UPDATE SET role = excluded.role, arena = excluded.arena, "
                  "policy = excluded.policy, data = excluded.data, updated = excluded.updated",
                  (player.id, player.role, player.arena, player.policy, json.dumps(player.to_dict()), time.time()))

    def _set_progress(self, c: sqlite3.Connection, player_id: str, values: Mapping[str, Any]) -> None:
        now = time.time()
        for key, value in values.items():
            c.execute("INSERT INTO progress VALUES (?, ?, ?, ?) ON CONFLICT(player_id, key) "
                      "DO UPDATE SET value = excluded.value, updated = excluded.updated",
                      (player_id, key, json.dumps(value), now))

    def set_progress(self, player_id: str, **values: Any) -> None:
        """Learner progress as JSON values per player (optimizer state file, last step's metrics, ...)."""
        with self._transaction() as c:
            self._set_progress(c, player_id, values)

    def progress(self, player_id: str) -> dict[str, Any]:
        rows = self.conn.execute("SELECT key, value FROM progress WHERE player_id = ? ORDER BY key", (player_id,))
        return {k: json.loads(v) for k, v in rows}

    def players(self) -> list[Player]:
        """Learning players in joining order."""
        rows = self.conn.execute("SELECT data FROM players ORDER BY joined")
        return [player_from_dict(json.loads(d)) for (d,) in rows]

    # ------------------------------------------------------------------ snapshots
    def take_snapshot(self, snapshot: Snapshot, parent: Player | None = None) -> SnapshotRecord:
        """Copy ``snapshot.source`` (a policy folder; relative paths are inside the league folder) to
        ``snapshot.policy`` in the league folder, hash it and record it, with the parent's new state
        (its reset and checkpoint step) in the same transaction.

        Taking a recorded snapshot again returns the record when the source hashes the same and raises
        ValueError when it does not: a snapshot never changes.
        """
        dest = self._resolve(snapshot.policy)
        if self.directory.resolve() not in dest.resolve().parents:
            raise ValueError(f"snapshot {snapshot.id}: its path {snapshot.policy!r} is not inside the league folder")
        source = self._resolve(snapshot.source)
        if not source.is_dir():
            raise ValueError(f"snapshot {snapshot.id}: its source {source} is not a policy folder")
        if parent is not None and parent.id != snapshot.parent:
            raise ValueError(f"snapshot {snapshot.id} was taken from {snapshot.parent!r}, not from {parent.id!r}")
        if parent is None and self.conn.execute("SELECT 1 FROM players WHERE id = ?", (snapshot.parent,)).fetchone() is None:
            raise ValueError(f"snapshot {snapshot.id}: its parent {snapshot.parent!r} is not a saved player "
                             "(save it first, or pass it as parent)")
        existing = self.snapshot(snapshot.id)
        if existing is not None:
            sha = hash_directory(source)
            if sha != existing.sha256:
                raise ValueError(f"snapshot {snapshot.id} is already recorded with sha256 {existing.sha256[:12]}..., "
                                 f"but {source} hashes to {sha[:12]}...: snapshots are immutable")
            return existing
        if dest.exists():  # left by an attempt that died before its record was committed
            shutil.rmtree(dest)
        tmp = dest.with_name(dest.name + ".tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        shutil.copytree(source, tmp)
        tmp.rename(dest)
        sha = hash_directory(dest)
        created = time.time()
        with self._transaction() as c:
            if parent is not None:
                self._upsert_player(c, parent)
            c.execute(f"INSERT INTO snapshots (id, player_id, arena, step, path, source, reset, sha256, joined, created) "
                      f"VALUES (?, ?, ?, ?, ?, ?, ?, ?, {_NEXT_JOINED}, ?)",
                      (snapshot.id, snapshot.parent, snapshot.arena, snapshot.step, snapshot.policy, snapshot.source,
                       int(snapshot.reset), sha, created))
        return SnapshotRecord(snapshot, sha, created)

    def _resolve(self, path: str) -> Path:
        p = Path(path)
        return p if p.is_absolute() else self.directory / p

    def snapshot(self, snapshot_id: str) -> SnapshotRecord | None:
        row = self.conn.execute(f"SELECT {_SNAPSHOT_COLUMNS} FROM snapshots WHERE id = ?", (snapshot_id,)).fetchone()
        return None if row is None else _snapshot_record(row)

    def snapshots(self, arena: str | None = None) -> list[SnapshotRecord]:
        """Snapshots in the order they were taken (of one arena, or all)."""
        rows = self.conn.execute(f"SELECT {_SNAPSHOT_COLUMNS} FROM snapshots WHERE ? IS NULL OR arena = ? "
                                 "ORDER BY joined", (arena, arena))
        return [_snapshot_record(r) for r in rows]

    def verify_snapshots(self) -> dict[str, str]:
        """Re-hash every snapshot on disk: {snapshot id: what is wrong} for those that changed or vanished
        (empty when all is well)."""
        problems = {}
        for record in self.snapshots():
            path = self._resolve(record.snapshot.policy)
            if not path.is_dir():
                problems[record.snapshot.id] = f"missing: {path}"
                continue
            sha = hash_directory(path)
            if sha != record.sha256:
                problems[record.snapshot.id] = f"sha256 {sha} differs from the recorded {record.sha256}"
        return problems

    # ------------------------------------------------------------------ matches and ratings
    def record_match(self, result: MatchResult, rate: bool = True) -> bool:
        """Write a match result in one transaction under ``result.match_id``; with ``rate``, also the seats'
        new openskill ratings in the arena (from their latest ones, read inside the same transaction).

        Returns False, writing nothing, when that match id is already recorded (the first write wins).
        """
        outcome = result.outcome if len(result.players) == 2 else None
        now = time.time()
        with self._transaction() as c:
            cur = c.execute("INSERT INTO matches (match_id, seq, arena, players, scores, outcome, seed, created) "
                            "VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM matches), ?, ?, ?, ?, ?, ?) "
                            "ON CONFLICT(match_id) DO NOTHING",
                            (result.match_id, result.arena, json.dumps(list(result.players)),
                             json.dumps([float(s) for s in result.scores]), outcome, int(result.seed), now))
            if cur.rowcount == 0:
                return False
            if rate:
                current = self._latest_ratings(c, result.arena, result.players)
                for player_id, r in update_ratings(current, result.players, result.scores).items():
                    c.execute("INSERT INTO ratings (arena, player_id, match_id, mu, sigma, ordinal, created) "
                              "VALUES (?, ?, ?, ?, ?, ?, ?)",
                              (result.arena, player_id, result.match_id, r.mu, r.sigma, r.ordinal, now))
        return True

    @staticmethod
    def _latest_ratings(c: sqlite3.Connection, arena: str, players: Sequence[str] | None = None) -> dict[str, Rating]:
        if players is None:
            rows = c.execute("SELECT player_id, mu, sigma FROM ratings WHERE seq IN "
                             "(SELECT MAX(seq) FROM ratings WHERE arena = ? GROUP BY player_id)", (arena,))
            return {p: Rating(mu, sigma) for p, mu, sigma in rows}
        out = {}  # a match's seats: one indexed lookup each, so writing a match stays cheap as history grows
        for p in set(players):
            row = c.execute("SELECT mu, sigma FROM ratings WHERE arena = ? AND player_id = ? ORDER BY seq DESC LIMIT 1",
                            (arena, p)).fetchone()
            if row:
                out[p] = Rating(*row)
        return out

    def has_match(self, match_id: str) -> bool:
        return self.conn.execute("SELECT 1 FROM matches WHERE match_id = ?", (match_id,)).fetchone() is not None

    def matches(self, arena: str | None = None) -> list[MatchResult]:
        """Match results in the order they were written (of one arena, or all)."""
        rows = self.conn.execute("SELECT match_id, arena, players, scores, seed FROM matches "
                                 "WHERE ? IS NULL OR arena = ? ORDER BY seq", (arena, arena))
        return [MatchResult(m, a, tuple(json.loads(p)), tuple(json.loads(s)), seed) for m, a, p, s, seed in rows]

    def match_count(self, arena: str | None = None) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM matches WHERE ? IS NULL OR arena = ?", (arena, arena)).fetchone()[0]

    def _members(self) -> list[str]:
        """Ids of players and snapshots in joining order."""
        rows = self.conn.execute("SELECT id FROM (SELECT id, joined FROM players UNION ALL "
                                 "SELECT id, joined FROM snapshots) ORDER BY joined")
        return [i for (i,) in rows]

    def payoff(self, decay: float = 1.0) -> Payoff:
        """The payoff table replayed from the matches table (two-seat matches), players in joining order."""
        payoff = Payoff(decay)
        for member in self._members():
            payoff.add_player(member)
        rows = self.conn.execute("SELECT players, outcome FROM matches WHERE outcome IS NOT NULL ORDER BY seq")
        for players, outcome in rows:
            home, away = json.loads(players)
            payoff.update(home, away, outcome)
        return payoff

    def load_league(self, decay: float = 1.0) -> League:
        """The whole league as it was last written: players and snapshots in joining order, and the payoff."""
        league = League(payoff=self.payoff(decay))
        members: dict[str, Player | Snapshot] = {p.id: p for p in self.players()}
        members.update((r.snapshot.id, r.snapshot) for r in self.snapshots())
        for member in self._members():
            league.add(members[member])
        return league

    def ratings(self, arena: str) -> dict[str, Rating]:
        """Each rated player's latest rating in the arena."""
        return self._latest_ratings(self.conn, arena)

    def rating_history(self, arena: str, player_id: str | None = None) -> list[RatingRecord]:
        rows = self.conn.execute("SELECT arena, player_id, match_id, mu, sigma, created FROM ratings WHERE arena = ? "
                                 "AND (? IS NULL OR player_id = ?) ORDER BY seq", (arena, player_id, player_id))
        return [RatingRecord(a, p, m, Rating(mu, sigma), t) for a, p, m, mu, sigma, t in rows]

    def leaderboard(self, arena: str) -> list[LeaderboardRow]:
        """Every player and snapshot of the arena, best conservative rating (ordinal) first; unrated
        members have openskill's starting rating."""
        roles = {p.id: p.role for p in self.players() if p.arena == arena}
        roles.update({r.snapshot.id: Snapshot.role for r in self.snapshots(arena)})
        ratings = self.ratings(arena)
        games = dict.fromkeys(roles, 0)
        points = dict.fromkeys(roles, 0.0)
        for players, outcome in self.conn.execute("SELECT players, outcome FROM matches WHERE arena = ? "
                                                  "AND outcome IS NOT NULL", (arena,)):
            home, away = json.loads(players)
            seats = ((home, 0.5),) if home == away else ((home, _POINTS[outcome]), (away, 1.0 - _POINTS[outcome]))
            for pid, pts in seats:  # a self-play match is one game for its player, worth half a point
                if pid in games:
                    games[pid] += 1
                    points[pid] += pts
        rows = [LeaderboardRow(pid, role, ratings.get(pid) or new_rating(), games[pid],
                               points[pid] / games[pid] if games[pid] else 0.5) for pid, role in roles.items()]
        return sorted(rows, key=lambda r: r.rating.ordinal, reverse=True)


_POINTS = {"win": 1.0, "draw": 0.5, "loss": 0.0}  # seat 0's points for its outcome
_SNAPSHOT_COLUMNS = "id, player_id, arena, step, path, source, reset, sha256, created"


def _snapshot_record(row: tuple) -> SnapshotRecord:
    sid, parent, arena, step, path, source, reset, sha, created = row
    return SnapshotRecord(Snapshot(sid, parent, arena, path, step, source=source, reset=bool(reset)), sha, created)
