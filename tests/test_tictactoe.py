import arenas
from arenas.play import play_episode


def moves(*cells, **kw):
    env = arenas.make("tictactoe_v0", **kw)
    env.reset(seed=0)
    for c in cells:
        env.step(str(c))
    return env


def test_win_row_column_diagonal():
    for line in ((1, 2, 3), (1, 4, 7), (1, 5, 9)):
        other = [c for c in (6, 8, 3, 2) if c not in line][:2]
        env = moves(line[0], other[0], line[1], other[1], line[2])
        assert env.rewards == {"player_0": 1.0, "player_1": -1.0}
        assert all(env.terminations.values())


def test_second_player_can_win_and_draw_is_zero():
    env = moves(1, 3, 2, 5, 9, 7)
    assert env.rewards == {"player_0": -1.0, "player_1": 1.0}
    env = moves(1, 2, 3, 5, 4, 6, 8, 7, 9)
    assert env.rewards == {"player_0": 0.0, "player_1": 0.0} and all(env.terminations.values())


def test_occupied_cell_is_invalid():
    env = moves(5)
    env.step("5")
    assert env.infos["player_1"]["invalid_actions"] == 1 and env.rewards["player_1"] == -1.0


def test_heuristic_never_loses_to_random():
    env = arenas.make("tictactoe_v0")
    h, r = arenas.scripted("tictactoe_v0", "heuristic"), arenas.random_policy
    results = [play_episode(env, {"player_0": h, "player_1": r}, seed=s).returns["player_0"] for s in range(100)]
    assert min(results) >= 0 and sum(x > 0 for x in results) >= 85
