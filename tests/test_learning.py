"""Learning, measured: small seeded runs whose outcome is asserted (longer versions live in benchmarks/)."""

from pathlib import Path

import numpy as np

import arenas
from arenas.config import load_yaml
from arenas.play import play_episode, write_transcript
from marl import sft
from marl.magrpo import TrainConfig, evaluate, train

CONFIGS = Path(__file__).parents[1] / "configs"
GPT = {"n_layer": 2, "n_embd": 64, "n_head": 4, "block_size": 256}


def test_magrpo_after_format_warm_start_learns_to_coordinate_in_the_climbing_game(tmp_path):
    # 1. warm-start the answer format on uniformly random (valid) play: the format, not the choice
    env = arenas.make("climbing_v0")
    episodes = [play_episode(env, {a: arenas.random_policy for a in env.possible_agents}, seed=i, episode=i) for i in range(200)]
    transcript = write_transcript(tmp_path / "random.jsonl", episodes)
    warm = sft.SFTConfig(arenas=["climbing_v0"], transcripts=[str(transcript)], policy={"gpt": GPT}, steps=200,
                         batch_size=16, lr=1e-2, eval_episodes=0, out=str(tmp_path / "sft"))
    sft.train(warm, show=False)
    # 2. MAGRPO with one shared policy for both agents
    cfg = TrainConfig(arena="climbing_v0", steps=30, batch_size=4, group_size=8, max_new_tokens=20, lr=1e-3,
                      tracking=False, out=str(tmp_path / "rl"),
                      policies={"policies": {"p": {"backend": "tiny", "path": str(tmp_path / "sft")}}})
    before = evaluate(cfg, cfg.policies.build(["agent_0", "agent_1"]), episodes=32)
    result = train(cfg, progress=False)
    after = evaluate(cfg, result["policies"], episodes=32)
    # invalid answers cost -1; every valid joint action but the miscoordinated ones pays >= 0
    assert before["valid_rate"] >= 0.9 and after["valid_rate"] >= 0.95  # the warm start reads its prompts as it learned them
    assert after["joint_return"] > before["joint_return"] + 0.2
    assert after["joint_return"] > 0.1
    curve = [h["reward/joint_mean"] for h in result["history"]]
    assert sum(curve[-5:]) / 5 > sum(curve[:5]) / 5 + 0.15  # measured: -0.01 -> +0.21


def test_optimistic_cross_credit_finds_the_climbing_games_optimum_where_independent_grpo_does_not(tmp_path):
    """benchmarks/climbing_seeds.py's seed 2 (separate policies, 60 steps): independent GRPO settles on (b, b); MAGRPO
    with credit cross-max, which replays every pairing of the group's moves and credits each move with its best one,
    reaches the optimum (a, a) (in all 5 of the benchmark's seeds)."""
    from collections import Counter

    from marl.rollout import collect

    warm = sft.SFTConfig(arenas=["climbing_v0"], teacher="random", episodes_per_arena=200, policy={"gpt": GPT, "seed": 2},
                         steps=200, batch_size=16, lr=1e-2, eval_episodes=0, out=str(tmp_path / "sft"), seed=2, max_minutes=1e6)
    sft.train(warm, show=False)
    spec = {"backend": "tiny", "path": str(tmp_path / "sft")}
    settled = {}
    for algorithm, credit in (("igrpo", "trajectory"), ("magrpo", "cross-max")):
        cfg = TrainConfig(arena="climbing_v0", algorithm=algorithm, credit=credit, steps=60, batch_size=4, group_size=8,
                          max_new_tokens=20, lr=1e-3, seed=2, tracking=False, out=str(tmp_path / credit),
                          policies={"policies": {a: spec for a in ("agent_0", "agent_1")}, "mapping": {a: a for a in ("agent_0", "agent_1")}})
        policies = train(cfg, progress=False)["policies"]
        rollouts = collect(lambda: arenas.make("climbing_v0"), policies, [10**9 + i for i in range(64)], 1, max_new_tokens=20,
                           sample_seed=2, keep_transcripts=True)
        settled[credit] = Counter(tuple(str(s.parsed_action) for s in r.transcript) for r in rollouts)
    assert settled["cross-max"][("a", "a")] >= 0.9 * 64  # measured 100%
    assert settled["trajectory"][("a", "a")] <= 0.1 * 64 and settled["trajectory"].most_common(1)[0][0] != ("a", "a")  # (b, b) 98%


def test_magrpo_makes_a_lewis_pair_agree_on_a_code(tmp_path):
    """configs/sft_signalling.yaml then configs/train_signalling.yaml (3 objects): off chance toward a code. The code
    is not stable yet: with the tests' AVX2 kernels the 10-step success rose from 0.26 to 0.57 by step 60 and fell
    back to about 0.4 by step 100 (0.415 after 160 steps); another machine measured ~0.6 after 80-120 steps."""
    warm = sft.load_config(CONFIGS / "sft_signalling.yaml", {"out": str(tmp_path / "sft"), "eval_episodes": 0, "max_minutes": 1e6})
    sft.train(warm, show=False)
    path = str(tmp_path / "sft")
    cfg = load_yaml(CONFIGS / "train_signalling.yaml", TrainConfig, {
        "tracking": False, "out": str(tmp_path / "rl"), "steps": 100,
        "policies": {"policies": {"speaker": {"backend": "tiny", "path": path}, "listener": {"backend": "tiny", "path": path}},
                     "mapping": {"speaker": "speaker", "listener": "listener"}}})
    before = evaluate(cfg, cfg.policies.build(["speaker", "listener"]), episodes=200)
    result = train(cfg, progress=False)
    after = evaluate(cfg, result["policies"], episodes=200)
    assert before["valid_rate"] >= 0.95 and after["valid_rate"] >= 0.95
    assert abs(before["success_rate"] - 1 / 3) < 0.1  # the warm start has no code: chance (measured 0.29)
    curve = [h["success_rate"] for h in result["history"]]
    assert max(np.mean(curve[i:i + 10]) for i in range(0, len(curve) - 9, 10)) > 1 / 3 + 0.15  # measured 0.57
    assert after["success_rate"] > before["success_rate"] + 0.05  # measured 0.29 -> 0.39


def test_independent_grpo_teaches_a_tiny_gpt_to_read_its_card_in_kuhn_poker(tmp_path):
    """The league's warm start (configs/league_kuhn.yaml), then 60 steps as player 1 against a Nash player 0:
    the policy learns to fold a Jack and call with a King when facing a bet, which needs the card it holds."""
    from league.exploitability import action_probs, info_states
    from league.runner import load_config, warm_start_config

    sft.train(warm_start_config(load_config(CONFIGS / "league_kuhn.yaml"), tmp_path / "sft"), show=False)
    cfg = TrainConfig(arena="kuhn_poker_v0", algorithm="igrpo", steps=60, batch_size=4, group_size=8, lr=3e-4,
                      max_new_tokens=24, tracking=False, out=str(tmp_path / "rl"),
                      policies={"policies": {"me": {"backend": "tiny", "path": str(tmp_path / "sft")},
                                             "nash": {"backend": "scripted", "name": "heuristic"}},
                                "mapping": {"player_0": "nash", "player_1": "me"}})
    states = [s for s in info_states() if s.key in ("0b", "2b")]  # Jack / King, facing a bet
    before = action_probs(cfg.policies.build(["player_0", "player_1"], "kuhn_poker_v0")["player_1"], states)
    result = train(cfg, progress=False)
    after = action_probs(result["policies"]["player_1"], states)
    assert before["0b"]["bet"] > 0.2 and before["2b"]["bet"] > 0.5  # measured: 0.37 and 0.92 (random odds per state)
    # calling with a Jack always loses 2 (folding: 1); calling with a King always wins 2. Per-step rewards are
    # dominated by the luck of the deal, so the measurement is the policy itself.
    assert after["0b"]["bet"] < 0.1 and after["2b"]["bet"] > 0.9
