"""Ratings and meta-solvers: openskill updates, the Nash LP, alpha-rank and the cross-play matrix."""

import numpy as np
import pytest

from league.league import MatchResult
from league.ratings import Rating, alpha_rank, cross_play, nash_zero_sum, new_rating, rate, replay, update_ratings

RPS = np.array([[0, -1, 1], [1, 0, -1], [-1, 1, 0]], dtype=float)


def test_openskill_winner_rises_loser_falls_draw_keeps_means():
    a, b = new_rating(), new_rating()
    assert (a.mu, a.sigma) == pytest.approx((25.0, 25 / 3))
    assert a.ordinal == pytest.approx(0.0)
    win_a, win_b = rate([a, b], [1.0, -1.0])
    assert win_a.mu > 25 > win_b.mu and win_a.sigma < a.sigma
    assert win_a.ordinal > a.ordinal
    d_a, d_b = rate([a, b], [0.0, 0.0])
    assert d_a.mu == pytest.approx(25.0) and d_b.mu == pytest.approx(25.0) and d_a.sigma < a.sigma
    strong = Rating(35.0, 3.0)
    upset = rate([strong, a], [0.0, 1.0])  # losing to a weaker player costs more than beating it gains
    expected = rate([strong, a], [1.0, 0.0])
    assert 35 - upset[0].mu > expected[0].mu - 35 > 0
    with pytest.raises(ValueError, match="two seats"):
        rate([a], [1.0])


def test_update_ratings_and_replay_per_arena():
    table = update_ratings({}, ["x", "y"], [2.0, -2.0])
    assert table["x"].mu > table["y"].mu
    assert update_ratings(table, ["x", "x"], [1.0, -1.0]) == {}  # self-play: no information
    results = [MatchResult(f"m{k}", "kuhn_poker_v0", ("x", "y"), (1.0, -1.0)) for k in range(5)]
    results.append(MatchResult("t", "tictactoe_v0", ("y", "x"), (1.0, -1.0)))
    tables = replay(results)
    assert tables["kuhn_poker_v0"]["x"].mu > tables["kuhn_poker_v0"]["y"].mu
    assert tables["tictactoe_v0"]["y"].mu > tables["tictactoe_v0"]["x"].mu  # arenas do not mix
    assert tables["kuhn_poker_v0"]["x"].mu > table["x"].mu  # five wins beat one


def test_nash_rock_paper_scissors_is_uniform_with_value_zero():
    eq = nash_zero_sum(RPS)
    np.testing.assert_allclose(eq.row, [1 / 3] * 3, atol=1e-8)
    np.testing.assert_allclose(eq.col, [1 / 3] * 3, atol=1e-8)
    assert eq.value == pytest.approx(0.0, abs=1e-9)
    # as a win-rate table (constant-sum 1): same mixture, value one half
    eq = nash_zero_sum((RPS + 1) / 2)
    np.testing.assert_allclose(eq.row, [1 / 3] * 3, atol=1e-8)
    assert eq.value == pytest.approx(0.5)


def test_nash_dominated_strategy_gives_pure_equilibrium():
    eq = nash_zero_sum([[2.0, 3.0], [1.0, 0.0]])  # row 0 dominates; the column player then picks column 0
    np.testing.assert_allclose(eq.row, [1, 0], atol=1e-9)
    np.testing.assert_allclose(eq.col, [1, 0], atol=1e-9)
    assert eq.value == pytest.approx(2.0)
    eq = nash_zero_sum([[3.0, -1.0], [-2.0, 1.0]])  # a mixed one: x = 3/7, value 1/7
    np.testing.assert_allclose(eq.row, [3 / 7, 4 / 7], atol=1e-8)
    assert eq.value == pytest.approx(1 / 7)
    with pytest.raises(ValueError, match="2-D"):
        nash_zero_sum([1.0, 2.0])


def test_alpha_rank_puts_the_dominant_strategy_first():
    m = np.array([[0.5, 0.9, 0.8], [0.1, 0.5, 0.6], [0.2, 0.4, 0.5]])  # win rates: A beats everyone
    result = alpha_rank(m, labels=["A", "B", "C"], alpha=10.0)
    assert result.ranking()[0] == "A" and result.pi[0] > 0.9
    assert result.pi.sum() == pytest.approx(1.0)
    rps = alpha_rank(RPS, alpha=10.0)  # a cycle: everyone equal
    np.testing.assert_allclose(rps.pi, [1 / 3] * 3, atol=1e-6)
    # two populations (prisoner's dilemma): mutual defection is where evolution ends
    row = np.array([[3.0, 0.0], [5.0, 1.0]])
    pd = alpha_rank([row, row.T], labels=[["C", "D"], ["C", "D"]], alpha=10.0)
    assert pd.ranking()[0] == ("D", "D")
    with pytest.raises(ValueError, match="square"):
        alpha_rank(np.ones((2, 3)))


def test_cross_play_matrix_and_coordination_gap():
    returns = {("a", "a"): 1.0, ("b", "b"): 0.9, ("a", "b"): 0.1, ("b", "a"): 0.3}
    cp = cross_play(returns)
    assert cp.labels == ["a", "b"]
    np.testing.assert_allclose(cp.matrix, [[1.0, 0.1], [0.3, 0.9]])
    assert cp.self_play == pytest.approx(0.95) and cp.cross_play == pytest.approx(0.2)
    cp = cross_play({("a", "b"): 0.5}, labels=["a", "b", "c"])
    assert np.isnan(cp.matrix[2, 2]) and cp.cross_play == pytest.approx(0.5) and np.isnan(cp.self_play)
    with pytest.raises(ValueError, match=r"\['z'\]"):
        cross_play({("a", "z"): 1.0}, labels=["a"])
