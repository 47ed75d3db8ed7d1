"""Behaviour-cloning warm-start (``agora sft``): a tiny GPT learns Kuhn poker's answer format from transcripts."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import arenas
from arenas.config import ConfigError
from arenas.play import play_episode, write_transcript
from league.cli import main
from marl import sft
from marl.policy import load_policy

# Small and fast: block_size 256 keeps the last 232 bytes of Kuhn's ~470-byte prompts (legal actions, answer
# format, then player, history and card), and rotary positions make a 2-layer model learn the format in a few hundred steps.
SMALL = {"n_layer": 2, "n_embd": 64, "n_head": 4, "block_size": 256, "rope": True}


def kuhn_transcript(path, episodes=200):
    env = arenas.make("kuhn_poker_v0")
    heuristic = arenas.scripted("kuhn_poker_v0", "heuristic")
    return write_transcript(path, [play_episode(env, {a: heuristic for a in env.possible_agents}, seed=i, episode=i)
                                   for i in range(episodes)])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One small run from a written JSONL transcript, shared by the tests below."""
    tmp = tmp_path_factory.mktemp("sft")
    cfg = sft.SFTConfig(arenas=["kuhn_poker_v0"], transcripts=[str(kuhn_transcript(tmp / "kuhn.jsonl"))],
                        policy={"gpt": SMALL}, steps=300, batch_size=8, lr=1e-2, eval_episodes=30, out=str(tmp / "run"))
    policy, report = sft.train(cfg, show=False)
    return cfg, policy, report


def test_valid_action_rate_rises_and_loss_falls(trained):
    cfg, _, report = trained
    (row,) = report["arenas"]
    assert row["examples"] > 400 and report["steps"] == cfg.steps
    assert row["valid_before"] < 0.2  # measured 0.0: random bytes are never a Kuhn action
    assert row["valid_after"] >= 0.9  # measured 1.0
    assert report["loss_last"] < 0.1 < 3 < report["loss_first"]  # measured ~3.8 -> ~0.03


def test_saved_policy_and_report_load_back(trained):
    cfg, policy, report = trained
    saved = json.loads((Path(cfg.out) / "sft_report.json").read_text())
    assert saved["arenas"] == report["arenas"] and saved["config"]["lr"] == cfg.lr
    twin = load_policy(cfg.out)  # a folder with a saved policy
    env = arenas.make("kuhn_poker_v0")
    env.reset(seed=7)
    prompts = [env.observe("player_0")["text"]] * 2
    completions = ["<answer>bet</answer>", "<answer>pass</answer>"]
    with torch.no_grad():
        for a, b in zip(policy.score(prompts, completions), twin.score(prompts, completions)):
            assert torch.equal(a, b)


def test_examples_imitate_answers_and_talk():
    steps = [{"observation": "o", "raw_action": "I bet. <answer>BET</answer>", "parsed_action": "bet", "valid": True},
             {"observation": "o", "raw_action": "x" * 100, "parsed_action": None, "valid": True},  # a talk turn
             {"observation": "o", "raw_action": "nonsense", "parsed_action": None, "valid": False}]
    assert [sft.to_completion(s) for s in steps] == ["<answer>bet</answer>", "x" * sft.TALK_CHARS, None]


def bad_config(tmp_path, transcript):
    return sft.SFTConfig(arenas=["kuhn_poker_v0"], transcripts=[str(transcript)], policy={"gpt": SMALL}, steps=1,
                         batch_size=1, lr=1e-3, eval_episodes=0, out=str(tmp_path / "run"))


@pytest.mark.parametrize("line,needle", [
    ("{not json", ":3: not a JSON line"),
    ("[1, 2]", ":3: expected a JSON object"),
    ('{"observation": "o", "valid": true}', ":3: step record lacks raw_action, parsed_action"),
])
def test_bad_transcript_line_names_file_and_line(tmp_path, line, needle):
    good = kuhn_transcript(tmp_path / "good.jsonl", episodes=1).read_text().splitlines()
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(good[:2] + [line]) + "\n")
    with pytest.raises(ConfigError, match="bad.jsonl" + needle.replace("[", r"\[")):
        sft.train(bad_config(tmp_path, path), show=False)


def test_missing_transcript(tmp_path):
    with pytest.raises(ConfigError, match="nope.jsonl: transcript file not found"):
        sft.train(bad_config(tmp_path, tmp_path / "nope.jsonl"), show=False)


def test_cli_plays_scripted_episodes_and_saves(tmp_path, capsys):
    cfg = tmp_path / "sft.yaml"
    cfg.write_text("arenas: [signalling_v0]\narena_params: {signalling_v0: {num_objects: 3}}\nepisodes_per_arena: 5\n"
                   "policy: {gpt: {n_layer: 1, n_embd: 32, n_head: 2}}\nsteps: 2\nbatch_size: 4\nlr: 1.0e-3\n"
                   "eval_episodes: 2\n")
    assert main(["sft", str(cfg), "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "valid before" in out and "signalling_v0" in out and "num_objects=3" in out
    report = json.loads((tmp_path / "run" / "sft_report.json").read_text())
    assert report["arenas"][0]["examples"] == 10 and report["steps"] == 2  # 5 episodes x (speaker, listener)
    assert (tmp_path / "run" / "model.safetensors").is_file()


def test_a_random_teacher_shows_the_format_but_no_strategy():
    cfg = sft.SFTConfig(arenas=["signalling_v0"], episodes_per_arena=40, steps=1, batch_size=1, lr=0.1)

    def played(teacher):
        return sft.scripted_steps(cfg.model_copy(update={"teacher": teacher}), "signalling_v0")

    def success(steps):  # the listener's step carries the shared reward
        return sum(s["rewards"]["listener"] for s in steps if s["agent"] == "listener") / cfg.episodes_per_arena

    heuristic, random, fixed = played("heuristic"), played("random"), played("fixed_random")
    assert all(s["valid"] for s in heuristic + random + fixed) and len(heuristic) == len(random) == len(fixed) == 80
    assert success(heuristic) == 1.0 and success(random) < 0.5 and success(fixed) < 0.5  # chance is 1/4


def test_a_fixed_random_teacher_answers_its_last_line_at_random_but_not_uniformly():
    """Its answers depend on the prompt's last line (a target, a message) and on nothing else, and stay random."""
    from scipy.stats import chi2_contingency

    teacher = arenas.scripted("signalling_v0", "fixed_random")
    env = arenas.make("signalling_v0", num_objects=3, num_attributes=1, num_values=3, vocab_size=3, message_length=1, shuffle=False)
    counts = []
    for target in range(3):
        env.reset(seed=0, options={"objects": [(0,), (1,), (2,)], "target": target})
        text, info = env.observe("speaker")["text"], env.infos["speaker"]
        answers = [teacher(text, info, np.random.default_rng(i)) for i in range(300)]
        assert set(answers) <= set(info["legal_actions"])
        counts.append([answers.count(m) for m in info["legal_actions"]])
        same_last_line = "other rules\n" + text.rsplit("\n", 1)[-1]
        assert [teacher(same_last_line, info, np.random.default_rng(i)) for i in range(300)] == answers
    assert chi2_contingency(counts).pvalue < 1e-6  # the message depends on the target
    assert max(max(c) for c in counts) < 300  # but no target always gets one message


def test_a_lower_concentration_makes_each_lines_odds_peaked():
    """teacher_concentration < 1: for each last line, one answer dominates more often (a dependence learnt from
    fewer examples); the default is the named fixed_random teacher."""
    info = {"legal_actions": list("abcdefgh")}
    lines = [f"rules\nTarget: object {i}." for i in range(40)]

    def top_share(teacher):
        shares = []
        for line in lines:
            answers = [teacher(line, info, np.random.default_rng(i)) for i in range(200)]
            shares.append(max(answers.count(a) for a in info["legal_actions"]) / len(answers))
        return float(np.mean(shares))

    assert all(arenas.fixed_random()(line, info, np.random.default_rng(0)) ==
               arenas.scripted("signalling_v0", "fixed_random")(line, info, np.random.default_rng(0)) for line in lines)
    assert top_share(arenas.fixed_random(0.2)) > top_share(arenas.fixed_random()) + 0.2  # about 0.6 against 0.3
    cfg = sft.SFTConfig(arenas=["signalling_v0"], episodes_per_arena=20, steps=1, batch_size=1, lr=0.1, teacher="fixed_random")

    def answers(concentration):
        return [s["raw_action"] for s in sft.scripted_steps(cfg.model_copy(update={"teacher_concentration": concentration}),
                                                            "signalling_v0")]
    assert answers(1.0) == answers(1.0) != answers(0.05)  # the config reaches the teacher
    with pytest.raises(ValueError, match="concentration"):
        arenas.fixed_random(0)


@pytest.mark.parametrize("content,needle", [
    ("arenas: [kuhn_poker_v0]\nsteps: 1\nbatch_size: 1\nlr: 0.1\nteacher: nash\n", "teacher"),
    ("arenas: [kuhn_poker_v0]\nsteps: 1\nbatch_size: 1\nlr: 0.1\nteacher_concentration: 0\n", "teacher_concentration"),
    ("arenas: [kuhn_poker_v0]\nsteps: 1\nbatch_size: 1\nlr: 0.1\nepochs: 3\n", "epochs: unknown key"),
    ("arenas: [kuhn_poker_v0]\nbatch_size: 1\nlr: 0.1\n", "steps: required key is missing"),
    ("arenas: [kuhn_poker_v0]\nsteps: 1\nbatch_size: 1\nlr: 0.1\narena_params: {tictactoe_v0: {}}\n", "not in arenas"),
    ("arenas: [kuhn_poker_v0]\nsteps: 1\nbatch_size: 1\nlr: 0.1\ntranscripts: [a.jsonl, b.jsonl]\n", "one file per arena"),
    ("arenas: [kuhn_poker_v9]\nsteps: 1\nbatch_size: 1\nlr: 0.1\n", "unknown arena"),
])
def test_config_errors(tmp_path, capsys, content, needle):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(content)
    assert main(["sft", str(cfg)]) == 2
    assert needle in capsys.readouterr().err
