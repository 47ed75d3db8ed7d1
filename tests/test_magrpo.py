"""MAGRPO's parts, checked exactly; its learning is checked in test_learning.py."""

import numpy as np
import pytest
import torch

from marl.magrpo import (TrainConfig, advantages, best_answers, group_relative, legal_cross_entropy, policy_loss,
                         signalling_bonus, step_entropy_coef, train)
from marl.rollout import Rollout, Turn

SMALL = {"n_layer": 1, "n_embd": 32, "n_head": 2, "block_size": 1024}


def test_group_relative_modes():
    r = np.array([1.0, 0.0, 0.0, 3.0])
    np.testing.assert_allclose(group_relative(r, "mean"), [0, -1, -1, 2])
    np.testing.assert_allclose(group_relative(r, "std"), np.array([0, -1, -1, 2]) / (np.std(r) + 1e-6))
    np.testing.assert_allclose(group_relative(r, "rloo"), [1 - 1, 0 - 4 / 3, 0 - 4 / 3, 3 - 1 / 3])


def rollout(group, rewards):
    return Rollout(seed=group, group=group, rewards={a: [(0, r)] for a, r in rewards.items()})


def test_magrpo_is_centralised_igrpo_is_independent_spiral_uses_role_baselines():
    ros = [rollout(0, {"x": 1, "y": 0}), rollout(0, {"x": 0, "y": 0}), rollout(1, {"x": 5, "y": 5}), rollout(1, {"x": 5, "y": 5})]
    cfg = TrainConfig(arena="climbing_v0", advantage="mean")
    mag = advantages(ros, ["x", "y"], cfg, {})
    assert mag[0] == {"x": 0.25, "y": 0.25} and mag[1] == {"x": -0.25, "y": -0.25}
    assert mag[2] == mag[3] == {"x": 0.0, "y": 0.0}  # a group with equal returns teaches nothing
    ind = advantages(ros, ["x", "y"], cfg.model_copy(update={"algorithm": "igrpo"}), {})
    assert ind[0] == {"x": 0.5, "y": 0.0} and ind[1] == {"x": -0.5, "y": 0.0}
    baselines = {}
    spiral = advantages(ros, ["x", "y"], cfg.model_copy(update={"algorithm": "spiral", "spiral_decay": 0.5}), baselines)
    assert spiral[0]["x"] == 1.0  # first baseline is 0
    assert baselines["x"] == pytest.approx(0.5 * 2.75 + 0.5 * 2.75)  # initialised at the first mean, then averaged
    again = advantages(ros, ["x", "y"], cfg.model_copy(update={"algorithm": "spiral", "spiral_decay": 0.5}), baselines)
    assert again[0]["x"] == pytest.approx(1 - 2.75)


def test_batch_advantage_is_one_baseline_for_the_step_so_a_group_that_all_fails_still_learns():
    ros = [rollout(0, {"x": 1, "y": 1}), rollout(0, {"x": 1, "y": 1}), rollout(1, {"x": 0, "y": 0}), rollout(1, {"x": 0, "y": 0})]
    cfg = TrainConfig(arena="climbing_v0", advantage="batch")
    assert [a["x"] for a in advantages(ros, ["x", "y"], cfg.model_copy(update={"advantage": "std"}), {})] == [0, 0, 0, 0]
    batch = advantages(ros, ["x", "y"], cfg, {})
    np.testing.assert_allclose([a["x"] for a in batch], np.array([0.5, 0.5, -0.5, -0.5]) / (0.5 + 1e-6))
    assert all(a["x"] == a["y"] for a in batch)  # centralised: one advantage for every agent of a rollout
    ind = advantages([rollout(0, {"x": 1, "y": 0}), rollout(1, {"x": 0, "y": 0})], ["x", "y"],
                     cfg.model_copy(update={"algorithm": "igrpo"}), {})
    assert ind[0]["x"] > 0 > ind[1]["x"] and ind[0]["y"] == ind[1]["y"] == 0  # each agent's own return over the step
    with pytest.raises(ValueError, match="advantage: batch .* credit: tree"):
        TrainConfig(arena="climbing_v0", advantage="batch", credit="tree")


def test_discounting_across_turns():
    ro = Rollout(seed=0, group=0, rewards={"x": [(0, 1.0), (2, 1.0)]})
    assert ro.returns(0.5) == {"x": 1.25}


def test_loss_pushes_up_positive_advantage_completions():
    from marl.policy import TinyPolicy

    p = TinyPolicy.create(seed=0, **SMALL)
    outs = p.generate(["prompt one", "prompt one"], max_new_tokens=6, seed=0)
    turns = [Turn("x", 0, "prompt one", o.prompt_ids, o.completion_ids, o.logprobs, o.text, True, False) for o in outs]
    cfg = TrainConfig(arena="climbing_v0", lr=1e-2)
    opt = torch.optim.SGD(p.model.parameters(), lr=0.5)
    before = [float(x.sum()) for x in p.score([t.prompt_ids for t in turns], [t.completion_ids for t in turns])]
    loss, stats = policy_loss(p, turns, [1.0, -1.0], cfg, None, 2)
    assert stats["clipped"] == 0  # first epoch: ratio is exactly 1
    loss.backward()
    opt.step()
    after = [float(x.sum()) for x in p.score([t.prompt_ids for t in turns], [t.completion_ids for t in turns])]
    assert after[0] > before[0] and after[1] < before[1]


def test_each_move_records_its_agents_own_reach():
    """A move's own reach is the probability of the agent's earlier moves in the episode (not the others')."""
    import arenas
    from marl.policy import Completion, ScriptedPolicy
    from marl.rollout import collect

    class Scored(ScriptedPolicy):  # every answer has probability exp(-0.75)
        def generate(self, prompts, **kw):
            return [Completion(c.text, [0], [1, 2], [-0.5, -0.25]) for c in super().generate(prompts, **kw)]

    policy = Scored("iterated_pd_v0", "random")
    ros = collect(lambda: arenas.make("iterated_pd_v0"), {"player_0": policy, "player_1": policy}, [0], 2, max_new_tokens=8)
    for r in ros:
        assert len(r.turns) > 4
        for agent in ("player_0", "player_1"):
            mine = [t.reach_logprob for t in r.turns if t.agent == agent]
            assert mine == pytest.approx([-0.75 * k for k in range(len(mine))])


def test_each_move_records_the_legal_actions_it_chose_among():
    import arenas
    from marl.policy import ScriptedPolicy
    from marl.rollout import collect

    env = arenas.make("iterated_pd_v0")
    env.reset(seed=0)
    legal = tuple(env.infos[env.agent_selection]["legal_actions"])
    policy = ScriptedPolicy("iterated_pd_v0", "random")
    ros = collect(lambda: arenas.make("iterated_pd_v0"), {"player_0": policy, "player_1": policy}, [0], 2, max_new_tokens=8)
    assert len(legal) == 2 and all(t.legal == legal for r in ros for t in r.turns)


def test_reach_weight_scales_a_moves_loss_by_its_inverse_own_reach_capped():
    from marl.policy import TinyPolicy

    p = TinyPolicy.create(seed=0, **SMALL)
    o = p.generate(["prompt one"], max_new_tokens=6, seed=0)[0]
    turn = Turn("x", 1, "prompt one", o.prompt_ids, o.completion_ids, o.logprobs, o.text, True, False, (), float(np.log(0.25)))
    cfg = TrainConfig(arena="climbing_v0")
    loss = {cap: float(policy_loss(p, [turn], [1.0], cfg.model_copy(update={"max_reach_weight": cap}), None, 1)[0])
            for cap in (1.0, 2.0, 10.0)}
    assert loss[1.0] != 0
    assert loss[10.0] == pytest.approx(4 * loss[1.0]) and loss[2.0] == pytest.approx(2 * loss[1.0])


def small_cfg(tmp_path, **kw):
    base = dict(arena="climbing_v0", steps=2, batch_size=1, group_size=4, max_new_tokens=6, tracking=False,
                out=str(tmp_path / "run"), policies={"policies": {"p": {"gpt": SMALL}}})
    return TrainConfig(**(base | kw))


def test_train_is_reproducible_and_saves_policies(tmp_path):
    a = train(small_cfg(tmp_path), progress=False)
    b = train(small_cfg(tmp_path), progress=False)
    keys = ["reward/joint_mean", "valid_rate", "loss/p"]
    assert [[h[k] for k in keys] for h in a["history"]] == [[h[k] for k in keys] for h in b["history"]]
    assert (tmp_path / "run" / "policies" / "p" / "model.safetensors").is_file()


def test_separate_policies_train_separately(tmp_path):
    """Each policy has its own loss, and its own entropy guard: the bonus is on at a step only while that
    policy's entropy is below its own first step's."""
    cfg = small_cfg(tmp_path, policies={"policies": {"row": {"gpt": SMALL}, "col": {"gpt": SMALL, "seed": 1}},
                                         "mapping": {"agent_0": "row", "agent_1": "col"}},
                    steps=6, entropy_coef=0.1, entropy_max_ratio=1.0)
    res = train(cfg, progress=False)
    assert res["policies"]["agent_0"] is not res["policies"]["agent_1"]
    assert {"loss/row", "loss/col"} <= set(res["history"][0])
    first, *rest = res["history"]
    for p in ("row", "col"):
        assert first[f"entropy_coef/{p}"] == 0.0
        assert [h[f"entropy_coef/{p}"] for h in rest] == [0.1 if h[f"entropy/{p}"] < first[f"entropy/{p}"] else 0.0 for h in rest]


def test_policy_entropy_coef_gives_each_policy_its_own_bonus(tmp_path):
    """A bonus for one policy (the other's set to 0): its coefficient is the configured one, the other's stays 0,
    and a policy id that is not in the mapping is a clear error."""
    cfg = small_cfg(tmp_path, policies={"policies": {"row": {"gpt": SMALL}, "col": {"gpt": SMALL, "seed": 1}},
                                         "mapping": {"agent_0": "row", "agent_1": "col"}},
                    steps=3, entropy_coef=0.3, policy_entropy_coef={"col": 0.0})
    history = train(cfg, progress=False)["history"]
    assert [h["entropy_coef/row"] for h in history] == [0.3] * 3
    assert [h["entropy_coef/col"] for h in history] == [0.0] * 3
    only_col = train(cfg.model_copy(update={"entropy_coef": 0.0, "policy_entropy_coef": {"col": 0.2}}), progress=False)["history"]
    assert [(h["entropy_coef/row"], h["entropy_coef/col"]) for h in only_col] == [(0.0, 0.2)] * 3
    with pytest.raises(ValueError, match="policy_entropy_coef: nobody not among the policies"):
        train(cfg.model_copy(update={"policy_entropy_coef": {"nobody": 0.1}}), progress=False)


def test_linear_lr_schedule_anneals_each_policy_rate_to_zero(tmp_path):
    """Each policy's optimiser steps at its own rate times 1 - step / steps; a constant schedule keeps it."""
    cfg = small_cfg(tmp_path, policies={"policies": {"row": {"gpt": SMALL}, "col": {"gpt": SMALL, "seed": 1}},
                                         "mapping": {"agent_0": "row", "agent_1": "col"}},
                    steps=4, lr=1e-3, policy_lr={"col": 4e-4}, lr_schedule="linear")
    history = train(cfg, progress=False)["history"]
    assert [h["lr/row"] for h in history] == pytest.approx([1e-3, 7.5e-4, 5e-4, 2.5e-4])
    assert [h["lr/col"] for h in history] == pytest.approx([4e-4, 3e-4, 2e-4, 1e-4])
    constant = train(cfg.model_copy(update={"lr_schedule": "constant"}), progress=False)["history"]
    assert [h["lr/row"] for h in constant] == pytest.approx([1e-3] * 4)


def test_linear_entropy_schedule_anneals_each_policy_bonus_to_zero(tmp_path):
    """Each policy's entropy coefficient is its own times 1 - step / steps, the learning rate untouched."""
    cfg = small_cfg(tmp_path, policies={"policies": {"row": {"gpt": SMALL}, "col": {"gpt": SMALL, "seed": 1}},
                                         "mapping": {"agent_0": "row", "agent_1": "col"}},
                    steps=4, lr=1e-3, entropy_coef=0.2, policy_entropy_coef={"col": 0.4}, entropy_schedule="linear")
    history = train(cfg, progress=False)["history"]
    assert [h["entropy_coef/row"] for h in history] == pytest.approx([0.2, 0.15, 0.1, 0.05])
    assert [h["entropy_coef/col"] for h in history] == pytest.approx([0.4, 0.3, 0.2, 0.1])
    assert [h["lr/row"] for h in history] == pytest.approx([1e-3] * 4)


def test_no_trainable_policy_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no trainable policy"):
        train(small_cfg(tmp_path, policies={"policies": {"h": {"backend": "scripted", "name": "random"}}}), progress=False)


def test_training_run_is_tracked_in_mlflow(tmp_path, mlflow_store):
    cfg = small_cfg(tmp_path, tracking=True, tracking_uri=mlflow_store.uri, experiment=mlflow_store.experiment,
                    transcripts_every=1)
    res = train(cfg, progress=False)
    run = mlflow_store.client.get_run(res["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["algorithm"] == "magrpo" and run.data.params["policies.policies.p.gpt.n_layer"] == "1"
    assert run.data.tags["arena"] == "climbing_v0" and run.data.tags["policy_backends"] == "tiny"
    history = mlflow_store.client.get_metric_history(res["run_id"], "reward/joint_mean")
    assert [m.step for m in history] == [0, 1]
    for key in ("valid_rate", "advantage/std", "loss/p", "speed/tokens_per_s", "reward/agent_0_mean"):
        assert key in run.data.metrics
    top = {a.path for a in mlflow_store.client.list_artifacts(res["run_id"])}
    assert {"learning_curve.png", "transcripts", "policies"} <= top
    assert res["saved"]["p"].is_dir()


def test_cli_train_reports_config_errors(tmp_path, capsys):
    from league.cli import main

    bad = tmp_path / "t.yaml"
    bad.write_text("arena: climbing_v0\ngroup_size: 1\n")
    assert main(["train", str(bad)]) == 2
    assert "group_size" in capsys.readouterr().err


def test_ray_executor_gives_the_same_results_as_local(tmp_path):
    pytest.importorskip("ray")
    import ray

    local = train(small_cfg(tmp_path, num_workers=2, batch_size=2), progress=False)
    try:
        remote = train(small_cfg(tmp_path, num_workers=2, batch_size=2, executor="ray"), progress=False)
    finally:
        ray.shutdown()
    keys = ["reward/joint_mean", "valid_rate", "advantage/std", "messages/per_episode"]
    assert [[h[k] for k in keys] for h in local["history"]] == [[h[k] for k in keys] for h in remote["history"]]
    # losses agree up to float summation order (actors run torch on one thread)
    np.testing.assert_allclose([h["loss/p"] for h in local["history"]], [h["loss/p"] for h in remote["history"]], atol=1e-6)


def test_final_moves_record_the_rewards_of_every_legal_answer_played_on_copies_of_the_arena():
    """Lewis's listener: its one move ends the episode, so each of its legal answers is played on a copy; the answer
    it gave scores what the episode recorded, and exactly one answer (the target) succeeds. A move after which play
    goes on (the speaker's; all but the last of an iterated prisoner's dilemma) records none."""
    import arenas
    from marl.policy import ScriptedPolicy
    from marl.rollout import collect

    policies = {a: ScriptedPolicy("signalling_v0", "random") for a in ("speaker", "listener")}
    ros = collect(lambda: arenas.make("signalling_v0", num_objects=3), policies, [5, 6], 4, max_new_tokens=8,
                  counterfactual=frozenset({"speaker", "listener"}))
    played = []
    for r in ros:
        speaker, listener = r.turns
        assert speaker.counterfactual == () and len(listener.counterfactual) == len(listener.legal) == 3
        played.append(listener.counterfactual[listener.legal.index(listener.text)])
        assert played[-1] == {a: sum(x for _, x in r.rewards[a]) for a in ("speaker", "listener")}
        assert sorted(o["listener"] for o in listener.counterfactual) == [0.0, 0.0, 1.0]
    assert {p["listener"] for p in played} == {0.0, 1.0}  # the random listener both missed and found the target
    pd = ScriptedPolicy("iterated_pd_v0", "random")
    turns = collect(lambda: arenas.make("iterated_pd_v0"), {"player_0": pd, "player_1": pd}, [0], 1, max_new_tokens=8,
                    counterfactual=frozenset({"player_0", "player_1"}))[0].turns
    assert all(t.counterfactual == () for t in turns[:-1]) and len(turns[-1].counterfactual) == 2


def test_best_answers_are_even_odds_over_the_answers_with_the_best_counterfactual_joint_reward():
    turn = lambda *outcomes: Turn("x", 0, "", [0], [1], [0.0], "", True, False, legal=tuple("abc"[:len(outcomes)]),  # noqa: E731
                                  counterfactual=outcomes)
    cfg = TrainConfig(arena="climbing_v0")
    np.testing.assert_allclose(best_answers(turn({"x": 0, "y": 0}, {"x": 1, "y": 1}, {"x": 2, "y": 0}), cfg), [0, .5, .5])
    np.testing.assert_allclose(best_answers(turn({"x": 3, "y": -3}, {"x": 1, "y": 0}), cfg), [0, 1])  # joint: mean
    np.testing.assert_allclose(best_answers(turn({"x": 1}, {"x": 1}), cfg), [0, 0])  # nothing to choose: no target
    assert not best_answers(Turn("x", 0, "", [0], [1], [0.0], "", True, False, legal=("a", "b")), cfg).any()


def test_tree_mode_branches_every_move_into_a_group():
    import arenas
    from marl.policy import ScriptedPolicy
    from marl.rollout import collect

    policies = {a: ScriptedPolicy("signalling_v0", "random") for a in ("speaker", "listener")}
    ros = collect(lambda: arenas.make("signalling_v0", num_objects=3), policies, [5, 6], 3, max_new_tokens=8, tree=True)
    assert len(ros) == 2 * 3 * 3 and [r.group for r in ros] == [0] * 9 + [1] * 9  # two moves: 3 x 3 leaves per seed
    for r in ros:
        assert [t.agent for t in r.turns] == ["speaker", "listener"] and r.turns[1].path[:1] == r.turns[0].path
    first = {id(r.turns[0]) for r in ros if r.group == 0}
    assert len(first) == 3  # the speaker's 3 samples are shared by their 3 listener children each
    assert len({r.turns[1].path for r in ros if r.group == 0}) == 9
    with pytest.raises(ValueError, match="tree mode needs more than 8 episodes"):
        collect(lambda: arenas.make("signalling_v0"), policies, [5], 3, max_new_tokens=8, tree=True, max_episodes=8)


def test_tree_credit_values_a_node_by_its_reward_plus_the_mean_of_its_children():
    from marl.magrpo import tree_advantages

    def leaf(first, second, reward):  # two moves by x then y; the episode's reward arrives after the second
        t1 = Turn("x", 0, "", [], [1], [0.0], "", True, False, (first,))
        t2 = Turn("y", 1, "", [], [1], [0.0], "", True, False, (first, second))
        return Rollout(seed=0, group=0, turns=[t1, t2], rewards={"x": [(1, reward)], "y": [(1, reward)]}), t1, t2

    made = [leaf(0, 0, 1.0), leaf(0, 1, 0.0), leaf(1, 0, 0.0), leaf(1, 1, 0.0)]
    made[0][0].turns[0] = made[1][0].turns[0] = made[0][1]  # siblings share their parent turn
    made[2][0].turns[0] = made[3][0].turns[0] = made[2][1]
    cfg = TrainConfig(arena="signalling_v0", advantage="mean", credit="tree", gamma=0.5)
    adv = {t.path: a for t, a in tree_advantages([m[0] for m in made], ["x", "y"], cfg)}
    assert adv == {(0,): pytest.approx(0.125), (1,): pytest.approx(-0.125),  # values 0.5 * mean(1, 0) vs 0
                   (0, 0): pytest.approx(0.5), (0, 1): pytest.approx(-0.5), (1, 0): 0.0, (1, 1): 0.0}
    with pytest.raises(ValueError, match="credit: tree is defined for algorithm magrpo only"):
        TrainConfig(arena="signalling_v0", credit="tree", algorithm="igrpo")


def test_cross_credit_replays_every_pairing_and_credits_the_mean_or_the_best_of_them():
    import arenas
    from marl.magrpo import cross_advantages
    from marl.policy import ScriptedPolicy
    from marl.rollout import collect

    table = np.array([[11, -30, 0], [-30, 7, 6], [0, 0, 5]]) / 30  # the climbing game, normalised
    make = lambda: arenas.make("climbing_v0")  # noqa: E731
    policies = {a: ScriptedPolicy("climbing_v0", "random") for a in ("agent_0", "agent_1")}
    ros = collect(make, policies, [3, 4], 6, max_new_tokens=8)
    for credit, reduce in (("cross-mean", np.mean), ("cross-max", np.max)):
        cfg = TrainConfig(arena="climbing_v0", advantage="mean", credit=credit)
        got = cross_advantages(ros, ["agent_0", "agent_1"], cfg, make)
        assert len(got) == 2 * 2 * 6  # every move of both agents in both groups
        for g in (0, 1):
            moves = {a: ["abc".index(t.text.strip()[-1]) for r in ros if r.group == g for t in r.turns if t.agent == a]
                     for a in ("agent_0", "agent_1")}
            joint = table[np.ix_(moves["agent_0"], moves["agent_1"])]  # every pairing of the group's moves
            want = {"agent_0": reduce(joint, axis=1), "agent_1": reduce(joint, axis=0)}
            for a in want:
                mine = [adv for t, adv in got if t.agent == a and any(t is u for r in ros if r.group == g for u in r.turns)]
                np.testing.assert_allclose(mine, want[a] - want[a].mean(), atol=1e-12)
    with pytest.raises(ValueError, match="credit: cross-max is defined for algorithm magrpo only"):
        TrainConfig(arena="climbing_v0", credit="cross-max", algorithm="igrpo")
    speaker_first = lambda: arenas.make("signalling_v0", num_objects=3)  # noqa: E731
    ros = collect(speaker_first, {a: ScriptedPolicy("signalling_v0", "random") for a in ("speaker", "listener")}, [5], 3,
                  max_new_tokens=8)
    with pytest.raises(ValueError, match="listener sees another prompt"):  # the listener reads the speaker's message
        cross_advantages(ros, ["speaker", "listener"], TrainConfig(arena="signalling_v0", credit="cross-mean"), speaker_first)


def test_frozen_policies_play_but_do_not_learn(tmp_path):
    from marl.policy import load_policy

    spec = {"backend": "tiny", "gpt": SMALL, "seed": 3}
    cfg = TrainConfig(arena="signalling_v0", params={"num_objects": 3}, steps=2, batch_size=2, group_size=2,
                      max_new_tokens=4, lr=1e-2, tracking=False, out=str(tmp_path), frozen=["listener"],
                      policies={"policies": {"speaker": spec, "listener": spec}, "mapping": {"speaker": "speaker", "listener": "listener"}})
    result = train(cfg, progress=False)
    fresh = cfg.policies.build(["speaker", "listener"], arena="signalling_v0")
    same = lambda a, b: all(torch.equal(x, y) for x, y in zip(a.model.parameters(), b.model.parameters()))  # noqa: E731
    assert same(result["policies"]["listener"], fresh["listener"]) and not same(result["policies"]["speaker"], fresh["speaker"])
    assert set(result["saved"]) == {"speaker"} and load_policy(str(result["saved"]["speaker"])) is not None
    with pytest.raises(ValueError, match="frozen: nobody not among the policies"):
        train(cfg.model_copy(update={"frozen": ["nobody"]}), progress=False)


def test_each_policy_can_learn_at_its_own_rate(tmp_path):
    """policy_lr: a listener ten times slower moves its weights ten times less in one AdamW step."""
    spec = {"backend": "tiny", "gpt": SMALL, "seed": 3}
    cfg = TrainConfig(arena="signalling_v0", params={"num_objects": 3, "invalid_action": "fallback"}, steps=1, batch_size=2, group_size=4,
                      max_new_tokens=4, lr=1e-2, policy_lr={"listener": 1e-3}, tracking=False, out=str(tmp_path),
                      policies={"policies": {"speaker": spec, "listener": spec}, "mapping": {"speaker": "speaker", "listener": "listener"}})
    result = train(cfg, progress=False)
    fresh = cfg.policies.build(["speaker", "listener"], arena="signalling_v0")
    moved = {a: max(float((x - y).abs().max()) for x, y in zip(result["policies"][a].model.parameters(), fresh[a].model.parameters()))
             for a in ("speaker", "listener")}
    assert moved["listener"] > 0 and moved["speaker"] / moved["listener"] == pytest.approx(10, rel=0.1)
    with pytest.raises(ValueError, match="policy_lr: nobody not among the policies"):
        train(cfg.model_copy(update={"policy_lr": {"nobody": 1.0}}), progress=False)


def test_kl_to_the_reference_is_zero_for_the_same_model_and_grows_as_it_moves():
    from marl.policy import TinyPolicy

    p = TinyPolicy.create(seed=0, **SMALL)
    ref = p.clone()
    outs = p.generate(["prompt one", "prompt two"], max_new_tokens=6, seed=0)
    turns = [Turn("x", 0, "p", o.prompt_ids, o.completion_ids, o.logprobs, o.text, True, False) for o in outs]
    cfg = TrainConfig(arena="climbing_v0", kl_coef=0.1)
    _, same = policy_loss(p, turns, [0.0, 0.0], cfg, ref, 2)
    with torch.no_grad():
        for q in p.model.parameters():
            q.add_(0.05 * torch.randn_like(q))
    _, moved = policy_loss(p, turns, [0.0, 0.0], cfg, ref, 2)
    assert same["kl"] == pytest.approx(0.0, abs=1e-6) and moved["kl"] > 1e-4


def _entropy_after_zero_advantage_steps(**config) -> tuple[float, float]:
    """Next-token entropy of a peaked tiny policy before and after 20 steps of zero advantages (only the entropy
    term can move it), each step's coefficient from ``step_entropy_coef`` as in training."""
    from marl.policy import TinyPolicy

    def entropy(p, prompt_ids):
        with torch.no_grad():
            return float(torch.distributions.Categorical(logits=p.model(torch.tensor([prompt_ids]))[0, -1]).entropy())

    p = TinyPolicy.create(seed=0, **SMALL)
    with torch.no_grad():  # peaked odds to start from, as after a warm start
        p.model.lm_head.weight.mul_(20)
    prompt = p.encode_prompt("prompt one")
    start = entropy(p, prompt)
    cfg, first = TrainConfig(arena="climbing_v0", **config), []
    opt = torch.optim.SGD(p.model.parameters(), lr=0.05)
    for step in range(20):
        outs = p.generate(["prompt one"] * 64, max_new_tokens=1, seed=step)
        turns = [Turn("x", 0, "p", o.prompt_ids, o.completion_ids, o.logprobs, o.text, True, False) for o in outs]
        opt.zero_grad()
        loss, _ = policy_loss(p, turns, [0.0] * 64, cfg, None, 64, step_entropy_coef(cfg, [(t, 0.0) for t in turns], first, cfg.entropy_coef))
        loss.backward()
        opt.step()
    return start, entropy(p, prompt)


def test_entropy_bonus_raises_the_entropy_of_the_answers_distribution():
    start, end = _entropy_after_zero_advantage_steps()
    assert end == pytest.approx(start)  # zero advantages, no bonus: nothing to learn
    start, end = _entropy_after_zero_advantage_steps(entropy_coef=1.0)
    assert end > start + 0.5


def test_entropy_max_ratio_turns_the_bonus_off_above_a_multiple_of_the_first_steps_entropy():
    """The bonus that alone raises the entropy ten-fold stops near its cap, and a higher cap stops higher."""
    start, free = _entropy_after_zero_advantage_steps(entropy_coef=1.0)
    caps = [_entropy_after_zero_advantage_steps(entropy_coef=1.0, entropy_max_ratio=r)[1] for r in (1.5, 3.0)]
    assert start < caps[0] < caps[1] < free / 2


class _ExactScores:
    """A policy whose log p(completion | prompt) is given, for bonuses that score completions under other prompts."""

    def __init__(self, odds: dict[tuple[int, int], float]):
        self.odds = odds

    def score(self, prompts, completions):
        return [torch.tensor([np.log(self.odds[p[0], c[0]])]) for p, c in zip(prompts, completions)]


def _turn(prompt: int, completion: int) -> Turn:
    return Turn("speaker", 0, "", [prompt], [completion], [0.0], "", True, False)


def test_signalling_bonus_adds_each_completions_information_about_its_prompt():
    """Prompts 0 and 1 (three samples each, so q = 1/2) send letter 5 at 0.9 and 0.1: letter 5 from prompt 0 has
    pointwise information log(0.9 / 0.5), letter 6 log(0.1 / 0.5); each prompt's bonus sums to 0, and a speaker whose
    odds ignore its prompt gets no bonus and no information."""
    odds = {(0, 5): 0.9, (0, 6): 0.1, (1, 5): 0.1, (1, 6): 0.9}
    batch = [(_turn(0, 5), 1.0), (_turn(0, 5), -1.0), (_turn(0, 6), 0.0), (_turn(1, 6), 0.5), (_turn(1, 6), 0.5), (_turn(1, 5), 0.0)]
    out, mi = signalling_bonus(_ExactScores(odds), batch, coef=0.5)
    pmi = np.log([1.8, 1.8, 0.2, 1.8, 1.8, 0.2])
    baseline = (2 * np.log(1.8) + np.log(0.2)) / 3
    assert [t for t, _ in out] == [t for t, _ in batch]
    assert [a for _, a in out] == pytest.approx([a + 0.5 * (x - baseline) for (_, a), x in zip(batch, pmi)])
    assert mi == pytest.approx(pmi.mean())
    deaf = {(s, c): 0.5 for s in (0, 1) for c in (5, 6)}
    out, mi = signalling_bonus(_ExactScores(deaf), batch, coef=0.5)
    assert [a for _, a in out] == pytest.approx([a for _, a in batch]) and mi == pytest.approx(0.0)


def test_train_logs_the_information_of_each_policy_with_a_signalling_bonus(tmp_path):
    """Each sample's pointwise information is at most log(1 / q(its prompt)), and a bonus for an unknown id is an error."""
    cfg = small_cfg(tmp_path, signalling_coef={"p": 0.1})
    history = train(cfg, progress=False)["history"]
    assert all(np.isfinite(h["signalling_mi/p"]) and h["signalling_mi/p"] <= np.log(2) for h in history)  # 2 prompts: the 2 agents'
    assert "signalling_mi/p" not in train(small_cfg(tmp_path), progress=False)["history"][0]
    with pytest.raises(ValueError, match="signalling_coef: nobody not among the policies"):
        train(small_cfg(tmp_path, signalling_coef={"nobody": 0.1}), progress=False)


def test_signalling_bonus_alone_teaches_a_speaker_to_tell_its_prompts_apart():
    """With no reward (zero advantages) the bonus alone raises the exact mutual information between two prompts and
    the next token (log 2 at most) ten-fold in 30 steps, from 0.001 to above 0.1 nats; without it nothing moves."""
    from marl.policy import TinyPolicy

    def information(p, prompts):
        with torch.no_grad():
            logp = torch.stack([torch.log_softmax(p.model(torch.tensor([ids]))[0, -1], -1) for ids in prompts])
        mean = torch.logsumexp(logp, 0) - np.log(len(prompts))
        return float((logp.exp() * (logp - mean)).sum(1).mean())

    def run(coef):
        p = TinyPolicy.create(seed=0, **SMALL)
        prompts = [p.encode_prompt("target: red"), p.encode_prompt("target: blue")]
        opt = torch.optim.SGD(p.model.parameters(), lr=0.5)
        start = information(p, prompts)
        for step in range(30):
            outs = p.generate(["target: red", "target: blue"] * 32, max_new_tokens=1, seed=step)
            batch = [(Turn("x", 0, "", o.prompt_ids, o.completion_ids, o.logprobs, o.text, True, False), 0.0) for o in outs]
            if coef:
                batch, _ = signalling_bonus(p, batch, coef)
            opt.zero_grad()
            loss, _ = policy_loss(p, [t for t, _ in batch], [a for _, a in batch], TrainConfig(arena="climbing_v0"), None, len(batch))
            loss.backward()
            opt.step()
        return start, information(p, prompts)

    start, end = run(coef=0.0)
    assert end == pytest.approx(start)
    start, end = run(coef=1.0)
    assert end > max(10 * start, 0.1)


class _AnswerScores:
    """A policy whose answers score two tokens each, both of log-probability ``odds[prompt, answer] / 2``."""

    def __init__(self, odds: dict[tuple[int, str], float]):
        self.odds = odds

    def score(self, prompts, completions):
        return [torch.full((2,), self.odds[p[0], c] / 2, requires_grad=True) for p, c in zip(prompts, completions)]


def test_legal_cross_entropy_weighs_each_prompts_even_odds_cross_entropy_by_its_turns():
    """Two turns at prompt 0 (legal a, b) and one at prompt 1 (legal a): each counts minus the mean over its legal
    answers of their log-probability (per token, or summed with token loss); a turn without legal actions adds 0."""
    odds = {(0, "<answer>a</answer>"): -0.2, (0, "<answer>b</answer>"): -3.0, (1, "<answer>a</answer>"): -1.0}
    turn = lambda prompt, legal: Turn("x", 0, "", [prompt], [7], [0.0], "", True, False, legal=legal)  # noqa: E731
    turns = [turn(0, ("a", "b")), turn(1, ("a",)), turn(0, ("a", "b")), turn(1, ())]
    token = legal_cross_entropy(_AnswerScores(odds), turns, TrainConfig(arena="climbing_v0", loss_agg="token"))
    assert float(token) == pytest.approx(2 * (0.2 + 3.0) / 2 + 1.0)
    sequence = legal_cross_entropy(_AnswerScores(odds), turns, TrainConfig(arena="climbing_v0"))
    assert float(sequence) == pytest.approx(float(token) / 2)
    assert float(legal_cross_entropy(_AnswerScores(odds), [turn(1, ())], TrainConfig(arena="climbing_v0"))) == 0.0
    targets = [np.array([0.0, 1.0]), np.array([0.0]), np.array([0.5, 0.5]), np.array([])]  # given targets replace even odds
    weighted = legal_cross_entropy(_AnswerScores(odds), turns, TrainConfig(arena="climbing_v0", loss_agg="token"), targets)
    assert float(weighted) == pytest.approx(1.5 * 3.0 + 0.5 * 0.2)  # prompt 1's all-zero target adds nothing


def _answer_odds_after_zero_advantage_steps(explore_coef: float = 0.0, **config) -> tuple[float, float, float]:
    """A tiny policy first taught to answer a; then 20 steps of zero advantages on its own samples with a, b and c
    legal, where only the entropy or exploration term can move it. Returns p(b) before, p(b) and p(a) after."""
    from marl.policy import TinyPolicy

    def odds(p, prompt_ids, action):
        with torch.no_grad():
            return float(p.score([prompt_ids], [f"<answer>{action}</answer>"])[0].sum().exp())

    torch.manual_seed(0)
    p = TinyPolicy.create(seed=0, **SMALL)
    opt = torch.optim.Adam(p.model.parameters(), lr=1e-2)
    for _ in range(60):
        opt.zero_grad()
        (-p.score(["pick one"], ["<answer>a</answer>"])[0].mean()).backward()
        opt.step()
    prompt = p.encode_prompt("pick one")
    start = odds(p, prompt, "b")
    cfg, first = TrainConfig(arena="climbing_v0", **config), []
    opt = torch.optim.SGD(p.model.parameters(), lr=0.05)
    for step in range(20):
        outs = p.generate(["pick one"] * 16, max_new_tokens=24, seed=step, stop=("</answer>",))
        turns = [Turn("x", 0, "", o.prompt_ids, o.completion_ids, o.logprobs, o.text, True, False, legal=("a", "b", "c"))
                 for o in outs]
        opt.zero_grad()
        coef = step_entropy_coef(cfg, [(t, 0.0) for t in turns], first, cfg.entropy_coef)
        loss, _ = policy_loss(p, turns, [0.0] * 16, cfg, None, 16, coef, explore_coef)
        loss.backward()
        opt.step()
    return start, odds(p, prompt, "b"), odds(p, prompt, "a")


def test_exploration_term_reopens_a_legal_answer_the_entropy_bonus_cannot():
    """An answer the policy all but never writes (p(b) ~ 1e-9): the entropy bonus, estimated on samples, which lowers
    p(a) below 0.3, leaves p(b) where it was; the exploration term pulls it up by orders of magnitude."""
    start, b, a = _answer_odds_after_zero_advantage_steps()
    assert start < 1e-6 and b == pytest.approx(start) and a > 0.8
    _, b, a = _answer_odds_after_zero_advantage_steps(entropy_coef=1.0)
    assert a < 0.3 and b < 2 * start
    _, b, _ = _answer_odds_after_zero_advantage_steps(explore_coef=1.0)
    assert b > 1e4 * start


@pytest.mark.parametrize("term, metric", [("explore_coef", "legal_cross_entropy"),
                                          ("counterfactual_coef", "counterfactual_cross_entropy")])
def test_train_logs_the_cross_entropy_of_each_policy_with_a_legal_answers_term(tmp_path, term, metric):
    """Logged per policy with the term on (a cross-entropy of answers less likely than 1: positive; in the climbing
    game the second mover's answer is final, so it has counterfactuals, which differ while the first mover plays a
    legal action), not without it; an unknown policy id is an error."""
    policies = {"policies": {"p": {"gpt": SMALL}, "r": {"backend": "scripted", "name": "random"}},
                "mapping": {"agent_0": "r", "agent_1": "p"}}
    history = train(small_cfg(tmp_path, policies=policies, **{term: {"p": 0.1}}), progress=False)["history"]
    assert all(h[f"{metric}/p"] > 0 for h in history)
    assert f"{metric}/p" not in train(small_cfg(tmp_path), progress=False)["history"][0]
    with pytest.raises(ValueError, match=f"{term}: nobody not among the policies"):
        train(small_cfg(tmp_path, **{term: {"nobody": 0.1}}), progress=False)


def test_kl_reference_is_the_start_by_default_or_a_fixed_saved_policy(tmp_path):
    """By default the first step's KL is 0 (the learner is its own reference); ``reference`` pins it to
    another saved policy (a fixed magnet), whose distance shows from the first step."""
    from marl.policy import TinyPolicy

    TinyPolicy.create(seed=5, **SMALL).save(tmp_path / "magnet")
    start = train(small_cfg(tmp_path, steps=1, kl_coef=0.1), progress=False)["history"][0]
    pinned = train(small_cfg(tmp_path, steps=1, kl_coef=0.1, reference=str(tmp_path / "magnet")), progress=False)["history"][0]
    assert start["kl/p"] == pytest.approx(0.0, abs=1e-6) and pinned["kl/p"] > 1e-3


def test_rollout_transcripts_record_what_play_records():
    """Training's transcripts are `agora play`'s: the same steps, messages shown and talk turns, move by move."""
    from dataclasses import asdict

    import arenas
    from arenas.play import play_episode
    from marl.policy import ScriptedPolicy
    from marl.rollout import collect

    make = lambda: arenas.make("consensus_v0", channel={"topology": "ring"})  # noqa: E731  simultaneous rounds
    env = make()
    scripted = ScriptedPolicy("consensus_v0", "heuristic")  # deterministic: the same moves in both loops
    rollouts = collect(make, {a: scripted for a in env.possible_agents}, [3], 2, max_new_tokens=8, keep_transcripts=True)
    played = play_episode(env, {a: arenas.scripted("consensus_v0", "heuristic") for a in env.possible_agents}, seed=3)
    for r in rollouts:
        assert [asdict(s) for s in r.transcript] == [asdict(s) for s in played.steps]
        talk = [t.talk for t in r.turns]
        assert talk == [s.parsed_action is None for s in played.steps] and any(talk) and not all(talk)
