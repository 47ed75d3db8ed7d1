"""PettingZoo's own API and seed tests on every arena, with and without a channel."""

import numpy as np
import pytest
from pettingzoo.test import api_test, parallel_api_test, seed_test

import arenas

NOISY = {"topology": "complete", "bandwidth": 16, "drop": 0.3, "noise": 0.2, "delay": 1, "cost": 0.01}
CHANNELS = {"no channel": False, "noisy channel": NOISY}


@pytest.mark.parametrize("channel", CHANNELS.values(), ids=CHANNELS.keys())
@pytest.mark.parametrize("name", arenas.names())
def test_api_and_seed(name, channel):
    if channel is False and getattr(arenas.spec(name).factory, "requires_channel", False):
        channel = None  # talk is the game: the default channel stays
    api_test(arenas.make(name, channel=channel), num_cycles=100)
    seed_test(lambda: arenas.make(name, channel=channel), num_cycles=30)


@pytest.mark.parametrize("name", [n for n in arenas.names() if arenas.spec(n).parallel])
@pytest.mark.parametrize("channel", [None, NOISY], ids=["default", "noisy channel"])
def test_parallel_api_and_multistep_determinism(name, channel):
    parallel_api_test(arenas.make_parallel(name, channel=channel), num_cycles=50)

    def run(seed):
        env = arenas.make_parallel(name, channel=channel)
        obs, infos = env.reset(seed=seed)
        trace = [(obs, infos)]
        rng = np.random.default_rng(123)
        while env.agents:
            actions = {a: f"<message>hello from {a}</message>" + (infos[a]["legal_actions"][rng.integers(len(infos[a]["legal_actions"]))]
                       if infos[a]["legal_actions"] else "") for a in env.agents}
            obs, rewards, terms, truncs, infos = env.step(actions)
            trace.append((obs, rewards, terms, truncs, infos))
        return trace

    a, b, c = run(7), run(7), run(8)
    assert len(a) >= 2
    assert repr(a) == repr(b)
    if channel is not None:  # drops and noise come from the env seed
        assert repr(a) != repr(c)


def test_turn_based_arena_refuses_parallel():
    with pytest.raises(ValueError, match="turn-based"):
        arenas.make_parallel("kuhn_poker_v0")


def test_unknown_arena_and_parameter_errors_are_clear():
    with pytest.raises(KeyError, match="kuhn_poker_v0"):
        arenas.make("kuhn_poker_v1")
    with pytest.raises(TypeError, match="no parameter 'cards'"):
        arenas.make("kuhn_poker_v0", cards=4)


@pytest.mark.parametrize("name", arenas.names())
def test_observation_is_a_zero_shot_prompt(name):
    env = arenas.make(name)
    env.reset(seed=0)
    obs, _, _, _, info = env.last()
    text = obs["text"]
    assert env.observation_space(env.agent_selection).contains(obs)
    assert "<answer>" in text or info["phase"] == "talk"
    if len(info["legal_actions"]) <= 24:  # short lists are spelled out; long ones (messages, proposals) summarised
        assert all(action in text for action in info["legal_actions"])
    # the mask marks exactly the legal actions of the vocabulary; free-text arenas (code) have neither
    vocab = env.action_space(env.agent_selection).vocabulary
    if "action_mask" not in obs:
        assert vocab == [] and info["legal_actions"] == [] and info["phase"] == "write"
        return
    assert [vocab[i] for i in np.flatnonzero(obs["action_mask"])] == sorted(info["legal_actions"], key=vocab.index)


@pytest.mark.parametrize("name", arenas.names())
def test_render_modes(name):
    env = arenas.make(name, render_mode="ansi")
    env.reset(seed=0)
    assert isinstance(env.render(), str) and env.render()


@pytest.mark.parametrize("name", arenas.names())
def test_a_copy_plays_on_alone_and_shares_only_what_describes_the_game(name):
    """Tree credit and counterfactual answers play copies of an arena: a copy's moves leave the original as it
    was, while the spaces and vocabularies, which never change, are shared rather than copied."""
    import copy

    env = arenas.make(name)
    env.reset(seed=3)
    agent, before = env.agent_selection, env.observe(env.agent_selection)["text"]
    twin = copy.deepcopy(env)
    legal = twin.infos[agent].get("legal_actions") or ["hello"]
    twin.step(f"<answer>{legal[-1]}</answer>")
    assert env.agent_selection == agent and env.observe(agent)["text"] == before
    assert twin.agent_selection != agent or twin.observe(agent)["text"] != before
    raw, copied = env.unwrapped, twin.unwrapped
    assert copied.observation_space(agent) is raw.observation_space(agent) and copied.vocabularies is raw.vocabularies
