"""Ratings and meta-game solvers over league results, as pure functions.

- Skill: openskill's Plackett-Luce ratings (mu, sigma, and the conservative ``ordinal`` used for
  leaderboards), one rating table per arena, updated match by match, draws included.
- Two-player zero-sum meta-games: the Nash mixture and value of a payoff matrix, by linear programming.
- General games: alpha-rank (OpenSpiel's), which ranks strategies by the stationary distribution of an
  evolutionary process and needs neither zero-sum nor two players.
- Cooperative arenas: a cross-play matrix, how well policies trained apart coordinate with each other
  (self-play on the diagonal, cross-play off it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from league.league import MatchResult

# ---------------------------------------------------------------------------- openskill
@lru_cache(maxsize=1)
def _model():
    from openskill.models import PlackettLuce

    return PlackettLuce()


@dataclass(frozen=True)
class Rating:
    """A player's skill in one arena: mean ``mu`` and uncertainty ``sigma`` (openskill's defaults: 25, 25/3)."""

    mu: float
    sigma: float

    @property
    def ordinal(self) -> float:
        """A conservative skill estimate (openskill's ``ordinal``: mu - 3 sigma); leaderboards sort by it."""
        return float(_model().rating(mu=self.mu, sigma=self.sigma).ordinal())


def new_rating() -> Rating:
    r = _model().rating()
    return Rating(float(r.mu), float(r.sigma))


def rate(ratings: Sequence[Rating], scores: Sequence[float]) -> list[Rating]:
    """The ratings after one match: one player per seat, a higher score ranks higher, equal scores draw."""
    if len(ratings) != len(scores) or len(ratings) < 2:
        raise ValueError(f"rate needs at least two seats and one score per seat, got {len(ratings)} ratings "
                         f"and {len(scores)} scores")
    model = _model()
    teams = [[model.rating(mu=r.mu, sigma=r.sigma)] for r in ratings]
    new = model.rate(teams, scores=[float(s) for s in scores])
    return [Rating(float(t[0].mu), float(t[0].sigma)) for t in new]


def update_ratings(table: Mapping[str, Rating], players: Sequence[str], scores: Sequence[float]) -> dict[str, Rating]:
    """New ratings of the players of one match (players missing from ``table`` start fresh).

    A player that sits in several seats (self-play against itself) learns nothing about its skill:
    the result is then empty and the table stays as it is.
    """
    if len(set(players)) != len(players):
        return {}
    new = rate([table.get(p) or new_rating() for p in players], scores)
    return dict(zip(players, new))


def replay(results: Iterable[MatchResult]) -> dict[str, dict[str, Rating]]:
    """Ratings per arena after these matches, in order: arena -> player -> rating."""
    tables: dict[str, dict[str, Rating]] = {}
    for r in results:
        table = tables.setdefault(r.arena, {})
        table.update(update_ratings(table, r.players, r.scores))
    return tables


# ---------------------------------------------------------------------------- Nash for two-player zero-sum
@dataclass(frozen=True)
class NashEquilibrium:
    """Mixtures over the rows and columns of a zero-sum payoff matrix, and the row player's value."""

    row: np.ndarray
    col: np.ndarray
    value: float


def _maximin(payoff: np.ndarray) -> tuple[np.ndarray, float]:
    """max_x min_j (x^T A)_j over mixtures x: variables (x, v), maximise v s.t. A^T x >= v, sum x = 1."""
    from scipy.optimize import linprog

    n, m = payoff.shape
    c = np.zeros(n + 1)
    c[-1] = -1.0
    a_ub = np.hstack([-payoff.T, np.ones((m, 1))])
    a_eq = np.hstack([np.ones((1, n)), np.zeros((1, 1))])
    res = linprog(c, A_ub=a_ub, b_ub=np.zeros(m), A_eq=a_eq, b_eq=[1.0],
                  bounds=[(0, None)] * n + [(None, None)], method="highs")
    if res.status != 0:
        raise ValueError(f"the Nash linear program failed: {res.message}")
    x = np.clip(res.x[:n], 0.0, None)
    return x / x.sum(), float(res.x[-1])


def nash_zero_sum(payoff: np.ndarray | Sequence[Sequence[float]]) -> NashEquilibrium:
    """A Nash equilibrium of the two-player zero-sum game whose row player receives ``payoff[i, j]``.

    For a league's win-rate matrix (constant-sum: rates add up to 1) pass it as it is: the mixtures are
    the same and the value is the row player's equilibrium win rate (0.5 for a symmetric table).
    """
    a = np.asarray(payoff, dtype=float)
    if a.ndim != 2 or 0 in a.shape or not np.all(np.isfinite(a)):
        raise ValueError(f"nash_zero_sum needs a finite, non-empty 2-D payoff matrix, got shape {a.shape}")
    row, value = _maximin(a)
    col, _ = _maximin(-a.T)  # the column player maximises its own payoff, -A^T
    return NashEquilibrium(row=row, col=col, value=value)


# ---------------------------------------------------------------------------- alpha-rank
@dataclass(frozen=True)
class AlphaRank:
    """alpha-rank's stationary distribution ``pi`` over strategies (one population) or strategy profiles
    (several populations; ``labels[k]`` then names one strategy per population)."""

    labels: list
    pi: np.ndarray

    def ranking(self) -> list:
        """Labels from the most to the least played in the long run."""
        return [self.labels[i] for i in np.argsort(-self.pi, kind="stable")]


def alpha_rank(payoff_tables: np.ndarray | Sequence[np.ndarray], labels: Sequence | None = None,
               alpha: float = 100.0, population_size: int = 50) -> AlphaRank:
    """alpha-rank (Omidshafiei et al. 2019) with OpenSpiel's ``egt.alpharank``.

    One square matrix ``M[i, j]`` (payoff of strategy i against j) is a symmetric game of one
    population; ``labels`` then names the strategies. A list of K tables of shape (n_1, ..., n_K)
    (table k: population k's payoff for each profile) is a K-population game; ``labels`` then holds one
    list of names per population and the result's labels are tuples, one per profile.
    """
    from open_spiel.python.egt import alpharank, utils

    tables = [np.asarray(payoff_tables, dtype=float)] if np.ndim(payoff_tables) == 2 else \
        [np.asarray(t, dtype=float) for t in payoff_tables]
    shape = tables[0].shape
    if len(tables) == 1 and (len(shape) != 2 or shape[0] != shape[1]):
        raise ValueError(f"a one-population game needs a square payoff matrix, got shape {shape}")
    if len(tables) > 1 and (len(shape) != len(tables) or any(t.shape != shape for t in tables)):
        raise ValueError(f"{len(tables)} populations need {len(tables)} tables of {len(tables)} dimensions each, "
                         f"got shapes {[t.shape for t in tables]}")
    with np.errstate(over="ignore"):  # large alpha overflows exp() harmlessly inside the fixation probability
        _, _, pi, _, _ = alpharank.compute(tables, m=population_size, alpha=alpha)
    if len(tables) == 1:
        names = list(labels) if labels is not None else [str(i) for i in range(shape[0])]
        if len(names) != shape[0]:
            raise ValueError(f"{len(names)} labels for {shape[0]} strategies")
        return AlphaRank(names, np.asarray(pi, dtype=float))
    per_pop = [list(l) for l in labels] if labels is not None else [[str(i) for i in range(n)] for n in shape]
    if [len(l) for l in per_pop] != list(shape):
        raise ValueError(f"labels per population have lengths {[len(l) for l in per_pop]}, tables have {list(shape)}")
    profiles = [utils.get_strat_profile_from_id(np.array(shape), i) for i in range(len(pi))]
    return AlphaRank([tuple(per_pop[k][s] for k, s in enumerate(p)) for p in profiles], np.asarray(pi, dtype=float))


# ---------------------------------------------------------------------------- cross-play
@dataclass(frozen=True)
class CrossPlay:
    """``matrix[i, j]``: mean joint return when policy ``labels[i]`` (first seat) plays with ``labels[j]``;
    NaN where the pair never played."""

    labels: list[str]
    matrix: np.ndarray

    @property
    def self_play(self) -> float:
        """Mean of the diagonal: each policy with itself (its training partner's conventions)."""
        d = np.diag(self.matrix)
        return float(np.nanmean(d)) if np.any(~np.isnan(d)) else float("nan")

    @property
    def cross_play(self) -> float:
        """Mean off the diagonal: policies trained apart, together. The gap to ``self_play`` measures how
        much of the coordination was private convention."""
        off = self.matrix[~np.eye(len(self.labels), dtype=bool)]
        return float(np.nanmean(off)) if np.any(~np.isnan(off)) else float("nan")


def cross_play(returns: Mapping[tuple[str, str], float], labels: Sequence[str] | None = None) -> CrossPlay:
    """Arrange ``{(policy_i, policy_j): mean joint return}`` as a matrix (labels in order of first mention
    unless given)."""
    if labels is None:
        labels = list(dict.fromkeys(p for pair in returns for p in pair))
    labels = list(labels)
    index = {p: k for k, p in enumerate(labels)}
    unknown = sorted({p for pair in returns for p in pair if p not in index})
    if unknown:
        raise ValueError(f"cross_play: policies {unknown} are not among the labels {labels}")
    matrix = np.full((len(labels), len(labels)), np.nan)
    for (a, b), value in returns.items():
        matrix[index[a], index[b]] = float(value)
    return CrossPlay(labels, matrix)
