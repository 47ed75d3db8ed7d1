"""OpenSpiel games through the ``openspiel:`` adapter: PettingZoo's tests, action strings, chance from the seed,
OpenSpiel's returns, and exact exploitability through the adapter (Kuhn and Leduc poker)."""

import math

import numpy as np
import pytest
from pettingzoo.test import api_test, seed_test

pyspiel = pytest.importorskip("pyspiel")

import arenas  # noqa: E402
from league.exploitability import (LEDUC_UNIFORM_NASH_CONV, answer, exploitability, info_states,  # noqa: E402
                                   policy_exploitability, uniform_probs)

GAMES = ["kuhn_poker", "leduc_poker", "tic_tac_toe", "liars_dice", "connect_four", "leduc_poker(players=3)",
         "turn_based_simultaneous_game(game=goofspiel(num_cards=4))"]


@pytest.mark.parametrize("game", GAMES)
def test_pettingzoo_api_and_seed(game):
    name = f"openspiel:{game}"
    api_test(arenas.make(name), num_cycles=100)
    seed_test(lambda: arenas.make(name), num_cycles=30)


def random_play(name, seed, rng_seed=0):
    env = arenas.make(name)
    env.reset(seed=seed)
    rng = np.random.default_rng(rng_seed)
    returns = {a: 0.0 for a in env.possible_agents}
    trace = []
    for agent in env.agent_iter():
        obs, reward, term, trunc, info = env.last()
        returns[agent] += reward
        if term or trunc:
            env.step(None)
            continue
        move = info["legal_actions"][rng.integers(len(info["legal_actions"]))]
        env.step(move)
        trace.append((agent, obs["text"], move))
    return env, trace, returns


@pytest.mark.parametrize("game", ["kuhn_poker", "leduc_poker", "tic_tac_toe", "liars_dice", "connect_four"])
def test_mask_legal_actions_and_returns_match_openspiel(game):
    env, trace, returns = random_play(f"openspiel:{game}", seed=1)
    state = env.unwrapped.state
    assert state.is_terminal()
    assert returns == {f"player_{p}": pytest.approx(r) for p, r in enumerate(state.returns())}
    # replaying the moves in OpenSpiel gives the same terminal state (chance included, from the history)
    replay = env.unwrapped.game.new_initial_state()
    for action in state.history():
        replay.apply_action(action)
    assert str(replay) == str(state)
    env.reset(seed=5)
    obs, _, _, _, info = env.last()
    agent = env.agent_selection
    base = env.unwrapped
    p = int(agent[-1])
    assert info["legal_actions"] == [base.state.action_to_string(p, a) for a in base.state.legal_actions()]
    assert sorted(np.flatnonzero(obs["action_mask"])) == sorted(base.state.legal_actions())
    assert all(a in obs["text"] for a in info["legal_actions"]) and "<answer>" in obs["text"]


def test_chance_is_resolved_from_the_seed():
    deals = set()
    for seed in range(8):
        env = arenas.make("openspiel:leduc_poker")
        env.reset(seed=seed)
        assert not env.unwrapped.state.is_chance_node()  # agents only ever see decision nodes
        deals.add(tuple(env.unwrapped.state.history()))
        again = arenas.make("openspiel:leduc_poker")
        again.reset(seed=seed)
        assert again.unwrapped.state.history() == env.unwrapped.state.history()
    assert len(deals) > 3


def test_multistep_determinism_and_hidden_cards():
    a, b, c = (random_play("openspiel:kuhn_poker", s)[1] for s in (7, 7, 8))
    assert a == b and a != c
    env = arenas.make("openspiel:kuhn_poker")
    env.reset(seed=0, options={"history": [0, 2]})  # player 0 holds the Jack, player 1 the King
    assert "information state (OpenSpiel's string):\n0\n" in env.observe("player_0")["text"]
    assert "\n2\n" not in env.observe("player_0")["text"]  # the opponent's card is not shown
    assert "\n2\n" in env.observe("player_1")["text"]


def test_action_strings_parse_tolerantly_and_invalid_moves_lose():
    env = arenas.make("openspiel:tic_tac_toe")
    env.reset(seed=0)
    env.step("I take the centre.\n<answer>x(1,1)</answer>")
    assert env.infos["player_0"]["parsed_action"] == "x(1,1)" and env.infos["player_0"]["valid"]
    assert "Moves so far: x(1,1)." in env.observe("player_1")["text"]
    env.step("<answer>o(1,1)</answer>")  # taken: not a legal action string
    assert env.infos["player_1"]["valid"] is False and all(env.terminations.values())
    assert env.rewards == {"player_0": 1.0, "player_1": -1.0}  # the offender gets the game's minimum utility


def test_fallback_rule_and_large_action_spaces():
    env = arenas.make("openspiel:kuhn_poker", invalid_action="fallback")
    env.reset(seed=0)
    env.step("no idea")
    assert env.infos["player_0"]["valid"] is False and env.infos["player_0"]["parsed_action"] in ("Pass", "Bet")
    chess = arenas.make("openspiel:chess").unwrapped
    assert chess.vocabularies["player_0"][:2] == ["#0", "#1"]  # 4674 actions: named by id in the mask
    chess.reset(seed=0)
    legal = chess._legal_names(chess.state.current_player())
    name, action = next(iter(legal.items()))
    chess.step(f"#{action}")  # the mask's name of a legal action is accepted too
    assert chess.infos[f"player_{1 - chess.state.current_player()}"]["parsed_action"] == name


def test_unsupported_games_are_refused_clearly():
    with pytest.raises(arenas.UnsupportedArena, match="simultaneous-move.*turn_based_simultaneous_game"):
        arenas.make("openspiel:goofspiel")
    with pytest.raises(KeyError, match="Did you mean kuhn_poker"):
        arenas.make("openspiel:kuhn_pokr")
    with pytest.raises(arenas.UnsupportedArena, match="cannot load"):
        arenas.make("openspiel:kuhn_poker(cards=4)")
    assert arenas.spec("openspiel:kuhn_poker").rewards == "zero-sum"
    assert arenas.spec("openspiel:tiny_hanabi").rewards == "shared"


# ---------------------------------------------------------------------------- exploitability through the adapter
from test_league_exploitability import Scorer  # noqa: E402 (the same stand-in policy)


def test_kuhn_through_the_adapter_matches_openspiel_exactly():
    from open_spiel.python.algorithms import cfr
    from open_spiel.python.policy import TabularPolicy

    states = info_states("openspiel:kuhn_poker")
    assert sorted(s.key for s in states) == sorted(TabularPolicy(pyspiel.load_game("kuhn_poker")).state_lookup)
    assert exploitability(uniform_probs(states), "kuhn_poker").value == pytest.approx(11 / 24, abs=1e-12)
    # an equilibrium from OpenSpiel's CFR, played by a scorer that reads the arena's prompts
    solver = cfr.CFRSolver(pyspiel.load_game("kuhn_poker"))
    for _ in range(300):
        solver.evaluate_and_update_policy()
    avg = solver.average_policy()
    table = {s.key: dict(zip(("Pass", "Bet"), avg.action_probability_array[avg.state_lookup[s.key]])) for s in states}
    by_prompt = {s.prompt: table[s.key] for s in states}

    def logp(prompt, completion):
        action = "Bet" if completion == answer("Bet") else "Pass"
        p = by_prompt[prompt][action]
        return math.log(p) if p > 0 else -math.inf

    scorer = Scorer(logp)
    result = policy_exploitability(scorer, "openspiel:kuhn_poker")
    assert scorer.calls == 1 and len(scorer.seen) == 24
    assert result.value == pytest.approx(exploitability(table, "kuhn_poker").value, abs=1e-12)
    assert result.value < 0.01  # CFR's average policy is near Nash
    assert policy_exploitability(Scorer(lambda p, c: -1.0), "openspiel:kuhn_poker").value == pytest.approx(11 / 24)


def test_leduc_uniform_nash_conv_through_the_adapter():
    from open_spiel.python import policy as spiel_policy
    from open_spiel.python.algorithms import exploitability as spiel_exploitability

    states = info_states("openspiel:leduc_poker")
    assert len(states) == 936
    assert {s.legal for s in states} >= {("Call", "Raise"), ("Fold", "Call", "Raise"), ("Fold", "Call")}
    result = exploitability(uniform_probs(states), "leduc_poker")
    assert result.nash_conv == pytest.approx(LEDUC_UNIFORM_NASH_CONV, abs=5e-5)
    game = pyspiel.load_game("leduc_poker")
    assert result.nash_conv == pytest.approx(spiel_exploitability.nash_conv(game, spiel_policy.UniformRandomPolicy(game)), abs=1e-12)
    # the whole path: the arena's prompts scored by a policy whose scores tie, one batch for every state
    scorer = Scorer(lambda p, c: -2.0)
    scored = policy_exploitability(scorer, "openspiel:leduc_poker")
    assert scorer.calls == 1 and len(scorer.seen) == sum(len(s.legal) for s in states)
    assert scored.nash_conv == pytest.approx(result.nash_conv, abs=1e-12)
    # a policy that never folds differs from uniform, and OpenSpiel sees the difference
    never_fold = {s.key: {a: (0.0 if a == "Fold" else 1.0 / (len(s.legal) - ("Fold" in s.legal))) for a in s.legal}
                  for s in states}
    assert abs(exploitability(never_fold, "leduc_poker").nash_conv - result.nash_conv) > 0.01


def test_exploitability_refuses_other_arenas():
    with pytest.raises(ValueError, match="kuhn_poker_v0 only"):
        info_states("tictactoe_v0")
    with pytest.raises(ValueError, match="two-player"):
        info_states("openspiel:leduc_poker(players=3)")
