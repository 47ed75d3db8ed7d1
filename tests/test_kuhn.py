"""Kuhn poker: exact payoffs and information states against OpenSpiel, and the exact game value."""

import itertools
from fractions import Fraction

import pytest

import arenas
from arenas.games.kuhn_poker import info_state, nash_probs

HISTORIES = ["pp", "pbp", "pbb", "bp", "bb"]


def play(deal, history):
    env = arenas.make("kuhn_poker_v0")
    env.reset(options={"deal": deal})
    for h in history:
        env.step("bet" if h == "b" else "pass")
    return env


@pytest.mark.parametrize("deal", list(itertools.permutations(range(3), 2)))
def test_payoffs_and_info_states_match_openspiel(deal):
    pyspiel = pytest.importorskip("pyspiel")
    game = pyspiel.load_game("kuhn_poker")
    for history in HISTORIES:
        state = game.new_initial_state()
        state.apply_action(deal[0])
        state.apply_action(deal[1])
        env = arenas.make("kuhn_poker_v0")
        env.reset(options={"deal": deal})
        for h in history:
            agent = env.agent_selection
            assert info_state(env, agent) == state.information_state_string(int(agent[-1]))
            env.step("bet" if h == "b" else "pass")
            state.apply_action(1 if h == "b" else 0)
        assert state.is_terminal() and all(env.terminations.values())
        assert [env.rewards["player_0"], env.rewards["player_1"]] == state.returns()


def test_nash_heuristic_game_value_is_exactly_minus_one_eighteenth():
    """Enumerate the 6 deals and every betting sequence, weighting by the heuristic's probabilities."""

    def value(deal, history):
        env = play(deal, history)
        if all(env.terminations.values()):
            return Fraction(env.rewards["player_0"])
        probs = nash_probs(env.observe(env.agent_selection)["text"])
        return sum(Fraction(probs[a]).limit_denominator(1000) * value(deal, history + a[0]) for a in ("pass", "bet"))

    deals = list(itertools.permutations(range(3), 2))
    assert sum(value(d, "") for d in deals) / len(deals) == Fraction(-1, 18)


def test_invalid_action_penalize_and_fallback():
    env = arenas.make("kuhn_poker_v0")
    env.reset(seed=0)
    env.step("I fold... no wait, I raise the stakes to 1000!! or check?")
    # the largest pot: never a cheaper way out than folding (-1)
    assert env.terminations["player_0"] and env.rewards == {"player_0": -2.0, "player_1": 2.0}
    assert env.infos["player_0"]["invalid_actions"] == 1 and env.infos["player_0"]["valid"] is False
    env = arenas.make("kuhn_poker_v0", invalid_action="fallback")
    env.reset(seed=0)
    env.step("gibberish")
    assert not env.terminations["player_0"] and env.infos["player_0"]["parsed_action"] in ("pass", "bet")
    assert env.infos["player_0"]["invalid_actions"] == 1


def test_aliases():
    env = play((2, 0), "")
    env.step("I check")
    env.step("<answer>raise</answer>")
    env.step("call")
    assert env.rewards["player_0"] == 2
