import numpy as np
import pytest
from pettingzoo.test import api_test, parallel_api_test, seed_test

import arenas
from arenas.games import consensus
from arenas.play import play_episode

H = consensus.heuristic


def team_reward(seeds=range(100), **kwargs) -> float:
    env = arenas.make("consensus_v0", **kwargs)
    policies = {a: H for a in env.possible_agents}
    rewards = []
    for s in seeds:
        ep = play_episode(env, policies, seed=s)
        assert len(set(ep.returns.values())) == 1  # shared reward
        rewards.append(ep.returns["agent_0"])
    return float(np.mean(rewards))


def test_parallel_episode():
    env = arenas.make_parallel("consensus_v0", num_agents=3, talk_rounds=1)
    obs, infos = env.reset(seed=0)
    assert set(obs) == {"agent_0", "agent_1", "agent_2"} and "Round 1 of 2 (talk round" in obs["agent_1"]["text"]
    values = env.unwrapped.values
    obs, rewards, terms, truncs, infos = env.step({f"agent_{i}": f"I have {v}" for i, v in enumerate(values)})
    assert not any(terms.values()) and all(r == 0 for r in rewards.values())
    assert f'from agent_2: "I have {values[2]}"' in obs["agent_0"]["text"]  # delivered at the next round
    answers = {"agent_0": str(sum(values)), "agent_1": f"<answer>{sum(values)}</answer>", "agent_2": str(sum(values) + 1)}
    obs, rewards, terms, truncs, infos = env.step(answers)
    assert all(terms.values()) and rewards == {a: pytest.approx(2 / 3) for a in answers}
    assert "2 of 3 agents were right" in obs["agent_2"]["text"]


@pytest.mark.parametrize("talk_rounds", [1, 2])
def test_heuristic_through_parallel_api(talk_rounds):
    env = arenas.make_parallel("consensus_v0", num_agents=5, talk_rounds=talk_rounds, channel={"topology": "star"})
    obs, infos = env.reset(seed=3)
    rng = np.random.default_rng(0)
    while env.agents:
        obs, rewards, terms, truncs, infos = env.step({a: H(obs[a]["text"], infos[a], rng) for a in env.agents})
    base = env.unwrapped
    assert base.reports["agent_0"] == base.answer  # the centre hears everyone after one round
    assert (rewards["agent_0"] == 1.0) == (talk_rounds == 2)  # the leaves need a second hop (on this seed)


def test_heuristic_team_wins_on_complete_graph():
    assert team_reward(range(50)) == 1.0
    assert team_reward(range(50), num_agents=5, num_values=20, talk_rounds=1) == 1.0


def test_topology_matters():
    assert team_reward(num_agents=6, talk_rounds=1) == 1.0
    assert team_reward(num_agents=6, talk_rounds=1, channel={"topology": "line"}) <= 0.5
    assert team_reward(num_agents=6, talk_rounds=5, channel={"topology": "line", "bandwidth": 200}) == 1.0


def test_directed_ring_needs_more_rounds():
    ring, one_way = {"topology": "ring"}, {"topology": "ring", "directed": True}
    assert team_reward(num_agents=6, talk_rounds=3, channel=ring) == 1.0  # diameter 3
    assert team_reward(num_agents=6, talk_rounds=3, channel=one_way) <= 0.5  # diameter 5
    assert team_reward(num_agents=6, talk_rounds=5, channel=one_way) == 1.0


def test_messages_never_arrive_within_the_round():
    env = arenas.make("consensus_v0", talk_rounds=2)
    speak = {a: (lambda a: lambda text, info, rng: f"hello from {a}")(a) for a in env.possible_agents}
    steps = play_episode(env, speak, seed=0).steps
    round1, round2 = steps[:4], steps[4:8]
    assert [s.agent for s in round1] == ["agent_0", "agent_1", "agent_2", "agent_3"]
    for s in round1:
        assert "No messages received yet." in s.observation and "hello" not in s.observation
        assert s.messages_delivered == []
    for s in round2:
        senders = {r["sender"] for r in s.messages_delivered}
        assert senders == set(env.possible_agents) - {s.agent}
        assert all(f'[turn 1] from {a}: "hello from {a}"' in s.observation for a in senders)


def test_max_task():
    assert team_reward(range(50), task="max") == 1.0
    env = consensus.raw_env(task="max", num_values=5)
    assert env.vocabularies["agent_0"] == ["0", "1", "2", "3", "4"]
    env.reset(seed=0, options={"values": [1, 4, 0, 2]})
    for a in env.possible_agents[:-1]:
        env.step("hi")
    env.step("hi")  # end of round 1
    assert "Round 2 of 3" in env.observe("agent_0")["text"]
    env.step("")
    for a in env.possible_agents[1:]:
        env.step("")
    for answer in ["4", "4", "3", "<answer>4</answer>"]:
        env.step(answer)
    assert env.rewards == {a: 0.75 for a in env.possible_agents}


def test_vocabulary_masks_and_phases():
    env = consensus.raw_env(num_agents=4, num_values=10, talk_rounds=1)
    assert env.vocabularies["agent_2"] == [str(i) for i in range(37)]
    env.reset(seed=0)
    assert env.observe("agent_0")["action_mask"].sum() == 0 and env.infos["agent_0"]["phase"] == "talk"
    for _ in range(4):
        env.step("anything at all")
    assert env.observe("agent_0")["action_mask"].sum() == 37 and env.infos["agent_0"]["phase"] == "act"
    assert "(report round)" in env.observe("agent_0")["text"]


def test_invalid_report_counts_at_end_of_round():
    env = arenas.make("consensus_v0", num_agents=3, talk_rounds=0, channel=False)
    env.reset(seed=0, options={"values": [1, 2, 3]})
    env.step("no idea")
    assert not any(env.terminations.values()) and env.agent_selection == "agent_1"
    assert env.infos["agent_0"]["invalid_actions"] == 1
    env.step("6")
    env.step("6")
    assert all(env.terminations.values())
    assert env.rewards == {"agent_0": -1.0, "agent_1": 0.0, "agent_2": 0.0}
    par = arenas.make_parallel("consensus_v0", num_agents=3, talk_rounds=0)
    par.reset(seed=0)
    _, rewards, terms, _, _ = par.step({"agent_0": "6", "agent_1": "what?", "agent_2": "6"})
    assert all(terms.values()) and rewards == {"agent_0": 0.0, "agent_1": -1.0, "agent_2": 0.0}


def test_fallback_report():
    env = arenas.make("consensus_v0", talk_rounds=0, invalid_action="fallback", channel=False)
    env.reset(seed=0)
    for _ in range(4):
        env.step("pass")
    assert all(env.terminations.values()) and all(0 <= r <= 1 for r in env.rewards.values())


@pytest.mark.parametrize("kwargs", [dict(num_agents=2), dict(num_values=1), dict(talk_rounds=-1), dict(task="mean")])
def test_parameter_validation(kwargs):
    with pytest.raises(ValueError):
        consensus.raw_env(**kwargs)


def test_channel_is_added_by_default():
    assert isinstance(arenas.make("consensus_v0").env, arenas.ChannelWrapper)


def test_pettingzoo_api_and_seed():
    api_test(arenas.make("consensus_v0"), num_cycles=50)
    api_test(arenas.make("consensus_v0", channel={"topology": "ring", "drop": 0.3}), num_cycles=50)
    api_test(arenas.make("consensus_v0", channel=False), num_cycles=50)
    seed_test(lambda: arenas.make("consensus_v0", channel={"topology": "random", "noise": 0.1}), num_cycles=50)
    parallel_api_test(arenas.make_parallel("consensus_v0", num_agents=5), num_cycles=50)
