import numpy as np
import pytest
from pettingzoo.test import api_test, parallel_api_test, seed_test

import arenas
from arenas.games.iterated_pd import heuristic as tft
from arenas.play import play_episode

AGENTS = ("player_0", "player_1")


def always(move):
    return lambda text, info, rng: move if info["legal_actions"] else ""


@pytest.mark.parametrize("moves, expected", [
    (("cooperate", "cooperate"), (3, 3)), (("cooperate", "defect"), (0, 5)),
    (("defect", "cooperate"), (5, 0)), (("defect", "defect"), (1, 1)),
])
def test_one_round_payoffs(moves, expected):
    env = arenas.make("iterated_pd_v0", rounds=1)
    ep = play_episode(env, {a: always(m) for a, m in zip(AGENTS, moves)}, seed=0)
    assert tuple(ep.returns[a] for a in AGENTS) == expected


def test_custom_payoffs_and_aliases():
    env = arenas.make("iterated_pd_v0", rounds=2, payoffs={"temptation": 7, "sucker": -2})
    ep = play_episode(env, {"player_0": lambda t, i, r: "<answer>C</answer>", "player_1": lambda t, i, r: "I betray"}, seed=0)
    assert ep.returns == {"player_0": -4.0, "player_1": 14.0}
    assert all(s.valid for s in ep.steps)


@pytest.mark.parametrize("n", [1, 5, 8])
def test_tit_for_tat(n):
    env = arenas.make("iterated_pd_v0", rounds=n)
    assert play_episode(env, {a: tft for a in AGENTS}, seed=1).returns == {a: 3.0 * n for a in AGENTS}
    ep = play_episode(env, {"player_0": tft, "player_1": always("defect")}, seed=1)
    assert ep.returns == {"player_0": 0.0 + (n - 1) * 1.0, "player_1": 5.0 + (n - 1) * 1.0}
    assert [s.parsed_action for s in ep.steps if s.agent == "player_0"] == ["cooperate"] + ["defect"] * (n - 1)


def test_moves_are_hidden_within_a_round_and_shown_after():
    env = arenas.make("iterated_pd_v0", rounds=2)
    env.reset(seed=0)
    before = env.observe("player_1")["text"]
    env.step("defect")  # player_0
    assert env.agent_selection == "player_1" and env.rewards == {a: 0.0 for a in AGENTS}
    text = env.observe("player_1")["text"]
    assert text == before and "defected" not in text and "Round 1 of 2" in text
    env.step("cooperate")
    assert env.rewards == {"player_0": 5.0, "player_1": 0.0}
    assert "Round 1: you cooperated, player_0 defected; you got 0, they got 5." in env.observe("player_1")["text"]
    assert "Round 1: you defected, player_1 cooperated; you got 5, they got 0." in env.observe("player_0")["text"]


def test_both_players_see_their_legal_moves_at_the_start_of_a_cycle():
    env = arenas.make("iterated_pd_v0")
    env.reset(seed=0)
    for a in AGENTS:
        assert env.observe(a)["action_mask"].tolist() == [1, 1]
        assert env.infos[a]["legal_actions"] == ["cooperate", "defect"]


@pytest.mark.parametrize("channel", [None, {"topology": "complete"}], ids=["default", "complete channel"])
@pytest.mark.parametrize("talk", [False, True], ids=["silent", "talk"])
def test_pettingzoo_api_and_seed(talk, channel):
    api_test(arenas.make("iterated_pd_v0", talk=talk, channel=channel), num_cycles=50)
    seed_test(lambda: arenas.make("iterated_pd_v0", talk=talk, channel=channel), num_cycles=30)
    parallel_api_test(arenas.make_parallel("iterated_pd_v0", talk=talk, channel=channel), num_cycles=50)


@pytest.mark.parametrize("talk", [False, True], ids=["silent", "talk"])
def test_parallel_env_is_deterministic_step_by_step(talk):
    def run(seed):
        noisy = {"topology": "complete", "drop": 0.3, "noise": 0.3}
        env = arenas.make_parallel("iterated_pd_v0", rounds=4, talk=talk, channel=noisy if talk else None)
        obs, infos = env.reset(seed=seed)
        trace, rng = [repr((obs, infos))], np.random.default_rng(5)  # repr now: infos are mutated later
        while env.agents:
            actions = {a: str(rng.choice(infos[a]["legal_actions"])) if infos[a]["legal_actions"]
                       else f"hi {rng.integers(100)}" for a in env.agents}
            obs, rewards, terms, truncs, infos = env.step(actions)
            assert all(info["valid"] for info in infos.values())  # both always knew their legal moves
            trace.append(repr((obs, dict(rewards), terms, truncs, infos)))
        return trace

    a, b = run(3), run(3)
    assert len(a) == (9 if talk else 5)
    assert a == b  # observations (text and mask), rewards, terminations, truncations, infos
    assert (a != run(4)) == talk  # the game has no chance moves; a noisy channel's follow the seed


def test_parallel_rewards_per_round():
    env = arenas.make_parallel("iterated_pd_v0", rounds=2)
    env.reset(seed=0)
    _, rewards, terms, _, _ = env.step({"player_0": "defect", "player_1": "cooperate"})
    assert dict(rewards) == {"player_0": 5.0, "player_1": 0.0} and not any(terms.values())
    _, rewards, terms, _, _ = env.step({"player_0": "cooperate", "player_1": "cooperate"})
    assert dict(rewards) == {"player_0": 3.0, "player_1": 3.0} and all(terms.values())
    assert not env.agents


def test_talk_alternates_with_moves_and_messages_arrive_before_the_move():
    env = arenas.make("iterated_pd_v0", rounds=2, talk=True)
    assert env.unwrapped.requires_channel and not arenas.make("iterated_pd_v0").unwrapped.requires_channel
    env.reset(seed=0)
    phases = []
    for agent in env.agent_iter():
        obs, _, term, _, info = env.last()
        if term:
            env.step(None)
            continue
        phases.append(info["phase"])
        if info["phase"] == "talk":
            assert "talk first" in obs["text"] and obs["action_mask"].sum() == 0
            env.step(f"secret from {agent}")
        else:
            other = AGENTS[agent == "player_0"]
            assert f'from {other}: "secret from {other}"' in obs["text"]
            env.step("cooperate")
    assert phases == ["talk", "talk", "act", "act"] * 2
    assert env.unwrapped.history == [("cooperate", "cooperate")] * 2


def test_talk_turn_prompt_is_not_delivered_within_the_talk_cycle():
    env = arenas.make("iterated_pd_v0", talk=True)
    env.reset(seed=0)
    env.step("hello")
    assert "hello" not in env.observe("player_1")["text"]


def test_invalid_move_ends_the_episode_at_the_end_of_the_round():
    env = arenas.make("iterated_pd_v0")
    env.reset(seed=0)
    env.step("maybe")  # player_0: unparseable
    assert not env.infos["player_0"]["valid"] and not any(env.terminations.values())
    env.step("defect")
    assert all(env.terminations.values())
    assert env.rewards == {"player_0": -1.0, "player_1": 0.0}
    fallback = arenas.make("iterated_pd_v0", rounds=1, invalid_action="fallback")
    ep = play_episode(fallback, {a: lambda t, i, r: "???" for a in AGENTS}, seed=0)
    assert ep.invalid == {a: 1 for a in AGENTS} and sum(ep.returns.values()) in (2.0, 5.0, 6.0)


@pytest.mark.parametrize("kwargs, match", [
    ({"payoffs": {"reward": 6}}, "temptation > reward"),
    ({"payoffs": {"punishment": -1}}, "punishment > sucker"),
    ({"payoffs": {"rewrd": 3}}, "unknown payoff keys"),
    ({"rounds": 0}, "rounds"),
])
def test_parameter_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        arenas.make("iterated_pd_v0", **kwargs)


def test_prompt_is_zero_shot():
    env = arenas.make("iterated_pd_v0", rounds=3)
    env.reset(seed=0)
    text = env.observe("player_0")["text"]
    for needle in ("prisoner's dilemma", "both cooperate: 3, 3", "you cooperate, they defect: 0, 5",
                   "Round 1 of 3", "Legal actions: cooperate, defect.", "<answer>", "You are player_0"):
        assert needle in text
