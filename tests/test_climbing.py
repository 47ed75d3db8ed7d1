import numpy as np
import pytest
from pettingzoo.test import api_test, parallel_api_test, seed_test

import arenas
from arenas.games.climbing import ACTIONS, PAYOFFS
from arenas.games.climbing import heuristic as optimum
from arenas.play import play_episode

AGENTS = ("agent_0", "agent_1")
MATRIX = {("a", "a"): 11, ("a", "b"): -30, ("a", "c"): 0,
          ("b", "a"): -30, ("b", "b"): 7, ("b", "c"): 6,
          ("c", "a"): 0, ("c", "b"): 0, ("c", "c"): 5}


def always(move):
    return lambda text, info, rng: move


@pytest.mark.parametrize("normalize", [True, False], ids=["normalized", "raw"])
@pytest.mark.parametrize("moves", list(MATRIX))
def test_every_cell_gives_the_shared_reward(moves, normalize):
    env = arenas.make("climbing_v0", normalize=normalize)
    ep = play_episode(env, {a: always(m) for a, m in zip(AGENTS, moves)}, seed=0)
    expected = MATRIX[moves] / (30 if normalize else 1)
    assert ep.returns == {a: pytest.approx(expected) for a in AGENTS}
    assert all(s.valid for s in ep.steps) and len(ep.steps) == 2


def test_the_default_table_is_the_climbing_game():
    assert [[MATRIX[(r, c)] for c in ACTIONS] for r in ACTIONS] == [list(row) for row in PAYOFFS]


def test_parallel_env_gives_both_agents_the_same_payoff():
    env = arenas.make_parallel("climbing_v0", normalize=False)
    obs, infos = env.reset(seed=0)
    assert set(obs) == set(AGENTS) and all(infos[a]["legal_actions"] == ACTIONS for a in AGENTS)
    _, rewards, terms, _, _ = env.step({"agent_0": "b", "agent_1": "c"})
    assert dict(rewards) == {"agent_0": 6.0, "agent_1": 6.0} and all(terms.values())
    assert not env.agents


def test_moves_are_hidden_until_both_moved():
    env = arenas.make("climbing_v0", rounds=2, normalize=False)
    env.reset(seed=0)
    before = env.observe("agent_1")["text"]
    env.step("a")  # agent_0
    assert env.agent_selection == "agent_1" and env.rewards == {a: 0.0 for a in AGENTS}
    assert env.observe("agent_1")["text"] == before and "chose" not in before
    env.step("b")
    assert env.rewards == {a: -30.0 for a in AGENTS}
    assert "Round 1: you chose b, agent_0 chose a; you both got -30." in env.observe("agent_1")["text"]
    assert "Round 1: you chose a, agent_1 chose b; you both got -30." in env.observe("agent_0")["text"]


def test_rounds_sum_payoffs():
    env = arenas.make("climbing_v0", rounds=3, normalize=False)
    moves = iter([("c", "c"), ("b", "b"), ("a", "a")])
    plan = {}

    def policy(agent):
        def act(text, info, rng):
            if agent == "agent_0":
                plan["now"] = next(moves)
            return plan["now"][AGENTS.index(agent)]
        return act

    ep = play_episode(env, {a: policy(a) for a in AGENTS}, seed=0)
    assert ep.returns == {a: 5.0 + 7.0 + 11.0 for a in AGENTS}
    assert env.unwrapped.history == [("c", "c"), ("b", "b"), ("a", "a")]
    normalized = play_episode(arenas.make("climbing_v0", rounds=4), {a: always("a") for a in AGENTS}, seed=0)
    assert normalized.returns == {a: pytest.approx(4 * 11 / 30) for a in AGENTS}


def test_invalid_move_ends_the_episode_at_the_end_of_the_round():
    env = arenas.make("climbing_v0", rounds=3)
    env.reset(seed=0)
    env.step("maybe")  # agent_0: unparseable
    assert not env.infos["agent_0"]["valid"] and not any(env.terminations.values())
    assert env.agent_selection == "agent_1"
    env.step("a")
    assert all(env.terminations.values())
    assert env.rewards == {"agent_0": -1.0, "agent_1": 0.0}
    both = play_episode(arenas.make("climbing_v0"), {a: always("???") for a in AGENTS}, seed=0)
    assert both.returns == {a: -1.0 for a in AGENTS} and both.invalid == {a: 1 for a in AGENTS}
    fallback = arenas.make("climbing_v0", invalid_action="fallback", normalize=False)
    ep = play_episode(fallback, {a: always("???") for a in AGENTS}, seed=0)
    assert ep.invalid == {a: 1 for a in AGENTS} and ep.returns["agent_0"] == ep.returns["agent_1"]
    assert ep.returns["agent_0"] in set(MATRIX.values())


@pytest.mark.parametrize("text", ["A", "a", "<answer>Option A</answer>", "action A", "I choose option a.",
                                  "Answer: choice A"])
def test_aliases(text):
    env = arenas.make("climbing_v0")
    ep = play_episode(env, {"agent_0": always(text), "agent_1": always("<answer>A</answer>")}, seed=0)
    assert all(s.valid for s in ep.steps) and ep.steps[0].parsed_action == "a"
    assert ep.returns == {a: pytest.approx(11 / 30) for a in AGENTS}


def test_heuristic_plays_the_social_optimum():
    ep = play_episode(arenas.make("climbing_v0", normalize=False), {a: optimum for a in AGENTS}, seed=0)
    assert ep.returns == {a: 11.0 for a in AGENTS}
    custom = [[1, 0, 0], [0, 2, 0], [0, 0, 9]]
    ep = play_episode(arenas.make("climbing_v0", payoffs=custom), {a: optimum for a in AGENTS}, seed=0)
    assert [s.parsed_action for s in ep.steps] == ["c", "c"] and ep.returns == {a: 1.0 for a in AGENTS}


def test_custom_payoffs_are_seen_from_each_side():
    custom = [[1, 2, 3], [4, 5, 6], [7, 8, -10]]
    env = arenas.make("climbing_v0", payoffs=custom)
    env.reset(seed=0)
    assert "  you a:      1     2     3" in env.observe("agent_0")["text"]
    assert "  you a:      1     4     7" in env.observe("agent_1")["text"]  # the column player's rows
    env.step("a")
    env.step("c")
    assert env.rewards == {a: pytest.approx(3 / 10) for a in AGENTS}


@pytest.mark.parametrize("kwargs, match", [
    ({"payoffs": [[1, 2], [3, 4]]}, "3x3"),
    ({"payoffs": [[1, 2, 3], [4, 5, 6], [7, 8]]}, "row 2"),
    ({"payoffs": [[1, 2, 3], [4, "x", 6], [7, 8, 9]]}, "finite numbers"),
    ({"payoffs": [[1, 2, 3], [4, float("nan"), 6], [7, 8, 9]]}, "finite numbers"),
    ({"payoffs": "abc"}, "3x3"),
    ({"rounds": 0}, "rounds"),
])
def test_parameter_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        arenas.make("climbing_v0", **kwargs)


def test_prompt_is_zero_shot():
    env = arenas.make("climbing_v0")
    env.reset(seed=0)
    text = env.observe("agent_1")["text"]
    for needle in ("cooperative game", "same points", "at the same time", "  you b:    -30     7     0",
                   "You are agent_1", "Round 1 of 1", "Legal actions: a, b, c.", "<answer>"):
        assert needle in text
    assert env.observe("agent_0")["action_mask"].tolist() == [1, 1, 1]


@pytest.mark.parametrize("rounds", [1, 3])
def test_pettingzoo_api_and_seed(rounds):
    api_test(arenas.make("climbing_v0", rounds=rounds), num_cycles=50)
    seed_test(lambda: arenas.make("climbing_v0", rounds=rounds), num_cycles=30)
    parallel_api_test(arenas.make_parallel("climbing_v0", rounds=rounds), num_cycles=50)


def test_parallel_env_is_deterministic():
    def run(seed):
        env = arenas.make_parallel("climbing_v0", rounds=4)
        obs, infos = env.reset(seed=seed)
        trace, rng = [repr((obs, infos))], np.random.default_rng(5)
        while env.agents:
            obs, rewards, terms, truncs, infos = env.step({a: str(rng.choice(ACTIONS)) for a in env.agents})
            trace.append(repr((obs, dict(rewards), terms, truncs, infos)))
        return trace

    a = run(3)
    assert len(a) == 5 and a == run(3)
