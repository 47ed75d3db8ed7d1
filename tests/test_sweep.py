"""Channel sweeps (``agora sweep``): graph measures are exact, and success follows what the graph allows."""

from __future__ import annotations

import csv
import json
import math

import pytest

from league import sweep as S
from league.cli import main
from marl.cli import policy_factory


def test_graph_measures_of_the_named_topologies_on_four_agents():
    cfg = S.SweepConfig(params={"num_agents": 4})
    m = {t: S.graph_measures(cfg, t) for t in ("complete", "ring", "star", "line")}
    assert {t: m[t]["diameter"] for t in m} == {"complete": 1, "ring": 2, "star": 2, "line": 3}
    # Laplacian spectra: K4 {0,4,4,4}, C4 {0,2,2,4}, star {0,1,1,4}, P4 {0, 2-sqrt2, 2, 2+sqrt2}
    assert [m[t]["algebraic_connectivity"] for t in ("complete", "ring", "star")] == pytest.approx([4, 2, 1], abs=1e-6)
    assert m["line"]["algebraic_connectivity"] == pytest.approx(2 - math.sqrt(2), abs=1e-6)
    directed = S.SweepConfig(params={"num_agents": 4}, channel={"directed": True})
    assert S.graph_measures(directed, "ring")["diameter"] == 3  # one way round: the longest shortest path
    assert S.graph_measures(directed, "star")["diameter"] == math.inf  # leaves cannot reach the centre


def test_success_follows_diameter_and_bandwidth():
    cfg = S.SweepConfig(params={"num_agents": 4, "talk_rounds": 2}, topologies=["complete", "line"], bandwidth=[2, 64], episodes=12)
    rows = {(r["topology"], r["bandwidth"]): r for r in S.sweep(cfg, policy_factory, progress=False)}
    assert rows["complete", 64]["success_rate"] == 1.0
    assert rows["line", 64]["success_rate"] < 0.5  # news needs 3 hops, the team has 2 rounds
    assert rows["complete", 2]["success_rate"] < rows["complete", 64]["success_rate"]  # two characters cannot carry a sum
    assert rows["complete", 64]["messages_per_episode"] == 4 * 3 * 2  # 4 agents x 3 neighbours x 2 rounds


def test_sweep_command_writes_table_json_and_plot_and_ray_gives_the_same_table(tmp_path):
    pytest.importorskip("ray")
    cfg = tmp_path / "sweep.yaml"
    cfg.write_text("arena: consensus_v0\nparams: {num_agents: 4}\nepisodes: 4\ntopologies: [ring, star]\nnoise: [0.0, 0.3]\n")
    assert main(["sweep", str(cfg), "--out", str(tmp_path / "local")]) == 0
    local = list(csv.DictReader((tmp_path / "local" / "sweep.csv").open()))
    assert [(r["topology"], float(r["noise"])) for r in local] == [("ring", 0.0), ("ring", 0.3), ("star", 0.0), ("star", 0.3)]
    assert (tmp_path / "local" / "sweep.png").stat().st_size > 10_000
    assert json.loads((tmp_path / "local" / "sweep.json").read_text())["config"]["noise"] == [0.0, 0.3]
    import ray

    try:
        assert main(["sweep", str(cfg), "--out", str(tmp_path / "ray"), "--executor", "ray"]) == 0
    finally:
        ray.shutdown()
    assert list(csv.DictReader((tmp_path / "ray" / "sweep.csv").open())) == local


def test_a_bad_sweep_config_names_the_key(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("topologies: [complete, hypercube]\n")
    assert main(["sweep", str(cfg)]) == 2
    assert "topologies" in capsys.readouterr().err
