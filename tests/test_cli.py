"""The command line: listing arenas, playing with transcripts, and clear configuration errors."""

import json

import pytest

from league.cli import main

TRANSCRIPT_KEYS = {"episode", "step", "agent", "observation", "raw_action", "parsed_action", "valid", "rewards",
                   "messages_sent", "messages_delivered", "private"}


def test_arenas_lists_every_arena(capsys):
    import arenas

    assert main(["arenas"]) == 0
    out = capsys.readouterr().out
    assert all(name[:8] in out for name in arenas.names())


def test_play_writes_a_transcript_with_messages(tmp_path, capsys):
    out = tmp_path / "t.jsonl"
    assert main(["play", "kuhn_poker_v0", "--policy", "heuristic", "--policy", "random", "--episodes", "5",
                 "--seed", "3", "--channel", "complete", "--out", str(out)]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert {row["episode"] for row in lines} == set(range(5))
    assert all(set(row) == TRANSCRIPT_KEYS for row in lines)
    assert lines[0]["agent"] == "player_0" and "Your card" in lines[0]["observation"]
    assert "mean return" in capsys.readouterr().out


def test_play_from_yaml_config(tmp_path):
    cfg = tmp_path / "play.yaml"
    out = tmp_path / "t.jsonl"
    cfg.write_text(f"arena: tictactoe_v0\npolicies: [heuristic, random]\nepisodes: 3\ntranscript: {out}\n")
    assert main(["play", str(cfg)]) == 0
    assert len({json.loads(line)["episode"] for line in out.read_text().splitlines()}) == 3


@pytest.mark.parametrize("content,needle", [
    ("arena: tictactoe_v0\nepisodez: 3\n", "episodez: unknown key"),
    ("arena: tictactoe_v0\nepisodes: many\n", "episodes: Input should be a valid integer"),
    ("episodes: 3\n", "arena: required key is missing"),
    ("arena: tictactoe_v0\nchannel: {topology: torus}\n", "channel.topology"),
    ("arena: [unclosed\n", "not valid YAML"),
])
def test_config_errors_name_file_and_key(tmp_path, capsys, content, needle):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(content)
    assert main(["play", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert str(cfg.name) in err and needle in err and "Traceback" not in err


def test_missing_file_and_unknown_arena(capsys):
    assert main(["play", "no/such/file.yaml"]) == 2
    assert "config file not found" in capsys.readouterr().err
    assert main(["play", "kuhn_poker_v9"]) == 2
    assert "unknown arena" in capsys.readouterr().err


def test_policy_count_must_match_agents(capsys):
    assert main(["play", "kuhn_poker_v0", "--policy", "random", "--policy", "random", "--policy", "random"]) == 2
    assert "2 agents" in capsys.readouterr().err
