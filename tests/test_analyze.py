"""Coordination analysis (``agora analyze``): exact expectations on protocols whose answer is known."""

from __future__ import annotations

import json
import math
from dataclasses import asdict

import numpy as np
import pytest

import arenas
from arenas.play import play_episode, write_transcript
from league import analyze as A
from league.cli import main

K3 = dict(num_objects=3, num_attributes=1, num_values=3, vocab_size=3, message_length=1)
GRID = dict(num_objects=4, num_attributes=2, num_values=4, vocab_size=8, message_length=2)


def steps_of(env, policies, episodes: int) -> list[dict]:
    return [asdict(s) for i in range(episodes) for s in play_episode(env, policies, seed=i, episode=i).steps]


def pair(speaker: str, listener: str) -> dict:
    return {"speaker": arenas.scripted("signalling_v0", speaker), "listener": arenas.scripted("signalling_v0", listener)}


# ---------------------------------------------------------------------------- positive signalling
@pytest.mark.parametrize("k", [2, 3, 8])
def test_a_one_to_one_code_carries_log_k_bits(k):
    meanings = [f"m{i}" for i in range(k)] * 25
    code = [f"w{(i * 5 + 1) % k}" for i in range(k)] * 25  # any bijection
    s = A.positive_signalling(meanings, code, permutations=100)
    assert s.mi_bits == pytest.approx(math.log2(k)) and s.max_bits == pytest.approx(math.log2(k))
    assert s.p_value < 0.02 and s.excess_bits > 0.8 * math.log2(k)


def test_random_messages_read_as_zero_against_the_permutation_baseline():
    rng = np.random.default_rng(3)
    runs = [A.positive_signalling(list(rng.integers(4, size=200)), list(rng.integers(6, size=200)), permutations=100, seed=i)
            for i in range(20)]
    raw = np.mean([s.mi_bits for s in runs])
    assert raw > 0.03  # the plug-in estimate is biased upwards on finite samples ...
    assert abs(np.mean([s.excess_bits for s in runs])) < 0.01  # ... by just what the permutations also get
    assert np.mean([s.p_value < 0.05 for s in runs]) <= 0.2  # and p-values are not small more often than chance


def test_heuristic_speaker_signals_and_random_speaker_does_not_in_play():
    env = arenas.make("signalling_v0", **K3)
    good = A.analyse(steps_of(env, pair("heuristic", "heuristic"), 90))
    bad = A.analyse(steps_of(env, pair("random", "heuristic"), 90))
    assert good.signalling["speaker"].excess_bits > 1.2 and good.signalling["speaker"].p_value < 0.01
    assert bad.signalling["speaker"].p_value > 0.01 and abs(bad.signalling["speaker"].excess_bits) < 0.1
    assert list(good.signalling) == ["speaker"]  # the listener holds no private information
    assert good.success_rate == 1.0


# ---------------------------------------------------------------------------- compositionality
def test_a_compositional_code_has_topographic_similarity_one():
    env = arenas.make("signalling_v0", **GRID)  # the heuristic writes one letter per attribute value
    analysis = A.analyse(steps_of(env, pair("heuristic", "heuristic"), 150))
    assert analysis.topsim["speaker"] == pytest.approx(1.0)
    assert A.topographic_similarity(["red circle", "red square", "blue circle"], ["ab", "ab", "cd"]) is not None


def test_shuffling_a_compositional_lexicon_destroys_its_topographic_similarity():
    meanings = [f"{a} {b}" for a in "xyz" for b in "uvw"]
    compositional = [a + b for a in "abc" for b in "def"]  # first letter: first attribute; second letter: second
    assert A.topographic_similarity(meanings, compositional) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    shuffled = [A.topographic_similarity(meanings, [compositional[i] for i in rng.permutation(9)]) for _ in range(50)]
    assert abs(np.mean(shuffled)) < 0.1 and max(shuffled) < 0.5  # same messages, meaning-blind assignment
    assert A.topographic_similarity(["x", "y"], ["a", "b"]) is None  # fewer than 3 meanings


# ---------------------------------------------------------------------------- positive listening
def test_a_listener_that_ignores_messages_shows_zero_influence():
    env = arenas.make("signalling_v0", **K3)
    inf = A.intervene(env, pair("heuristic", "random"), list(range(40)), "swap")
    assert inf.touched_moves > 0 and inf.action_change == 0.0
    assert inf.success_rate_intervened == inf.success_rate  # same seeds, same random numbers: the same games


def test_channel_off_drops_a_signalling_pair_to_chance_and_swaps_mislead_it():
    env = arenas.make("signalling_v0", **K3)
    seeds = list(range(150))
    off = A.intervene(env, pair("heuristic", "heuristic"), seeds, "off")
    swap = A.intervene(env, pair("heuristic", "heuristic"), seeds, "swap")
    assert off.success_rate == 1.0 and 0.5 * len(seeds) < off.touched_moves < len(seeds)  # a third already sent the constant
    assert abs(off.success_rate_intervened - 1 / 3) < 3 * math.sqrt(2 / 9 / len(seeds))  # chance, within 3 sigma
    assert swap.action_change > 0.5 and swap.success_rate_intervened < 0.6


def test_channel_off_on_a_consensus_ring_breaks_the_team():
    env = arenas.make("consensus_v0", channel={"topology": "ring"})
    policies = {a: arenas.scripted("consensus_v0", "heuristic") for a in env.possible_agents}
    inf = A.intervene(env, policies, list(range(12)), "off")
    assert inf.joint_return == 1.0 and inf.joint_return_intervened < 0.5 and inf.action_change > 0.5


# ---------------------------------------------------------------------------- statistics
def test_statistics_count_what_the_channel_lost():
    channel = {"topology": "complete", "bandwidth": 4, "drop": 0.5, "noise": 0.3}
    env = arenas.make("consensus_v0", channel=channel)
    talker = lambda text, info, rng: "the quick fox" if info["phase"] == "talk" else "<answer>0</answer>"  # noqa: E731
    analysis = A.analyse(steps_of(env, {a: talker for a in env.possible_agents}, 20))
    edges = analysis.edges
    assert len(edges) == 12  # 4 agents, complete, both directions
    e = edges["agent_0 -> agent_1"]
    assert e["mean_length"] == 4 and e["utilisation"] == 1.0 and e["truncated_chars"] == len("the quick fox") - 4
    dropped = np.mean([x["dropped"] for x in edges.values()])  # 480 messages: sd of the share about 0.023
    noise = np.mean([x["noise_char_rate"] for x in edges.values()])  # a noisy character differs 36 times in 37
    assert 0.4 < dropped < 0.6 and 0.25 < noise < 0.34
    per_sender = analysis.senders["agent_0"]
    assert per_sender["messages"] == sum(edges[f"agent_0 -> agent_{j}"]["messages"] for j in (1, 2, 3))


# ---------------------------------------------------------------------------- the command
def test_analyze_a_transcript_and_a_folder_of_training_steps(tmp_path, capsys):
    env = arenas.make("signalling_v0", **GRID)
    for step, speaker in ((0, "random"), (10, "heuristic")):
        episodes = [play_episode(env, pair(speaker, "heuristic"), seed=i, episode=i) for i in range(40)]
        write_transcript(tmp_path / "run" / f"step_{step:05d}.jsonl", episodes)
    assert main(["analyze", str(tmp_path / "run" / "step_00010.jsonl"), "--out", str(tmp_path / "one")]) == 0
    one = json.loads((tmp_path / "one" / "analysis.json").read_text())
    assert one["signalling"]["speaker"]["p_value"] < 0.01 and "<img" in (tmp_path / "one" / "report.html").read_text()
    assert main(["analyze", str(tmp_path / "run"), "--out", str(tmp_path / "two")]) == 0
    curve = json.loads((tmp_path / "two" / "over_training.json").read_text())
    assert [c["step"] for c in curve] == [0, 10]
    assert curve[0]["signalling"]["speaker"]["excess_bits"] < 0.5 < curve[1]["signalling"]["speaker"]["excess_bits"]
    assert {p.name for p in (tmp_path / "two").glob("*.png")} == {"over_training.png", "lexicon_speaker.png"}
    assert "speaker signals its private information" in " ".join(capsys.readouterr().out.split())


def test_analyze_a_play_config_runs_the_interventions(tmp_path):
    cfg = tmp_path / "play.yaml"
    cfg.write_text(f"arena: signalling_v0\nparams: {json.dumps(K3)}\npolicies: [heuristic]\nepisodes: 30\n")
    assert main(["analyze", str(cfg), "--out", str(tmp_path / "a")]) == 0
    result = json.loads((tmp_path / "a" / "analysis.json").read_text())
    assert result["influence"]["off"]["success_rate"] == 1.0 and result["influence"]["off"]["success_rate_intervened"] < 0.7
    assert (tmp_path / "a" / "transcript.jsonl").exists()


def test_analyze_an_mlflow_run_reads_its_transcripts_and_logs_the_report(tmp_path):
    from mlflow import MlflowClient

    from marl.tracking import Tracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = arenas.make("signalling_v0", **K3)
    with Tracker("analysis-test", {"arena": "signalling_v0"}, tracking_uri=uri) as tracker:
        episodes = [play_episode(env, pair("heuristic", "heuristic"), seed=i, episode=i) for i in range(30)]
        write_transcript(tmp_path / "t.jsonl", episodes)
        tracker.log_text((tmp_path / "t.jsonl").read_text(), "transcripts/step_00000.jsonl")
        run_id = tracker.run_id
    assert main(["analyze", run_id, "--tracking-uri", uri, "--out", str(tmp_path / "r")]) == 0
    logged = [f.path for f in MlflowClient(uri).list_artifacts(run_id, "analysis")]
    assert "analysis/report.html" in logged and "analysis/analysis.json" in logged


def test_analyze_names_a_bad_path(tmp_path, capsys):
    assert main(["analyze", str(tmp_path / "nothing-here")]) == 2
    assert "not a transcript file, a folder, or an MLflow run id" in " ".join(capsys.readouterr().err.split())
    (tmp_path / "empty").mkdir()
    assert main(["analyze", str(tmp_path / "empty")]) == 2


def test_channel_off_drops_a_trained_signalling_pair_to_chance(tmp_path):
    """A tiny GPT trained (behaviour cloning of the position code) as speaker and listener of Lewis's game."""
    from marl import sft
    from marl.cli import policy_factory

    params = dict(K3, shuffle=False)
    cfg = sft.SFTConfig(arenas=["signalling_v0"], arena_params={"signalling_v0": params}, teacher="heuristic",
                        episodes_per_arena=1000, policy={"gpt": {"n_layer": 2, "n_embd": 64, "n_head": 4, "block_size": 256}},
                        steps=1500, batch_size=16, lr=1e-3, position_jitter=0, max_minutes=8, eval_episodes=0,
                        out=str(tmp_path / "pair"))
    sft.train(cfg, show=False)
    env = arenas.make("signalling_v0", **params)
    pair = {a: policy_factory(str(tmp_path / "pair"), "signalling_v0") for a in env.possible_agents}
    seeds = list(range(90))
    off = A.intervene(env, pair, seeds, "off", samples=4)
    assert off.success_rate > 0.7  # the pair learned the code ...
    assert abs(off.success_rate_intervened - 1 / 3) < 3 * math.sqrt(2 / 9 / len(seeds))  # ... and relies on it: chance
    assert off.action_change > 0.5
