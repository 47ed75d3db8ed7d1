import math

import numpy as np
import pytest
from pettingzoo.test import api_test, seed_test

import arenas
from arenas.games import signalling
from arenas.play import play_episode
from arenas.scripted import random_policy

H = signalling.heuristic
K8 = dict(num_objects=8, num_attributes=3, num_values=2, vocab_size=2, message_length=3)


def success(env, policies, seeds) -> float:
    return float(np.mean([play_episode(env, policies, seed=s).returns["listener"] for s in seeds]))


@pytest.mark.parametrize("kwargs", [{}, K8], ids=["defaults", "K8"])
def test_heuristic_pair_always_succeeds(kwargs):
    env = arenas.make("signalling_v0", **kwargs)
    assert success(env, {"speaker": H, "listener": H}, range(200)) == 1.0


def test_mixed_radix_code_when_letters_do_not_fit():
    # 3 attributes do not fit 2 symbols: the object index is sent in base 8 (64 codes >= 27 objects)
    env = arenas.make("signalling_v0", num_objects=6, num_attributes=3, num_values=3, vocab_size=8, message_length=2)
    assert success(env, {"speaker": H, "listener": H}, range(100)) == 1.0


def test_random_listener_is_at_chance():
    env = arenas.make("signalling_v0")
    n, p = 2000, 1 / 4
    rate = success(env, {"speaker": H, "listener": random_policy}, range(n))
    assert abs(rate - p) < 4 * math.sqrt(p * (1 - p) / n)


def test_listener_order_is_shuffled():
    env = arenas.make("signalling_v0")
    positions, same_as_speaker = set(), 0
    for seed in range(40):
        env.reset(seed=seed)
        base = env.unwrapped
        positions.add(base.order.index(base.target))
        same_as_speaker += base.order == list(range(base.num_objects))
    assert positions == {0, 1, 2, 3} and same_as_speaker < 10


def test_objects_distinct_and_listed_for_both():
    env = arenas.make("signalling_v0", num_objects=16)  # all 16 objects of the 4x4 space
    env.reset(seed=1)
    base = env.unwrapped
    assert len(set(base.objects)) == 16
    listener = base.observe("listener")["text"]
    for obj in base.objects:
        assert base.describe(obj) in listener and base.describe(obj) in base.observe("speaker")["text"]


def test_options_fix_objects_and_target():
    env = arenas.make("signalling_v0")
    env.reset(seed=0, options={"objects": [(0, 0), (1, 0), (0, 1), (3, 3)], "target": 3})
    assert "yellow star   <-- TARGET" in env.observe("speaker")["text"]
    with pytest.raises(ValueError):
        env.reset(seed=0, options={"objects": [(0, 0), (0, 0), (0, 1), (3, 3)]})


@pytest.mark.parametrize("text,expected", [
    ("ab", "ab"), ("A B", "ab"), ("I send 'ha'.\n<answer> h-a </answer>", "ha"), ("Answer: \"cd\"", "cd"),
    ("abc", None), ("zz", None), ("", None),
])
def test_speaker_parse(text, expected):
    env = signalling.raw_env()
    env.reset(seed=0)
    assert env._parse("speaker", text, env.vocabularies["speaker"]) == expected


@pytest.mark.parametrize("text", ["3", "object 3", "<answer>3</answer>", "I pick 3."])
def test_listener_parse(text):
    env = arenas.make("signalling_v0")
    env.reset(seed=0)
    env.step("ab")
    env.step(text)
    assert env.unwrapped.choice == env.unwrapped.order[2]


def test_invalid_speaker_penalized():
    env = arenas.make("signalling_v0")
    env.reset(seed=0)
    env.step("hello there!")
    assert all(env.terminations.values())
    assert env.rewards == {"speaker": -1.0, "listener": 0.0}
    assert env.infos["speaker"]["invalid_actions"] == 1
    assert "invalid" in env.observe("listener")["text"]


def test_invalid_speaker_fallback_continues():
    env = arenas.make("signalling_v0", invalid_action="fallback")
    env.reset(seed=0)
    env.step("hello there!")
    assert env.agent_selection == "listener" and not any(env.terminations.values())
    assert env.infos["speaker"]["invalid_actions"] == 1 and not env.infos["speaker"]["valid"]
    assert env.unwrapped.message in env.unwrapped.vocabularies["speaker"]
    env.step("1")
    assert all(env.terminations.values()) and env.rewards["speaker"] == env.rewards["listener"] in (0.0, 1.0)


@pytest.mark.parametrize("kwargs", [
    dict(num_objects=1), dict(num_objects=17), dict(num_values=7), dict(num_attributes=5), dict(vocab_size=27),
    dict(vocab_size=8, message_length=5), dict(message_length=0),
])
def test_parameter_validation(kwargs):
    with pytest.raises(ValueError):
        signalling.raw_env(**kwargs)


def test_vocabularies_and_masks():
    env = signalling.raw_env(vocab_size=3, message_length=2, num_objects=5)
    assert env.vocabularies["speaker"][:4] == ["aa", "ab", "ac", "ba"] and len(env.vocabularies["speaker"]) == 9
    assert env.vocabularies["listener"] == ["1", "2", "3", "4", "5"]
    env.reset(seed=0)
    assert env.observe("speaker")["action_mask"].sum() == 9 and env.observe("listener")["action_mask"].sum() == 0


def test_pettingzoo_api_and_seed():
    api_test(arenas.make("signalling_v0"), num_cycles=50)
    seed_test(lambda: arenas.make("signalling_v0"), num_cycles=50)


def test_lewis_original_game_shares_positions_and_the_heuristic_names_them():
    env = arenas.make("signalling_v0", num_objects=8, num_attributes=2, num_values=4, vocab_size=8, message_length=1, shuffle=False)
    h = arenas.scripted("signalling_v0", "heuristic")
    for seed in range(40):
        env.reset(seed=seed)
        rng = np.random.default_rng(seed)
        speaker = env.observe("speaker")["text"]
        position = env.unwrapped.target + 1
        assert f"Target: object {position} (" in speaker and env.infos["speaker"]["private"].startswith(f"{position} ")
        message = h(speaker, {}, rng)
        assert message == "abcdefgh"[position - 1]  # 8 positions, 8 letters: the code is the position
        env.step(f"<answer>{message}</answer>")
        env.step(h(env.observe("listener")["text"], {}, rng))
        assert env.rewards["listener"] == 1.0


def test_fixed_objects_leave_only_the_target_to_change():
    def drawn(**fixed):
        env = arenas.make("signalling_v0", num_objects=8, num_attributes=2, num_values=3, vocab_size=24, message_length=1,
                          shuffle=False, **fixed)
        objects, targets = set(), set()
        for seed in range(40):
            env.reset(seed=seed)
            objects.add(tuple(env.unwrapped.objects))
            targets.add(env.unwrapped.target)
        return objects, targets

    objects, targets = drawn(fixed_objects=True)
    assert len(objects) == 1 and len(targets) == 8  # Lewis's 8 states: one object set, every target drawn
    assert len(drawn()[0]) > 1  # by default each episode draws its objects
