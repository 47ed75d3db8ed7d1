"""League core: PFSP weightings, the payoff table, role matchmaking frequencies, snapshot rules and resets."""

from collections import Counter

import numpy as np
import pytest

from league.league import (League, LeagueExploiter, MainAgent, MainExploiter, MatchResult, Payoff, Snapshot,
                           pfsp, player_from_dict, remove_monotonic_suffix)

ARENA = "kuhn_poker_v0"


# ---------------------------------------------------------------------------- PFSP
@pytest.mark.parametrize("weighting, weights", [
    ("variance", [0.16, 0.25, 0.09]),
    ("linear", [0.8, 0.5, 0.1]),
    ("linear_capped", [0.5, 0.5, 0.1]),
    ("squared", [0.64, 0.25, 0.01]),
])
def test_pfsp_weightings_exact(weighting, weights):
    expected = np.array(weights) / sum(weights)
    np.testing.assert_allclose(pfsp([0.2, 0.5, 0.9], weighting), expected, rtol=1e-12)


def test_pfsp_all_zero_weights_is_uniform_and_bad_input_is_named():
    np.testing.assert_allclose(pfsp([1.0, 1.0, 0.0, 0.0], "variance"), [0.25] * 4)
    np.testing.assert_allclose(pfsp([1.0, 1.0], "linear"), [0.5, 0.5])
    with pytest.raises(ValueError, match="unknown PFSP weighting 'cubic'"):
        pfsp([0.5], "cubic")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        pfsp([1.5], "linear")
    with pytest.raises(ValueError, match="non-empty"):
        pfsp([], "linear")


# ---------------------------------------------------------------------------- payoff
def test_payoff_win_rate_counts_draws_half_and_unplayed_pairs_half():
    p = Payoff()
    assert p.win_rate("a", "b") == 0.5
    for outcome in ["win", "win", "draw", "loss"]:
        p.update("a", "b", outcome)
    assert p.win_rate("a", "b") == pytest.approx((2 + 0.5) / 4)
    assert p.win_rate("b", "a") == pytest.approx((1 + 0.5) / 4)
    assert p.counts("b", "a") == {"wins": 1, "draws": 1, "losses": 2, "games": 4}
    assert p.win_rate("a", "c") == 0.5  # c never played
    p.add_player("c")
    np.testing.assert_allclose(p.matrix(), [[0.5, 0.625, 0.5], [0.375, 0.5, 0.5], [0.5, 0.5, 0.5]])
    np.testing.assert_allclose(p.win_rates("a", ["b", "c"]), [0.625, 0.5])


def test_payoff_decay_fades_old_games():
    p = Payoff(decay=0.5)
    p.update("a", "b", "loss")
    p.update("a", "b", "win")  # the loss now weighs 0.5
    assert p.games("a", "b") == pytest.approx(1.5)
    assert p.win_rate("a", "b") == pytest.approx(1 / 1.5)
    p.update("b", "a", "draw")  # from b's side: both directions decay
    assert p.games("a", "b") == pytest.approx(1.75)
    assert p.win_rate("a", "b") == pytest.approx((0.5 + 0.5) / 1.75)
    with pytest.raises(ValueError, match="decay"):
        Payoff(decay=0.0)
    with pytest.raises(ValueError, match="outcome"):
        p.update("a", "b", "won")


def test_match_result_outcome_and_payoff_from_results():
    r = MatchResult("m1", ARENA, ("a", "b"), (-1.0, 1.0), seed=3)
    assert r.outcome == "loss"
    assert MatchResult("m2", ARENA, ("a", "b"), (2.0, 2.0)).outcome == "draw"
    with pytest.raises(ValueError, match="exactly 2"):
        MatchResult("m3", "signalling_v0", ("a", "b", "c"), (1.0, 1.0, 1.0)).outcome
    with pytest.raises(ValueError, match="2 players but 1 scores"):
        MatchResult("m4", ARENA, ("a", "b"), (1.0,))


# ---------------------------------------------------------------------------- leagues for the role tests
def league_with(*players, wins: dict | None = None) -> League:
    """A league of these players; `wins` sets win rates by playing 100 games per pair (rate r -> 100 r wins)."""
    league = League()
    for p in players:
        league.add(p)
    for (home, away), rate in (wins or {}).items():
        n = round(100 * rate)
        for k in range(100):
            league.payoff.update(home, away, "win" if k < n else "loss")
    return league


def snap(parent: str, step: int) -> Snapshot:
    return Snapshot(f"{parent}@{step}", parent, ARENA, f"snapshots/{parent}@{step}", step, source=f"p/{parent}")


def frequencies(player, league, n=10_000, seed=0):
    rng = np.random.default_rng(seed)
    matches = [player.get_match(league, rng) for _ in range(n)]
    return Counter(m.branch for m in matches), Counter(m.away for m in matches)


def test_main_agent_branches_50_pfsp_15_verification_35_self_play():
    main, exploiter = MainAgent("main", ARENA, "p/main"), MainExploiter("exp", ARENA, "p/exp")
    league = league_with(main, exploiter, snap("main", 0), snap("exp", 5), wins={("main", "exp@5"): 0.1})
    branches, opponents = frequencies(main, league)
    n = sum(branches.values())
    assert branches["pfsp"] / n == pytest.approx(0.50, abs=0.02)
    assert branches["verify_exploiters"] / n == pytest.approx(0.15, abs=0.015)
    assert branches["self_play"] / n == pytest.approx(0.35, abs=0.02)
    assert set(branches) == {"pfsp", "verify_exploiters", "self_play"}
    # PFSP (squared) over the snapshots: win rates 0.5 (unplayed) and 0.1 -> weights 0.25 and 0.81
    p_exp = 0.5 * 0.81 / 1.06 + 0.15
    assert opponents["exp@5"] / n == pytest.approx(p_exp, abs=0.02)
    assert opponents["main"] / n == pytest.approx(0.35, abs=0.02)


def test_main_agent_with_nothing_to_verify_plays_itself_half_the_time():
    main = MainAgent("main", ARENA, "p/main")
    league = league_with(main, snap("main", 0), wins={("main", "main@0"): 0.8})
    branches, _ = frequencies(main, league, n=4000)
    assert branches["self_play"] / 4000 == pytest.approx(0.5, abs=0.03)
    assert branches["pfsp"] / 4000 == pytest.approx(0.5, abs=0.03)


def test_main_agent_verification_finds_forgotten_snapshots():
    main = MainAgent("main", ARENA, "p/main", p_pfsp=0.0, p_verification=1.0)
    other = MainAgent("other", ARENA, "p/other")
    # against other's snapshots: 0.5, 0.8, 0.6 -> the falling tail (0.6) is dropped; 0.5 < 0.7 is forgotten
    league = league_with(main, other, snap("other", 1), snap("other", 2), snap("other", 3),
                         wins={("main", "other@1"): 0.5, ("main", "other@2"): 0.8, ("main", "other@3"): 0.6,
                               ("main", "main"): 0.5})
    _, opponents = frequencies(main, league, n=4000)
    # half the time the opponent drawn is `main` itself (no snapshots: self-play), half `other` -> verify
    assert opponents["other@3"] == 0
    assert opponents["other@1"] / 4000 == pytest.approx(0.5 * 0.25 / 0.29, abs=0.03)
    assert opponents["other@2"] / 4000 == pytest.approx(0.5 * 0.04 / 0.29, abs=0.02)


def test_remove_monotonic_suffix():
    rates, ids = remove_monotonic_suffix(np.array([0.2, 0.6, 0.5, 0.4]), ["a", "b", "c", "d"])
    assert ids == ["a", "b"] and rates.tolist() == [0.2, 0.6]
    rates, ids = remove_monotonic_suffix(np.array([0.9, 0.8, 0.7]), ["a", "b", "c"])
    assert ids == [] and len(rates) == 0


def test_main_agent_self_play_uses_curriculum_when_opponent_too_strong():
    main = MainAgent("main", ARENA, "p/main", p_pfsp=0.0, p_verification=0.0)
    other = MainAgent("other", ARENA, "p/other")
    league = league_with(main, other, snap("other", 1), snap("other", 2),
                         wins={("main", "other"): 0.2, ("main", "main"): 0.5, ("main", "other@1"): 0.5,
                               ("main", "other@2"): 0.9})
    branches, opponents = frequencies(main, league, n=4000)
    assert branches["self_play_curriculum"] / 4000 == pytest.approx(0.5, abs=0.03)
    assert opponents["other"] == 0  # too strong: only its snapshots, by PFSP variance (0.25 vs 0.09)
    assert opponents["other@1"] / 4000 == pytest.approx(0.5 * 0.25 / 0.34, abs=0.03)


def test_simple_modes():
    rng = np.random.default_rng(0)
    sp = MainAgent("main", ARENA, "p/main", matchmaking="self_play")
    league = league_with(sp, snap("main", 0), snap("main", 1))
    assert {sp.get_match(league, rng).away for _ in range(50)} == {"main"}
    fsp = MainAgent("fsp", ARENA, "p/fsp", matchmaking="fictitious")
    league.add(fsp)
    _, opponents = frequencies(fsp, league, n=3000)
    assert set(opponents) == {"main@0", "main@1"}
    assert opponents["main@0"] / 3000 == pytest.approx(0.5, abs=0.03)
    only = MainAgent("only", ARENA, "p/only", matchmaking="pfsp", pfsp_weighting="linear")
    league.add(only)
    for _ in range(100):
        league.payoff.update("only", "main@0", "win")  # win rate 1 vs main@0 -> weight 0
    _, opponents = frequencies(only, league, n=500)
    assert set(opponents) == {"main@1"}
    with pytest.raises(ValueError, match="unknown matchmaking 'league'"):
        MainAgent("x", ARENA, "p", matchmaking="league")
    descent = MainAgent("descent", ARENA, "p/descent", matchmaking="best_response")
    league.add(descent)
    with pytest.raises(ValueError, match="best_response needs a main exploiter"):
        descent.get_match(league, rng)
    oracle = league.add(MainExploiter("oracle", ARENA, "p/oracle", best_response=True))
    assert not oracle.checkpoint(rng).reset and oracle.policy == "p/oracle"  # a best response is never reset
    assert player_from_dict(oracle.to_dict()) == oracle
    assert {(m.away, m.branch) for m in (descent.get_match(league, rng) for _ in range(20))} == {("oracle", "best_response")}


def test_main_exploiter_targets_main_agents_and_falls_back_to_their_snapshots():
    main, exploiter = MainAgent("main", ARENA, "p/main"), MainExploiter("exp", ARENA, "p/exp")
    league = league_with(main, exploiter, snap("main", 0), snap("main", 10))
    branches, _ = frequencies(exploiter, league, n=200)
    assert branches == {"exploit_main": 200}  # unplayed: 0.5 > 0.1
    league = league_with(main, exploiter, snap("main", 0), snap("main", 10),
                         wins={("exp", "main"): 0.05, ("exp", "main@0"): 0.5, ("exp", "main@10"): 0.2})
    branches, opponents = frequencies(exploiter, league, n=4000)
    assert branches == {"exploit_snapshots": 4000}
    assert opponents["main@0"] / 4000 == pytest.approx(0.25 / 0.41, abs=0.03)


def test_league_exploiter_pfsp_linear_capped_over_all_snapshots():
    main, lx = MainAgent("main", ARENA, "p/main"), LeagueExploiter("lx", ARENA, "p/lx")
    league = league_with(main, lx, snap("main", 0), snap("main", 1), snap("lx", 1),
                         wins={("lx", "main@0"): 0.9, ("lx", "main@1"): 0.2})
    _, opponents = frequencies(lx, league, n=6000)
    weights = {"main@0": 0.1, "main@1": 0.5, "lx@1": 0.5}  # min(0.5, 1 - x)
    for s, w in weights.items():
        assert opponents[s] / 6000 == pytest.approx(w / 1.1, abs=0.02)


def test_matchmaking_is_reproducible_with_a_seed_and_ignores_other_arenas():
    main, exploiter = MainAgent("main", ARENA, "p/main"), MainExploiter("exp", ARENA, "p/exp")
    league = league_with(main, exploiter, snap("main", 0), snap("exp", 1),
                         MainAgent("elsewhere", "climbing_v0", "p/c"))

    def draws(seed):
        rng = np.random.default_rng(seed)
        return [(p.get_match(league, rng).away) for _ in range(50) for p in (main, exploiter)]

    assert draws(7) == draws(7) and draws(7) != draws(8)
    assert "elsewhere" not in draws(7)
    with pytest.raises(ValueError, match="no main agent in arena 'tictactoe_v0'"):
        MainExploiter("lonely", "tictactoe_v0", "p").get_match(league, np.random.default_rng(0))


# ---------------------------------------------------------------------------- snapshots and resets
def test_ready_to_checkpoint_by_win_rate_or_step_budget():
    main = MainAgent("main", ARENA, "p/main", snapshot_win_rate=0.7, snapshot_min_steps=5, snapshot_max_steps=50)
    league = league_with(main, snap("main", 0), snap("main", 1), wins={("main", "main@0"): 0.9, ("main", "main@1"): 0.75})
    main.step = 4
    assert not main.ready_to_checkpoint(league)  # too few steps, though it beats every target
    main.step = 5
    assert main.ready_to_checkpoint(league)
    league.payoff.update("main", "main@1", "loss")  # 75/101 = 0.743: still above 0.7
    assert main.ready_to_checkpoint(league)
    for _ in range(10):
        league.payoff.update("main", "main@1", "loss")  # 75/111 = 0.676
    assert not main.ready_to_checkpoint(league)
    main.step = 50
    assert main.ready_to_checkpoint(league)  # the step budget
    exploiter = MainExploiter("exp", ARENA, "p/exp", snapshot_max_steps=1000)
    league.add(exploiter)
    exploiter.step = 10
    assert not exploiter.ready_to_checkpoint(league)  # 0.5 against the (unplayed) main agent
    for _ in range(4):
        league.payoff.update("exp", "main", "win")
    assert exploiter.ready_to_checkpoint(league)  # its targets are the main agents, not snapshots


def test_checkpoint_freezes_and_resets_exploiters():
    rng = np.random.default_rng(0)
    main = MainAgent("main", ARENA, "p/main/v3", initial_policy="p/main/v0", step=30)
    s = main.checkpoint(rng)
    assert s == Snapshot("main@30", "main", ARENA, "snapshots/main@30", 30, source="p/main/v3", reset=False)
    assert main.policy == "p/main/v3" and main.checkpoint_step == 30
    assert not main.ready_to_checkpoint(League())  # no step since the snapshot
    exploiter = MainExploiter("exp", ARENA, "p/exp/v7", initial_policy="p/exp/v0", step=12)
    s = exploiter.checkpoint(rng)
    assert s.reset and s.source == "p/exp/v7" and exploiter.policy == "p/exp/v0" and exploiter.checkpoint_step == 12
    resets = 0
    for k in range(4000):
        lx = LeagueExploiter("lx", ARENA, "p/lx/v1", initial_policy="p/lx/v0", step=k + 1)
        s = lx.checkpoint(rng)
        assert s.reset == (lx.policy == "p/lx/v0")
        resets += s.reset
    assert resets / 4000 == pytest.approx(0.25, abs=0.025)


def test_league_rejects_duplicates_and_orphan_snapshots_and_roundtrips_players():
    league = League()
    main = league.add(MainAgent("main", ARENA, "p/main", step=3))
    with pytest.raises(ValueError, match="already has a player 'main'"):
        league.add(MainAgent("main", ARENA, "p"))
    with pytest.raises(ValueError, match="parent 'ghost'"):
        league.add(snap("ghost", 0))
    with pytest.raises(ValueError, match="unknown player"):
        league.update(MatchResult("m", ARENA, ("main", "ghost"), (1.0, 0.0)))
    assert player_from_dict(main.to_dict()) == main
    assert type(player_from_dict(MainExploiter("e", ARENA, "p").to_dict())) is MainExploiter
    with pytest.raises(ValueError, match="unknown player role"):
        player_from_dict({"role": "coach", "id": "x"})
    with pytest.raises(ValueError, match="player id 'a/b'"):
        MainAgent("a/b", ARENA, "p")
