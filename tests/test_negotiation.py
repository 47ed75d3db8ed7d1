import numpy as np
import pytest
from pettingzoo.test import api_test, seed_test

import arenas
from arenas.games.negotiation import heuristic, parse_action, sample_values
from arenas.play import play_episode

AGENTS = ("player_0", "player_1")
ITEMS = ("book", "hat", "ball")
DEAL = {"counts": [3, 1, 2], "values": {"player_0": [2, 2, 1], "player_1": [0, 4, 3]}}


def script(*moves):
    """A policy that plays ``moves`` in order, whoever asks."""
    it = iter(moves)
    return lambda text, info, rng: next(it)


def test_accepted_deal_pays_each_side_by_its_own_values():
    env = arenas.make("negotiation_v0")
    env.reset(seed=0, options=DEAL)
    env.step("propose 3 0 1")  # player_0 takes 3 books and 1 ball; player_1 gets 1 hat and 1 ball
    assert env.agent_selection == "player_1" and not any(env.terminations.values())
    assert "worth 7 to you" in env.observe("player_1")["text"]
    env.step("<answer>accept</answer>")
    assert all(env.terminations.values())
    assert env.rewards == {"player_0": 3 * 2 + 1 * 1.0, "player_1": 4 + 3.0}
    assert "The game is over: deal; you got 0 books, 1 hat, 1 ball." in env.observe("player_1")["text"]


def test_counter_offer_replaces_the_offer_and_deal_goes_to_the_last_proposer():
    env = arenas.make("negotiation_v0")
    env.reset(seed=0, options=DEAL)
    env.step("propose 3 1 2")
    env.step("propose 0 1 2")  # player_1 takes the hat and both balls
    env.step("deal")
    assert env.rewards == {"player_0": 6.0, "player_1": 10.0}


def test_no_deal_after_max_turns_pays_nothing():
    env = arenas.make("negotiation_v0", max_turns=4)
    greedy = lambda text, info, rng: "propose " + " ".join(str(c) for c in env.unwrapped.counts)  # noqa: E731
    ep = play_episode(env, {a: greedy for a in AGENTS}, seed=2)
    assert len(ep.steps) == 4 and ep.returns == {a: 0.0 for a in AGENTS}
    assert env.unwrapped.deal is None


def test_accept_is_legal_only_against_the_other_players_proposal():
    env = arenas.make("negotiation_v0")
    env.reset(seed=0, options=DEAL)
    _, _, _, _, info = env.last()
    assert "accept" not in info["legal_actions"] and len(info["legal_actions"]) == 4 * 2 * 3
    assert "or accept" not in env.observe("player_0")["text"]
    env.step("propose 1 1 1")
    assert env.infos["player_1"]["legal_actions"][0] == "accept"
    assert "Legal actions: propose A B C with 0<=A<=3, 0<=B<=1, 0<=C<=2, or accept." in env.observe("player_1")["text"]
    vocab = env.action_space("player_1").vocabulary
    assert len(vocab) == 1 + 5**3 and env.observe("player_1")["action_mask"].sum() == 1 + 24


@pytest.mark.parametrize("seed", range(40))
def test_valuations_sum_to_total_value_and_stay_private(seed):
    env = arenas.make("negotiation_v0", num_item_types=4, max_count=3, total_value=12)
    env.reset(seed=seed)
    base = env.unwrapped
    assert all(1 <= c <= 3 for c in base.counts)
    for a in AGENTS:
        assert all(v >= 0 for v in base.values[a])
        assert sum(c * v for c, v in zip(base.counts, base.values[a])) == 12
    # an agent's observation does not change when only the other agent's values change
    for me, other in (AGENTS, AGENTS[::-1]):
        env.reset(seed=seed)
        text = env.observe(me)["text"]
        swapped = {me: base.values[me], other: base.values[me]}
        env.reset(seed=seed, options={"counts": base.counts, "values": swapped})
        assert env.observe(me)["text"] == text


def test_sampling_always_terminates_even_when_the_total_is_hard_to_reach():
    rng = np.random.default_rng(0)
    assert sample_values(rng, [2, 4], 5) is None  # odd total from even counts: no valuation exists
    env = arenas.make("negotiation_v0", num_item_types=2, max_count=4, total_value=7)
    for seed in range(30):
        env.reset(seed=seed)
        b = env.unwrapped
        assert all(sum(c * v for c, v in zip(b.counts, b.values[a])) == 7 for a in AGENTS)
    values = [tuple(sample_values(rng, [1, 2, 1], 4)) for _ in range(4000)]
    counts = {v: values.count(v) for v in set(values)}
    assert len(counts) == 9 and min(counts.values()) > 300  # uniform over the 9 valuations


@pytest.mark.parametrize("text, expected", [
    ("propose 2 1 0", "propose 2 1 0"),
    ("Propose: 2, 1, 0", "propose 2 1 0"),
    ("I propose (2,1,0)", "propose 2 1 0"),
    ("propose books=2 hats=1 balls=0", "propose 2 1 0"),
    ("propose 2 books, 1 hat, 0 balls", "propose 2 1 0"),
    ("I have 3 books and 2 balls, so I propose 1 0 2.", "propose 1 0 2"),
    ("Thinking...\n<answer>propose 0 0 1</answer>", "propose 0 0 1"),
    ("<answer>1 1 1</answer>", "propose 1 1 1"),
    ("accept", "accept"),
    ("deal", "accept"),
    ("Deal!", "accept"),
    ("I accept your offer", "accept"),
    ("Answer: accept", "accept"),
    ("no deal", None),
    ("I do not accept", None),
    ("propose 2 1", None),
    ("propose books=2 hats=1", None),
    ("hello", None),
    ("", None),
])
def test_parser(text, expected):
    assert parse_action(text, ITEMS) == expected


def test_illegal_split_and_early_accept_are_invalid():
    env = arenas.make("negotiation_v0")
    env.reset(seed=0, options=DEAL)
    env.step("accept")  # nothing on the table yet
    assert not env.infos["player_0"]["valid"]
    assert env.rewards == {"player_0": -1.0, "player_1": 0.0} and all(env.terminations.values())
    env.reset(seed=0, options=DEAL)
    env.step("propose 4 0 0")  # only 3 books
    assert env.rewards["player_0"] == -1.0


def test_invalid_action_under_penalize_ends_with_minus_one_for_the_offender():
    env = arenas.make("negotiation_v0")
    ep = play_episode(env, {"player_0": script("propose 1 1 1"), "player_1": script("I want more books")}, seed=0)
    assert ep.returns == {"player_0": 0.0, "player_1": -1.0} and ep.invalid == {"player_0": 0, "player_1": 1}
    env = arenas.make("negotiation_v0", invalid_action="fallback")
    ep = play_episode(env, {a: lambda t, i, r: "hmm" for a in AGENTS}, seed=0)
    assert all(n >= 1 for n in ep.invalid.values())


def test_heuristic_reaches_deals_and_both_sides_gain():
    env = arenas.make("negotiation_v0")
    returns, deals = [], 0
    for seed in range(100):
        ep = play_episode(env, {a: heuristic for a in AGENTS}, seed=seed)
        assert all(s.valid for s in ep.steps)
        returns.append([ep.returns[a] for a in AGENTS])
        deals += env.unwrapped.deal is not None
    assert deals >= 80
    assert all(m > 0 for m in np.mean(returns, axis=0))


def test_heuristic_reads_the_text_and_concedes_over_time():
    env = arenas.make("negotiation_v0")
    env.reset(seed=0, options=DEAL)
    obs, _, _, _, info = env.last()
    rng = np.random.default_rng(0)
    assert heuristic(obs["text"], info, rng) == "propose 3 1 0"  # keeps books and the hat, gives the cheap balls
    env.step("propose 3 1 2")
    obs, _, _, _, info = env.last()
    assert heuristic(obs["text"], info, rng) == "propose 0 1 1"  # worthless offer: counter, conceding a ball
    env.step("propose 0 1 1")
    obs, _, _, _, info = env.last()
    assert heuristic(obs["text"], info, rng) == "accept"  # 3 books and a ball = 7 >= 0.58 * 10


def test_prompt_is_zero_shot_and_mentions_talk():
    env = arenas.make("negotiation_v0")
    env.reset(seed=0, options=DEAL)
    env.step("propose 2 0 1")
    text = env.observe("player_1")["text"]
    for needle in ("Pool: 3 books, 1 hat, 2 balls.", "Your values: book 0, hat 4, ball 3 (total 10).",
                   "Turn 1: player_0 proposed to take 2 books, 0 hats, 1 ball, leaving you 1 book, 1 hat, 1 ball.",
                   "Turn 2 of 6", "worth 7 to you", "<message>", "<answer>", "You are player_1"):
        assert needle in text
    assert "2, 2, 1" not in text and "book 2" not in text  # player_0's values stay hidden


@pytest.mark.parametrize("channel", [None, {"topology": "complete", "drop": 0.5, "noise": 0.2}, False],
                         ids=["default", "noisy", "none"])
def test_pettingzoo_api_and_seed(channel):
    assert isinstance(arenas.make("negotiation_v0", channel=channel).unwrapped, arenas.TextArenaEnv)
    api_test(arenas.make("negotiation_v0", channel=channel), num_cycles=50)
    seed_test(lambda: arenas.make("negotiation_v0", channel=channel), num_cycles=30)


def test_parameter_validation():
    with pytest.raises(ValueError, match="num_item_types"):
        arenas.make("negotiation_v0", num_item_types=7)
    with pytest.raises(ValueError, match="max_turns"):
        arenas.make("negotiation_v0", max_turns=0)
    env = arenas.make("negotiation_v0")
    with pytest.raises(ValueError, match="do not price the pool"):
        env.reset(options={"counts": [1, 1, 1], "values": {"player_0": [1, 1, 1]}})
    with pytest.raises(ValueError, match="counts"):
        env.reset(options={"counts": [0, 5, 1]})
