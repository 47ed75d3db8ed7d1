"""league.curriculum: learnability rewards, the prioritized task buffer, the proposer/solver loop, the export (and
that TRL's GRPOTrainer takes it as it is), MLflow logging and the command line."""

import json
from collections import Counter

import numpy as np
import pytest

from arenas.config import ConfigError
from league import cli
from league.curriculum import (BufferConfig, CurriculumConfig, ProposerConfig, SolverConfig, TaskBuffer, Tracking, WarmStart,
                               arena_solve_rate, buffer_score, duplicate_clusters, export, frontier_scores, grpo_batch,
                               learnability, load_config, proposer_rewards, rank_probabilities, read_archive, run)
from league.tasks import Invalid, load_family
from marl.policy import PolicySpec, ScriptedPolicy
from marl.rollout import Turn

TINY = {"n_layer": 1, "n_head": 2, "n_embd": 32, "block_size": 128}
ROW_KEYS = {"prompt", "answer", "solve_rate", "n_samples", "family", "difficulty", "step", "proposer"}


# ---------------------------------------------------------------------------- rewards
def test_learnability_rewards():
    assert [learnability(p) for p in (0.0, 0.25, 0.5, 1.0)] == [0.0, 0.75, 0.5, 0.0]  # Absolute Zero
    assert [learnability(p, "r_zero") for p in (0.0, 0.25, 0.5, 0.75, 1.0)] == [0.0, 0.25, 0.5, 0.25, 0.0]  # R-Zero
    with pytest.raises(ValueError, match="unknown"):
        learnability(0.5, "nope")
    assert buffer_score([1, 0, 1, 0], "learnability") == 0.25 and buffer_score([1, 1], "learnability") == 0.0
    assert buffer_score([1, 0, 0, 0], "regret") == 0.75 and buffer_score([0, 0], "regret") == 0.0


def test_near_duplicates_are_penalised_and_invalid_texts_cost_the_penalty():
    assert duplicate_clusters(["1+2+3", "1+2+3", "1+2+4", "9+9*8-7"], 0.8) == [3, 3, 3, 1]
    assert duplicate_clusters(["a", "b"], 0.9) == [1, 1]
    family = load_family("chain")
    parsed = [family.parse("1+2+3"), family.parse("1+2+3"), family.parse("7+5+9+1+2"), Invalid("bad")]
    cfg = ProposerConfig(repetition_penalty=0.6, similarity=0.95, invalid_penalty=1.0)
    rewards = proposer_rewards(parsed, {0: 0.5, 1: 0.5, 2: 0.5}, cfg)
    assert rewards[3] == -1.0 and rewards[2] == pytest.approx(0.5)
    assert rewards[0] == rewards[1] == pytest.approx(0.5 - 0.6 * 1 / 3)


def test_grpo_batch_keeps_only_groups_that_teach():
    turn = Turn("solver", 0, "p", [1], [2, 3], [-1.0, -1.0], "t", True, False)
    batch = grpo_batch([[1, 0, 1, 0], [1, 1, 1, 1], [0, 0, 0, 0]], [[turn] * 4] * 3)
    assert [a for _, a in batch] == [0.5, -0.5, 0.5, -0.5]


# ---------------------------------------------------------------------------- the buffer
def tasks(n):
    family = load_family("chain", max_difficulty=6)
    rng = np.random.default_rng(0)
    return [family.generate(1 + i % 6, rng) for i in range(n)]


def test_buffer_rank_prioritisation_temperature_and_staleness():
    ts = tasks(4)
    sharp = TaskBuffer(BufferConfig(size=4, temperature=0.1, staleness=0.0))
    flat = TaskBuffer(BufferConfig(size=4, temperature=10.0, staleness=0.0))
    for b in (sharp, flat):
        for t, s in zip(ts, (0.1, 0.25, 0.0, 0.2)):
            b.add(t, s, step=0)
    p = sharp.probabilities(step=1)
    assert p.argmax() == 1 and p[1] > 0.99 and abs(p.sum() - 1) < 1e-9  # rank 1 ** -10 vs 2 ** -10
    q = flat.probabilities(step=1)
    assert q.max() - q.min() < 0.1 and list(np.argsort(-q)) == [1, 3, 0, 2]  # same order, nearly uniform
    stale = TaskBuffer(BufferConfig(size=4, temperature=0.1, staleness=1.0))
    for k, t in enumerate(ts):
        stale.add(t, 0.2, step=k)  # the first task was seen longest ago
    assert np.allclose(stale.probabilities(step=4), np.array([4, 3, 2, 1]) / 10)


def test_buffer_sampling_follows_the_probabilities():
    ts = tasks(3)
    b = TaskBuffer(BufferConfig(size=3, temperature=1.0, staleness=0.0))
    for t, s in zip(ts, (0.3, 0.2, 0.1)):
        b.add(t, s, step=0)
    rng = np.random.default_rng(0)
    counts = Counter(b.sample(1, 1, rng)[0].key() for _ in range(3000))
    expected = np.array([1, 1 / 2, 1 / 3]) / (1 + 1 / 2 + 1 / 3)
    assert np.allclose([counts[t.key()] / 3000 for t in ts], expected, atol=0.03)
    assert len({t.key() for t in b.sample(3, 1, rng)}) == 3  # distinct tasks in one draw


def test_buffer_replaces_the_lowest_score_and_waits_for_min_fill():
    ts = tasks(5)
    b = TaskBuffer(BufferConfig(size=3, min_fill=3))
    assert not b.ready
    for t, s in zip(ts[:3], (0.2, 0.05, 0.1)):
        b.add(t, s, step=0)
    assert b.ready and len(b) == 3
    assert not b.add(ts[3], 0.01, step=1)  # lower than everything: not kept
    assert b.add(ts[4], 0.15, step=1)
    kept = {e.task.key() for e in b.entries}
    assert ts[1].key() not in kept and ts[4].key() in kept and len(b) == 3
    assert b.add(ts[0], 0.0, step=2) and b.entries[b.index[ts[0].key()]].score == 0.0  # a replayed task is rescored
    stats = b.stats(step=3)
    assert stats["buffer/size"] == 3 and 0 < stats["buffer/score_mean"] < stats["buffer/score_max"]


def test_frontier_prefers_the_hardest_level_with_reward_and_then_the_next_level_up():
    levels = [1, 2, 3, 4]
    rates = {1: 1.0, 2: 0.75, 3: 0.2, 4: 0.0}
    # Absolute Zero's 1 - p: level 3 (p = 0.2) earns more than level 2 (p = 0.75), the level nearest p = 1/2
    rewards = {d: learnability(p, "absolute_zero") for d, p in rates.items()}
    edge = rank_probabilities(frontier_scores(rewards, rates, levels), 0.3)
    assert edge.argmax() == 2 and edge[1] > edge[0] and edge[1] > edge[3]
    # R-Zero's min(p, 1 - p) prefers level 2
    r_zero = rank_probabilities(frontier_scores({d: learnability(p, "r_zero") for d, p in rates.items()}, rates, levels), 0.3)
    assert r_zero.argmax() == 1
    stuck = {1: 1.0, 2: 1.0, 3: 0.0, 4: 0.0}
    nothing = rank_probabilities(frontier_scores({d: 0.0 for d in levels}, stuck, levels), 0.3)
    assert nothing.argmax() == 2 and nothing[2] > nothing[3]  # all solved or unsolved: the lowest unsolved level


# ---------------------------------------------------------------------------- the loop, export, MLflow
def small_config(**changes) -> CurriculumConfig:
    base = dict(family="chain", family_params={"max_difficulty": 3}, steps=4, tasks_per_step=6, seed=0,
                buffer=BufferConfig(size=16, min_fill=4, replay_prob=0.5),
                proposer=ProposerConfig(kind="policy", policy=PolicySpec(gpt=TINY, seed=1), group_size=3, max_new_tokens=16,
                                        snapshot_every=2, warm_start=WarmStart(steps=200, batch_size=16, lr=3e-3, difficulties=[1, 2, 3])),
                solver=SolverConfig(policy=PolicySpec(gpt=TINY), attempts=4, max_new_tokens=16,
                                    warm_start=WarmStart(steps=30, batch_size=16, difficulties=[1])),
                tracking=Tracking(enabled=False))
    return CurriculumConfig(**(base | changes))


def test_loop_with_a_proposer_policy_exports_rows_and_logs_to_mlflow(tmp_path, mlflow_store):
    cfg = small_config(tracking=Tracking(experiment=mlflow_store.experiment, tracking_uri=mlflow_store.uri))
    result = run(cfg, tmp_path / "run", progress=False)
    history = result["history"]
    assert len(history) == 4 and all("proposer/valid_rate" in h and "buffer/size" in h for h in history)
    assert (tmp_path / "run" / "proposer" / "step_00002").is_dir() and (tmp_path / "run" / "solver").is_dir()
    rows = read_archive(tmp_path / "run")
    assert rows and all(ROW_KEYS <= set(r) for r in rows)
    assert all(r["n_samples"] == 4 and 0 <= r["solve_rate"] <= 1 and r["family"] == "chain" for r in rows)
    assert {r["proposer"] for r in rows} <= {"proposer/step_00000", "proposer/step_00002", "proposer/step_00004"}
    # samples: every task attempted n times, every step
    assert result["summary"]["solver_samples"] == sum(4 * (h["tasks/replayed"] + h["tasks/new"]) for h in history)
    run_id = json.loads((tmp_path / "run" / "run.json").read_text())["run_id"]
    client = mlflow_store.client
    metrics = client.get_run(run_id).data.metrics
    assert {"solve/mean", "difficulty/mean", "proposer/reward_mean", "buffer/size", "difficulty/share_1"} <= set(metrics)
    assert len(client.get_metric_history(run_id, "proposer/valid_rate")) == 4
    assert "curriculum.jsonl" in {a.path for a in client.list_artifacts(run_id)}


def test_generator_loop_export_orders(tmp_path):
    cfg = small_config(proposer=ProposerConfig(kind="generator"), steps=3)
    run(cfg, tmp_path / "run", progress=False)
    by_difficulty = [json.loads(x) for x in export(tmp_path / "run", tmp_path / "d.jsonl").read_text().splitlines()]
    by_creation = [json.loads(x) for x in export(tmp_path / "run", tmp_path / "c.jsonl", order="creation").read_text().splitlines()]
    assert len(by_difficulty) == len(by_creation) >= 6
    assert [r["difficulty"] for r in by_difficulty] == sorted(r["difficulty"] for r in by_difficulty)
    assert [r["step"] for r in by_creation] == sorted(r["step"] for r in by_creation)
    assert {r["proposer"] for r in by_creation} == {"generator"}
    family = load_family("chain")
    for r in by_difficulty:  # the exported answer is the right one
        assert family.check(family.parse(r["prompt"]), r["answer"])


def test_arena_configurations_are_solved_by_playing():
    family = load_family("arena_signalling")
    task = family.generate(1, np.random.default_rng(0))  # two objects
    assert arena_solve_rate(ScriptedPolicy("signalling_v0", "heuristic"), task, n=4) == 1.0


def test_cli_run_and_export(tmp_path, mlflow_store):
    config = tmp_path / "c.yaml"
    cfg = small_config(steps=2, tracking=Tracking(experiment=mlflow_store.experiment, tracking_uri=mlflow_store.uri))
    import yaml

    config.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    assert cli.main(["curriculum", "run", str(config), "--dir", str(tmp_path / "run"), "--quiet"]) == 0
    out = tmp_path / "tasks.jsonl"
    assert cli.main(["curriculum", "export", str(tmp_path / "run"), "--out", str(out), "--order", "creation"]) == 0
    assert len(out.read_text().splitlines()) == len(read_archive(tmp_path / "run"))
    assert cli.main(["curriculum", "export", str(tmp_path / "nothing"), "--out", str(out)]) == 2


def test_config_errors_name_file_and_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("family: chain\nbuffer: {size: 4, temprature: 1}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: buffer.temprature: unknown key"):
        load_config(bad)
    bad.write_text("family: sudoku\n")
    with pytest.raises(ConfigError, match="unknown task family 'sudoku'"):
        load_config(bad)
    bad.write_text("family: chain\nfamily_params: {max_difficulty: 3}\nproposer: {difficulties: [1, 9]}\n")
    with pytest.raises(ConfigError, match=r"proposer.difficulties: \[9\] outside 1..3"):
        load_config(bad)
    bad.write_text("family: chain\nfamily_params: {levels: 3}\n")
    with pytest.raises(ConfigError, match="family_params"):
        load_config(bad)


def test_shipped_configs_load():
    from pathlib import Path

    for path in sorted(Path(__file__).parent.parent.glob("configs/curriculum_*.yaml")):
        cfg = load_config(path)
        assert cfg.steps >= 1 and cfg.family


# ---------------------------------------------------------------------------- TRL takes the export as it is
def test_trl_grpo_trainer_takes_the_export_and_steps(tmp_path, tiny_hf_model):
    datasets = pytest.importorskip("datasets")
    trl = pytest.importorskip("trl")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run(small_config(proposer=ProposerConfig(kind="generator"), steps=2, final_eval=False), tmp_path / "run", progress=False)
    path = export(tmp_path / "run", tmp_path / "tasks.jsonl")
    data = datasets.load_dataset("json", data_files=str(path), split="train")
    assert ROW_KEYS <= set(data.column_names) and len(data) >= 6
    seen = []

    def exact(prompts, completions, answer, difficulty, solve_rate, **_):
        seen.extend(answer)  # the other columns reach the reward function as keyword arguments
        # exact match, plus a little for varied characters so that a random model's group has an advantage to learn from
        return [float(c.strip() == a) + 0.01 * len(set(c)) for c, a in zip(completions, answer)]

    args = trl.GRPOConfig(output_dir=str(tmp_path / "trl"), max_steps=1, per_device_train_batch_size=4, num_generations=2,
                          max_completion_length=8, learning_rate=1e-4, beta=0.0, bf16=False, fp16=False,
                          gradient_checkpointing=False, use_cpu=True, report_to="none", logging_steps=1,
                          save_strategy="no", disable_tqdm=True, seed=0, dataloader_num_workers=0)
    model = AutoModelForCausalLM.from_pretrained(tiny_hf_model)
    before = {k: v.clone() for k, v in model.named_parameters()}
    trainer = trl.GRPOTrainer(model=model, reward_funcs=exact, args=args, train_dataset=data,
                              processing_class=AutoTokenizer.from_pretrained(tiny_hf_model))
    trainer.train()
    assert trainer.state.global_step == 1 and seen and set(seen) <= set(data["answer"])
    assert any(not np.allclose(before[k].detach(), v.detach()) for k, v in model.named_parameters())


# ---------------------------------------------------------------------------- a curriculum gives the solver tasks that teach
def test_frontier_curriculum_gives_the_solver_more_tasks_that_teach_than_uniform_levels(tmp_path):
    """benchmarks/curriculum_learning.py's setting (mirror, levels 1..5, seed 1) cut to 300 steps, about 2 minutes
    on 2 cores: the same warm-started solver, the same number of solver samples; the frontier proposer gives the
    solver more tasks whose attempts disagree (0 < p < 1, a non-zero GRPO advantage) than uniform levels. Whether
    that makes the hardest level's accuracy higher is the benchmark's measurement over seeds, not one seed's: on a
    clean clone with the tests' AVX2 kernels this seed ended at 5% against uniform levels' 51% at step 300, where
    another machine had measured 100% against 1%."""
    informative, samples = {}, {}
    for arm in ("generator", "frontier"):
        cfg = CurriculumConfig(
            family="mirror", family_params={"max_difficulty": 5}, steps=300, tasks_per_step=16, seed=1, final_eval=False,
            buffer=BufferConfig(replay_prob=0.0), proposer=ProposerConfig(kind=arm),
            solver=SolverConfig(policy=PolicySpec(gpt={"n_layer": 2, "n_head": 4, "n_embd": 128, "block_size": 160}, seed=1),
                                attempts=8, lr=2e-3, temperature=1.0, kl_coef=0.05, max_new_tokens=8,
                                warm_start=WarmStart(steps=800, batch_size=32, lr=2e-3, difficulties=[1, 2, 3, 4, 5])),
            tracking=Tracking(enabled=False))
        result = run(cfg, tmp_path / arm, progress=False)
        informative[arm] = np.mean([h["solve/informative"] for h in result["history"]])
        samples[arm] = result["summary"]["solver_samples"]
    assert samples["generator"] == samples["frontier"]
    assert informative["frontier"] > informative["generator"] + 0.1, informative
