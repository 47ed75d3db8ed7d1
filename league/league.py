"""The league: players, frozen snapshots, a payoff table and AlphaStar's matchmaking rules.

This module reads like the AlphaStar league pseudocode (Vinyals et al. 2019, supplementary): a
:class:`Payoff` of wins, draws and losses per ordered pair of players, :func:`pfsp` weightings, and
roles with plain ``get_match`` / ``ready_to_checkpoint`` / ``checkpoint`` methods:

- :class:`MainAgent`: 50% PFSP against every snapshot, 15% verification (snapshots of main exploiters
  it still loses to, or old snapshots of a main agent it has forgotten how to beat), else self-play
  against a main agent, with that agent's snapshots as a curriculum while it is too strong. The simpler
  modes are the same player with another ``matchmaking``: ``self_play`` (latest vs latest),
  ``fictitious`` (uniform over snapshots), ``pfsp`` (PFSP only) and ``best_response`` (always the current
  main exploiters, which the runner makes exact best responses: exploitability descent, as PSRO's oracle).
- :class:`MainExploiter`: plays the main agents; against one it cannot yet beat, PFSP (variance)
  over that agent's snapshots. Resets to its initial policy after every snapshot.
- :class:`LeagueExploiter`: PFSP over every snapshot; resets with probability 0.25 after a snapshot.

Players are data: ids, a role, an arena, and a *reference* to their current policy (a directory or a
version label), never a model. The league runner moves weights and files; this module only decides.
Every random choice draws from an explicit ``numpy.random.Generator``, so a seeded league makes the
same matches. Nothing here imports ``marl`` or torch: it is cheap to import and to test.
"""

from __future__ import annotations

import dataclasses
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np

PLAYER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
SNAPSHOTS_DIR = "snapshots"  # snapshot files live in <league folder>/snapshots/<snapshot id>
Outcome = Literal["win", "draw", "loss"]
Weighting = Literal["variance", "linear", "linear_capped", "squared"]
Matchmaking = Literal["alphastar", "self_play", "fictitious", "pfsp", "best_response"]

# ---------------------------------------------------------------------------- PFSP
WEIGHTINGS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "variance": lambda x: x * (1 - x),  # opponents of about equal strength
    "linear": lambda x: 1 - x,
    "linear_capped": lambda x: np.minimum(0.5, 1 - x),  # everyone it does not beat, equally
    "squared": lambda x: (1 - x) ** 2,  # the hardest opponents
}


def pfsp(win_rates: Sequence[float] | np.ndarray, weighting: Weighting = "linear") -> np.ndarray:
    """Prioritized fictitious self-play: a distribution over opponents from our win rates against them.

    When every weight is (nearly) zero, e.g. ``variance`` with all win rates at 0 or 1, the opponents
    are drawn uniformly, as in AlphaStar.
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"unknown PFSP weighting {weighting!r}; choose one of {', '.join(WEIGHTINGS)}")
    x = np.asarray(win_rates, dtype=float)
    if x.ndim != 1 or len(x) == 0:
        raise ValueError(f"pfsp needs a non-empty 1-D array of win rates, got shape {x.shape}")
    if np.any((x < 0) | (x > 1)) or np.any(np.isnan(x)):
        raise ValueError(f"win rates must lie in [0, 1], got {x.tolist()}")
    weights = WEIGHTINGS[weighting](x)
    total = weights.sum()
    if total < 1e-10:
        return np.full(len(x), 1.0 / len(x))
    return weights / total


# ---------------------------------------------------------------------------- payoff table
@dataclass(frozen=True)
class MatchResult:
    """One finished match: who sat where, what each seat scored. Written once under ``match_id``."""

    match_id: str
    arena: str
    players: tuple[str, ...]  # player (or snapshot) id per seat: players[i] played agent i of the arena
    scores: tuple[float, ...]  # each seat's return
    seed: int = 0

    def __post_init__(self) -> None:
        if len(self.players) != len(self.scores) or len(self.players) < 1:
            raise ValueError(f"match {self.match_id}: {len(self.players)} players but {len(self.scores)} scores")

    @property
    def outcome(self) -> Outcome:
        """The first seat's result against the second (two-player matches only)."""
        if len(self.players) != 2:
            raise ValueError(f"match {self.match_id} has {len(self.players)} seats; win/draw/loss needs exactly 2")
        a, b = self.scores
        return "win" if a > b else "loss" if a < b else "draw"


class Payoff:
    """Wins, draws and losses for every ordered pair of players (by id).

    ``win_rate(home, away) = (wins + 0.5 draws) / games``; a pair that never met counts 0.5. With
    ``decay < 1`` a pair's past games fade each time the pair plays again (AlphaStar uses 0.99).
    """

    def __init__(self, decay: float = 1.0):
        if not 0 < decay <= 1:
            raise ValueError(f"payoff decay must be in (0, 1], got {decay}")
        self.decay = decay
        self.players: list[str] = []  # in the order they joined: the rows of `matrix()`
        self._wins: dict[tuple[str, str], float] = defaultdict(float)
        self._draws: dict[tuple[str, str], float] = defaultdict(float)
        self._losses: dict[tuple[str, str], float] = defaultdict(float)
        self._games: dict[tuple[str, str], float] = defaultdict(float)

    def add_player(self, player_id: str) -> None:
        if player_id not in self.players:
            self.players.append(player_id)

    def update(self, home: str, away: str, outcome: Outcome) -> None:
        """Record one game; ``outcome`` is home's result."""
        if outcome not in ("win", "draw", "loss"):
            raise ValueError(f"outcome must be 'win', 'draw' or 'loss', got {outcome!r}")
        self.add_player(home)
        self.add_player(away)
        for stats in (self._games, self._wins, self._draws, self._losses):
            stats[home, away] *= self.decay
            if away != home:
                stats[away, home] *= self.decay
        self._games[home, away] += 1
        self._games[away, home] += 1
        if outcome == "win":
            self._wins[home, away] += 1
            self._losses[away, home] += 1
        elif outcome == "draw":
            self._draws[home, away] += 1
            self._draws[away, home] += 1
        else:
            self._wins[away, home] += 1
            self._losses[home, away] += 1

    def add_result(self, result: MatchResult) -> None:
        """Record a two-seat :class:`MatchResult` (seat 0 is home)."""
        self.update(result.players[0], result.players[1], result.outcome)

    def win_rate(self, home: str, away: str) -> float:
        games = self._games.get((home, away), 0.0)
        if games == 0:
            return 0.5
        return (self._wins.get((home, away), 0.0) + 0.5 * self._draws.get((home, away), 0.0)) / games

    def win_rates(self, home: str, aways: Sequence[str]) -> np.ndarray:
        return np.array([self.win_rate(home, a) for a in aways], dtype=float)

    def games(self, home: str, away: str) -> float:
        """Games between the pair (decayed when ``decay < 1``)."""
        return self._games.get((home, away), 0.0)

    def counts(self, home: str, away: str) -> dict[str, float]:
        """Home's wins, draws, losses and games against away."""
        key = (home, away)
        return {"wins": self._wins.get(key, 0.0), "draws": self._draws.get(key, 0.0),
                "losses": self._losses.get(key, 0.0), "games": self._games.get(key, 0.0)}

    def matrix(self, players: Sequence[str] | None = None) -> np.ndarray:
        """Win rates, row player against column player (all players in joining order by default)."""
        ids = list(self.players if players is None else players)
        return np.array([[self.win_rate(h, a) for a in ids] for h in ids], dtype=float).reshape(len(ids), len(ids))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Payoff):
            return NotImplemented
        pairs = {k for d in (self._games, other._games) for k, v in d.items() if v}
        return set(self.players) == set(other.players) and all(
            np.isclose(self.counts(*k)[s], other.counts(*k)[s]) for k in pairs for s in ("wins", "draws", "losses", "games"))


# ---------------------------------------------------------------------------- players
@dataclass(frozen=True)
class Match:
    """A match a learning player asks for: ``home`` (the learner) against ``away``.

    ``branch`` names the rule that chose the opponent, e.g. ``pfsp``, ``self_play``, ``verification``.
    """

    home: str
    away: str
    branch: str


@dataclass(frozen=True)
class Snapshot:
    """A frozen copy of a learning player's policy: it plays, never learns, never asks for matches."""

    id: str  # "<parent>@<step>"
    parent: str  # the learning player it was taken from
    arena: str
    policy: str  # the immutable copy, relative to the league folder: "snapshots/<id>"
    step: int  # the parent's learner step when it was taken
    source: str = ""  # the parent's policy it copies (what the league state copies the files from)
    reset: bool = False  # the parent went back to its initial policy right after this snapshot
    role: ClassVar[str] = "snapshot"


@dataclass
class Player:
    """A learning player. Subclasses give the role's matchmaking and snapshot rules.

    ``policy`` is a reference the runner understands (a directory or a version label) and updates as
    the learner trains; ``step`` counts learner steps. A snapshot becomes possible after at least
    ``snapshot_min_steps`` steps since the last one and is due when the win rate against every one of
    the role's targets exceeds ``snapshot_win_rate``, or after ``snapshot_max_steps`` steps.
    """

    id: str
    arena: str
    policy: str
    initial_policy: str = ""  # what resets return to; the starting policy by default
    step: int = 0
    checkpoint_step: int = 0  # `step` at the last snapshot
    snapshot_win_rate: float = 0.7
    snapshot_min_steps: int = 1
    snapshot_max_steps: int = 100
    role: ClassVar[str] = "player"
    reset_probability: ClassVar[float] = 0.0

    def __post_init__(self) -> None:
        if not PLAYER_ID.fullmatch(self.id):
            raise ValueError(f"player id {self.id!r} must be letters, digits, '_', '.' or '-' (it names files "
                             "and snapshots '<id>@<step>')")
        if not self.initial_policy:
            self.initial_policy = self.policy
        if not 1 <= self.snapshot_min_steps <= self.snapshot_max_steps:
            raise ValueError(f"player {self.id}: need 1 <= snapshot_min_steps ({self.snapshot_min_steps}) "
                             f"<= snapshot_max_steps ({self.snapshot_max_steps})")

    def get_match(self, league: League, rng: np.random.Generator) -> Match:
        raise NotImplementedError

    def targets(self, league: League) -> list[str]:
        """The players this role must beat before a snapshot."""
        raise NotImplementedError

    def ready_to_checkpoint(self, league: League) -> bool:
        steps = self.step - self.checkpoint_step
        if steps < self.snapshot_min_steps:
            return False
        targets = self.targets(league)
        beaten = bool(targets) and float(league.payoff.win_rates(self.id, targets).min()) > self.snapshot_win_rate
        return beaten or steps >= self.snapshot_max_steps

    def checkpoint(self, rng: np.random.Generator) -> Snapshot:
        """Freeze the current policy as a snapshot, then reset to the initial policy with the role's
        probability. Only the decision: the league state copies the files (``LeagueState.take_snapshot``)."""
        reset = self.reset_probability > 0 and rng.random() < self.reset_probability
        snap_id = f"{self.id}@{self.step}"
        snap = Snapshot(id=snap_id, parent=self.id, arena=self.arena, policy=f"{SNAPSHOTS_DIR}/{snap_id}",
                        step=self.step, source=self.policy, reset=reset)
        if reset:
            self.policy = self.initial_policy
        self.checkpoint_step = self.step
        return snap

    def to_dict(self) -> dict:
        """The fields as plain data, with the role: what the league state stores."""
        return {"role": self.role, **dataclasses.asdict(self)}


def _choose(ids: Sequence[str], rng: np.random.Generator, p: np.ndarray | None = None) -> str:
    return ids[int(rng.choice(len(ids), p=p))]


def remove_monotonic_suffix(win_rates: np.ndarray, players: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Drop the newest snapshots while our win rate only falls towards them (they are simply stronger,
    not forgotten): keep the list up to the last point where the win rate rose (AlphaStar)."""
    for i in range(len(win_rates) - 1, 0, -1):
        if win_rates[i - 1] < win_rates[i]:
            return np.asarray(win_rates[: i + 1]), list(players[: i + 1])
    return np.array([]), []


@dataclass
class MainAgent(Player):
    """A main agent (AlphaStar): never reset, must stay strong against the whole league."""

    matchmaking: Matchmaking = "alphastar"
    pfsp_weighting: Weighting = "squared"  # for the PFSP branch and the `pfsp` mode
    p_pfsp: float = 0.5
    p_verification: float = 0.15
    self_play_threshold: float = 0.3  # below this against a main agent, play its snapshots instead
    exploiter_threshold: float = 0.3  # verification: a main-exploiter snapshot we beat less often than this
    forgetting_threshold: float = 0.7  # verification: an old snapshot we beat less often than this
    role: ClassVar[str] = "main_agent"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.matchmaking not in ("alphastar", "self_play", "fictitious", "pfsp", "best_response"):
            raise ValueError(f"player {self.id}: unknown matchmaking {self.matchmaking!r}; "
                             "choose alphastar, self_play, fictitious, pfsp or best_response")
        if self.pfsp_weighting not in WEIGHTINGS:
            raise ValueError(f"player {self.id}: unknown PFSP weighting {self.pfsp_weighting!r}")
        if not (0 <= self.p_pfsp and 0 <= self.p_verification and self.p_pfsp + self.p_verification <= 1):
            raise ValueError(f"player {self.id}: p_pfsp ({self.p_pfsp}) and p_verification ({self.p_verification}) "
                             "must be probabilities summing to at most 1")

    def targets(self, league: League) -> list[str]:
        return league.snapshot_ids(self.arena)

    def get_match(self, league: League, rng: np.random.Generator) -> Match:
        if self.matchmaking == "self_play":
            return Match(self.id, _choose(league.main_agent_ids(self.arena), rng), "self_play")
        if self.matchmaking == "fictitious":
            snapshots = league.snapshot_ids(self.arena)
            if not snapshots:
                return Match(self.id, self.id, "self_play")
            return Match(self.id, _choose(snapshots, rng), "fictitious")
        if self.matchmaking == "pfsp":
            return self._pfsp_branch(league, rng)
        if self.matchmaking == "best_response":
            exploiters = league.learner_ids(self.arena, MainExploiter)
            if not exploiters:
                raise ValueError(f"player {self.id}: matchmaking best_response needs a main exploiter in {self.arena}")
            return Match(self.id, _choose(exploiters, rng), "best_response")
        coin = rng.random()
        if coin < self.p_pfsp:  # make sure we can beat the league
            return self._pfsp_branch(league, rng)
        opponent = _choose(league.main_agent_ids(self.arena), rng)
        if coin < self.p_pfsp + self.p_verification:  # check for exploiters and forgotten players
            match = self._verification_branch(league, opponent, rng)
            if match is not None:
                return match
        return self._selfplay_branch(league, opponent, rng)

    def _pfsp_branch(self, league: League, rng: np.random.Generator) -> Match:
        snapshots = league.snapshot_ids(self.arena)
        if not snapshots:  # nothing frozen yet: the latest players are the league
            return Match(self.id, _choose(league.main_agent_ids(self.arena), rng), "self_play")
        p = pfsp(league.payoff.win_rates(self.id, snapshots), self.pfsp_weighting)
        return Match(self.id, _choose(snapshots, rng, p), "pfsp")

    def _selfplay_branch(self, league: League, opponent: str, rng: np.random.Generator) -> Match:
        if league.payoff.win_rate(self.id, opponent) > self.self_play_threshold:
            return Match(self.id, opponent, "self_play")
        # the opponent is too strong for now: its snapshots are the curriculum
        snapshots = league.snapshot_ids(self.arena, parent=opponent)
        if not snapshots:
            return Match(self.id, opponent, "self_play")
        p = pfsp(league.payoff.win_rates(self.id, snapshots), "variance")
        return Match(self.id, _choose(snapshots, rng, p), "self_play_curriculum")

    def _verification_branch(self, league: League, opponent: str, rng: np.random.Generator) -> Match | None:
        exploiters = set(league.learner_ids(self.arena, MainExploiter))
        exploiter_snaps = [s for s in league.snapshot_ids(self.arena) if league.players[s].parent in exploiters]
        win_rates = league.payoff.win_rates(self.id, exploiter_snaps)
        if len(win_rates) and win_rates.min() < self.exploiter_threshold:
            return Match(self.id, _choose(exploiter_snaps, rng, pfsp(win_rates, "squared")), "verify_exploiters")
        history = league.snapshot_ids(self.arena, parent=opponent)
        win_rates, history = remove_monotonic_suffix(league.payoff.win_rates(self.id, history), history)
        if len(win_rates) and win_rates.min() < self.forgetting_threshold:
            return Match(self.id, _choose(history, rng, pfsp(win_rates, "squared")), "verify_forgetting")
        return None


@dataclass
class MainExploiter(Player):
    """Finds the main agents' weaknesses; starts over from the initial policy after every snapshot (a best
    response, recomputed every round, never does)."""

    exploit_threshold: float = 0.1  # below this against the chosen main agent, play its snapshots
    best_response: bool = False  # the runner makes it the exact best response every round: never trained, never reset
    role: ClassVar[str] = "main_exploiter"
    reset_probability: ClassVar[float] = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.best_response:
            self.reset_probability = 0.0  # an instance value: a best response starts over every round anyway

    def targets(self, league: League) -> list[str]:
        return league.main_agent_ids(self.arena)

    def get_match(self, league: League, rng: np.random.Generator) -> Match:
        opponent = _choose(league.main_agent_ids(self.arena), rng)
        if league.payoff.win_rate(self.id, opponent) > self.exploit_threshold:
            return Match(self.id, opponent, "exploit_main")
        snapshots = league.snapshot_ids(self.arena, parent=opponent)
        if not snapshots:
            return Match(self.id, opponent, "exploit_main")
        p = pfsp(league.payoff.win_rates(self.id, snapshots), "variance")
        return Match(self.id, _choose(snapshots, rng, p), "exploit_snapshots")


@dataclass
class LeagueExploiter(Player):
    """Finds the whole league's weaknesses; resets with probability 0.25 after a snapshot."""

    role: ClassVar[str] = "league_exploiter"
    reset_probability: ClassVar[float] = 0.25

    def targets(self, league: League) -> list[str]:
        return league.snapshot_ids(self.arena)

    def get_match(self, league: League, rng: np.random.Generator) -> Match:
        snapshots = league.snapshot_ids(self.arena)
        if not snapshots:
            return Match(self.id, _choose(league.main_agent_ids(self.arena), rng), "exploit_main")
        p = pfsp(league.payoff.win_rates(self.id, snapshots), "linear_capped")
        return Match(self.id, _choose(snapshots, rng, p), "pfsp")


ROLES: dict[str, type[Player]] = {cls.role: cls for cls in (MainAgent, MainExploiter, LeagueExploiter)}


def player_from_dict(data: dict) -> Player:
    """Inverse of :meth:`Player.to_dict`."""
    data = dict(data)
    role = data.pop("role", None)
    if role not in ROLES:
        raise ValueError(f"unknown player role {role!r}; known roles: {', '.join(ROLES)}")
    return ROLES[role](**data)


# ---------------------------------------------------------------------------- the league
@dataclass
class League:
    """All players and snapshots (by id, in joining order) and their payoff table."""

    payoff: Payoff = field(default_factory=Payoff)
    players: dict[str, Player | Snapshot] = field(default_factory=dict)

    def add(self, player: Player | Snapshot) -> Player | Snapshot:
        if player.id in self.players:
            raise ValueError(f"the league already has a player {player.id!r}")
        if isinstance(player, Snapshot) and not isinstance(self.players.get(player.parent), Player):
            raise ValueError(f"snapshot {player.id!r}: its parent {player.parent!r} is not a learning player of this league")
        self.players[player.id] = player
        self.payoff.add_player(player.id)
        return player

    def update(self, result: MatchResult) -> None:
        """Add a two-player match result to the payoff table."""
        unknown = [p for p in result.players if p not in self.players]
        if unknown:
            raise ValueError(f"match {result.match_id}: unknown player(s) {unknown}")
        self.payoff.add_result(result)

    def learner_ids(self, arena: str, role: type[Player] = Player) -> list[str]:
        return [p.id for p in self.players.values() if isinstance(p, role) and p.arena == arena]

    def main_agent_ids(self, arena: str) -> list[str]:
        ids = self.learner_ids(arena, MainAgent)
        if not ids:
            raise ValueError(f"the league has no main agent in arena {arena!r}")
        return ids

    def snapshot_ids(self, arena: str, parent: str | None = None) -> list[str]:
        """Snapshots of the arena, oldest first (optionally only those of one parent)."""
        return [p.id for p in self.players.values()
                if isinstance(p, Snapshot) and p.arena == arena and (parent is None or p.parent == parent)]
