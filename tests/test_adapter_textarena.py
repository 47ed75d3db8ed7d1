"""TextArena games through the ``textarena:`` adapter: PettingZoo's tests, TextArena's invalid-move rules,
hidden information, private randomness, and clear refusals."""

import random
import re
import sys

import numpy as np
import pytest
from pettingzoo.test import api_test, seed_test

pytest.importorskip("textarena")

import arenas  # noqa: E402
from arenas.adapters.textarena import extract_move, listed_moves, requirements  # noqa: E402

# The games this adapter is tested on: (TextArena id, arena keyword arguments, expected number of agents).
TWO_PLAYER = [
    ("TicTacToe-v0", {}, 2), ("ConnectFour-v0", {}, 2), ("KuhnPoker-v0", {}, 2), ("Nim-v0", {}, 2),
    ("Othello-v0", {}, 2), ("Battleship-v0", {}, 2), ("ColonelBlotto-v0", {}, 2), ("Breakthrough-v0", {}, 2),
    ("IteratedPrisonersDilemma-v0", {}, 2), ("SimpleNegotiation-v0", {}, 2), ("PigDice-v0", {}, 2),
    ("LiarsDice-v0", {}, 2),
]
MULTI_PLAYER = [
    ("ThreePlayerTicTacToe-v0", {}, 3), ("ThreePlayerGOPS-v0", {}, 3), ("ThreePlayerIPD-v0", {}, 3),
    ("SecretMafia-v0", {}, 6), ("Poker-v0", {"num_players": 4}, 4), ("LiarsDice-v0", {"num_players": 3}, 3),
    ("Snake-v0", {"num_players": 3}, 3),
    # every player can be eliminated by invalid moves here: TextArena 0.7.4 would then loop forever
    ("MarketEntryGame-v0", {"num_players": 3}, 3),
]
SINGLE_PLAYER = [("FifteenPuzzle-v0", {}, 1), ("FrozenLake-v0", {}, 1)]
GAMES = TWO_PLAYER + MULTI_PLAYER + SINGLE_PLAYER


def test_the_tried_games_are_at_least_ten_two_and_multi_player_ones():
    assert len({g for g, _, n in TWO_PLAYER + MULTI_PLAYER if n >= 2}) >= 10
    assert any(n > 2 for _, _, n in MULTI_PLAYER)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("env_id,kwargs,players", GAMES, ids=[f"{g}-{n}p" for g, _, n in GAMES])
def test_pettingzoo_api_and_seed(env_id, kwargs, players):
    name = f"textarena:{env_id}"
    env = arenas.make(name, **kwargs)
    assert env.possible_agents == [f"player_{i}" for i in range(players)]
    api_test(env, num_cycles=40)
    seed_test(lambda: arenas.make(name, **kwargs), num_cycles=30)


def play(env, seed, rng_seed=0, max_steps=500):
    """Uniform over the moves the game lists (info["legal_actions"]); returns the trace and final returns."""
    env.reset(seed=seed)
    rng = np.random.default_rng(rng_seed)
    returns = {a: 0.0 for a in env.possible_agents}
    trace = []
    for agent in env.agent_iter(max_steps):
        obs, reward, term, trunc, info = env.last()
        returns[agent] += reward
        if term or trunc:
            env.step(None)
            continue
        legal = info["legal_actions"]
        assert legal, f"{agent}: the game listed no moves"
        move = legal[rng.integers(len(legal))]
        env.step(f"Let me think.\n<answer>{move}</answer>")
        trace.append((agent, obs["text"], move, env.infos[agent]["valid"], dict(env.rewards)))
    return trace, returns


@pytest.mark.parametrize("env_id", ["TicTacToe-v0", "ThreePlayerTicTacToe-v0", "KuhnPoker-v0"])
def test_listed_moves_play_whole_games_validly_with_final_rewards(env_id):
    env = arenas.make(f"textarena:{env_id}")
    for seed in range(3):
        trace, returns = play(env, seed)
        assert trace and all(valid for _, _, _, valid, _ in trace)
        assert not env.agents  # the game ended by itself
        assert all(r in (-1.0, 0.0, 1.0) for r in returns.values())
        if env_id != "ThreePlayerTicTacToe-v0":
            assert sum(returns.values()) == 0  # these TextArena games pay +1 / -1 or a draw


def test_same_seed_same_game_other_seed_other_deal():
    env = arenas.make("textarena:KuhnPoker-v0")
    a, b = play(env, 11)[0], play(env, 11)[0]
    assert a == b
    deals = {play(env, s)[0][0][1] for s in range(6)}  # first observation shows the dealt card
    assert len(deals) > 1


def test_textarena_randomness_does_not_touch_the_global_generators():
    random.seed(5)
    np.random.seed(5)
    expected = (random.random(), np.random.random())
    random.seed(5)
    np.random.seed(5)
    env = arenas.make("textarena:KuhnPoker-v0")
    play(env, 3)
    assert (random.random(), np.random.random()) == expected


def test_invalid_moves_follow_textarena_rules_and_are_reported():
    env = arenas.make("textarena:TicTacToe-v0")
    env.reset(seed=0)
    env.step("I pass")  # no [cell]: TextArena allows one retry
    info = env.infos["player_0"]
    assert info["valid"] is False and "format" in info["invalid_reason"] and info["invalid_actions"] == 1
    assert env.agent_selection == "player_0" and not any(env.terminations.values())
    assert "attempted an invalid move" in env.observe("player_0")["text"]
    env.step("<answer>[4]</answer>")
    assert env.infos["player_0"]["valid"] is True and env.infos["player_0"]["parsed_action"] == "[4]"
    env.step("4")  # a bare move gets TextArena's brackets; cell 4 is taken
    assert env.infos["player_1"]["valid"] is False and "occupied" in env.infos["player_1"]["invalid_reason"]
    env.step("still nonsense")  # second invalid move in a row: player_1 loses
    assert all(env.terminations.values())
    assert env.rewards == {"player_0": 1.0, "player_1": -1.0}
    assert env.infos["player_1"]["invalid_actions"] == 2


def test_observations_are_per_player_and_keep_hidden_cards_hidden():
    env = arenas.make("textarena:KuhnPoker-v0")
    env.reset(seed=4)
    first = env.agent_selection
    other = next(a for a in env.possible_agents if a != first)
    mine, theirs = env.observe(first)["text"], env.observe(other)["text"]
    assert "It is your turn" in mine and "<answer>" in mine and "It is not your turn" in theirs
    cards = lambda text: set(re.findall(r"Your card is: '(.)'", text))  # noqa: E731
    assert len(cards(mine)) == 1 and len(cards(theirs)) == 1  # each sees only its own card
    assert cards(mine) != cards(theirs)  # dealt without replacement
    assert env.infos[first]["legal_actions"] == ["[check]", "[bet]"] and env.infos[first]["phase"] == "write"
    assert env.observation_space(first).contains(env.observe(first))


def test_reasoning_stays_private_only_the_answer_reaches_the_game():
    env = arenas.make("textarena:TicTacToe-v0")
    env.reset(seed=0)
    env.step("My secret plan is the corner trap. <answer>[0]</answer>")
    assert "secret plan" not in env.observe("player_1")["text"]
    assert extract_move("a <answer>[1]</answer> b <answer> [2] </answer>") == "[2]"
    assert extract_move("[3]") == "[3]"


def test_listed_moves_are_read_from_the_latest_message_since_the_players_last_move():
    msgs = [(-1, "Available Moves: '[0]', '[1]'", None), (0, "[0]", None), (-1, "Board\nAvailable Moves: '[1]'", None)]
    assert listed_moves(msgs, 0) == ["[1]"]
    assert listed_moves(msgs[:2], 0) == []  # the only list predates the player's own move
    assert listed_moves([(-1, "Valid actions: '[fold]', '[call]'", None)], 1) == ["[fold]", "[call]"]


def test_max_steps_truncates():
    env = arenas.make("textarena:IteratedPrisonersDilemma-v0", max_steps=3)
    env.reset(seed=0)
    for _ in range(3):
        env.step("{hello}")
    assert all(env.truncations.values()) and not any(env.terminations.values())


@pytest.mark.parametrize("env_id,needle", [
    ("Debate-v0", "jury is an LLM reached over the network"),
    ("TwentyQuestions-v0", "game master is an LLM reached over the network"),
    ("BabyAiText-v0", "needs the package(s) babyai"),
])
def test_games_needing_network_or_missing_packages_are_refused_clearly(env_id, needle):
    with pytest.raises(arenas.UnsupportedArena, match="not supported") as err:
        arenas.make(f"textarena:{env_id}")
    assert needle in str(err.value) and env_id in str(err.value)


def test_word_games_without_local_nltk_data_are_refused_clearly():
    why = requirements("Hangman-v0")
    if why is None:
        pytest.skip("NLTK's word list is installed here, so Hangman-v0 can run")
    assert "NLTK data words" in why and "network" in why
    with pytest.raises(arenas.UnsupportedArena, match="nltk.downloader words"):
        arenas.make("textarena:Hangman-v0")


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="the game's f-strings compile from Python 3.12 on")
def test_games_written_for_a_newer_python_are_refused_clearly():
    with pytest.raises(arenas.UnsupportedArena, match="does not compile on Python 3.11"):
        arenas.make("textarena:Chess-v0")


def test_unknown_games_and_parameters():
    with pytest.raises(KeyError, match="Did you mean TicTacToe-v0"):
        arenas.make("textarena:TicTacToe-v9")
    with pytest.raises(TypeError, match="no parameter 'board'.*num_players"):
        arenas.make("textarena:TicTacToe-v0", board=4)
    with pytest.raises(arenas.UnsupportedArena, match="does not start"):
        arenas.make("textarena:ScorableGames-v0")  # its data files are missing from the 0.7.4 wheel
