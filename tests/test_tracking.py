"""MLflow tracking: what a run records, nested runs, failing fast on a dead server, and never failing mid-run."""

import math
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

import marl
from marl import tiny_gpt
from marl.policy import TinyPolicy
from marl.tracking import MAX_PARAM_VALUE_LENGTH, Tracker, TrackingError, flatten


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def expected_code_version() -> str:
    result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(marl.__file__).parent, capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else "unknown"


def test_flatten():
    assert flatten({"a": {"b": {"c": 1}, "d": [1, 2]}, "e": {}, "f": None}) == {"a.b.c": 1, "a.d": [1, 2], "e": {}, "f": None}


def test_run_records_params_tags_and_metrics(mlflow_store):
    config = {"policy": {"gpt": {"n_layer": 2, "n_embd": 64}, "backend": "tiny"}, "lr": 3e-4,
              "prompt": "x" * (MAX_PARAM_VALUE_LENGTH + 100), "arenas": ["kuhn", "tictactoe"],
              "many": {f"k{i}": i for i in range(150)}}  # > 100 params: several batches
    with Tracker(mlflow_store.experiment, config, tags={"arena": "kuhn"}, tracking_uri=mlflow_store.uri,
                 run_name="magrpo-kuhn") as tracker:
        for step in range(5):
            tracker.log_metrics({"loss": 1.0 / (step + 1), "reward": math.nan if step == 2 else step,
                                 "kl": math.inf}, step=step)
    run = mlflow_store.client.get_run(tracker.run_id)
    params = run.data.params
    assert params["policy.gpt.n_layer"] == "2" and params["policy.backend"] == "tiny" and params["lr"] == "0.0003"
    assert params["arenas"] == "['kuhn', 'tictactoe']"
    assert params["prompt"] == "x" * MAX_PARAM_VALUE_LENGTH
    assert len(params) == 6 + 150
    tags = run.data.tags
    assert tags["arena"] == "kuhn" and tags["mlflow.runName"] == "magrpo-kuhn" == run.info.run_name
    assert tags["agora.code_version"] == expected_code_version()
    assert "mlflow.parentRunId" not in tags
    loss = mlflow_store.client.get_metric_history(tracker.run_id, "loss")
    assert [(m.step, m.value) for m in sorted(loss, key=lambda m: m.step)] == [(s, 1.0 / (s + 1)) for s in range(5)]
    reward = mlflow_store.client.get_metric_history(tracker.run_id, "reward")
    assert sorted(m.step for m in reward) == [0, 1, 3, 4]  # NaN skipped
    assert mlflow_store.client.get_metric_history(tracker.run_id, "kl") == []
    assert run.info.status == "FINISHED" and tracker.failures == 0


def test_artifacts_and_policy(mlflow_store, tmp_path):
    tracker = Tracker(mlflow_store.experiment, {"seed": 0}, tracking_uri=mlflow_store.uri)
    tracker.log_text("episode 1: ...", "transcripts/episode_1.txt")
    tracker.log_dict({"elo": {"a": 1010.0}}, "ratings.json")
    history = [{"step": s, "loss": 1.0 / (s + 1), "reward": s * 0.1} for s in range(10)] + [{"step": 10, "loss": math.nan}]
    tracker.log_learning_curve(history, ["loss", "reward"])
    policy = TinyPolicy.create(n_layer=1, n_embd=32, n_head=2)
    local = tracker.log_policy(policy, "tiny", tmp_path / "checkpoints")
    tracker.close()
    assert tracker.failures == 0

    client = mlflow_store.client
    assert local == tmp_path / "checkpoints" / "tiny"
    local_files = sorted(p.name for p in local.iterdir())
    assert "policy.json" in local_files and any(name.endswith(".safetensors") for name in local_files)
    assert {a.path for a in client.list_artifacts(tracker.run_id)} == {
        "transcripts", "ratings.json", "learning_curve.png", "policies"}
    assert [a.path for a in client.list_artifacts(tracker.run_id, "transcripts")] == ["transcripts/episode_1.txt"]
    assert sorted(Path(a.path).name for a in client.list_artifacts(tracker.run_id, "policies/tiny")) == local_files
    assert str(mlflow_store.artifacts) in client.get_run(tracker.run_id).info.artifact_uri.replace("file://", "")

    downloaded = Path(client.download_artifacts(tracker.run_id, "", str(tmp_path / "downloaded")))
    assert (downloaded / "learning_curve.png").read_bytes().startswith(b"\x89PNG")
    assert (downloaded / "ratings.json").read_text().replace(" ", "").replace("\n", "") == '{"elo":{"a":1010.0}}'
    assert (downloaded / "transcripts" / "episode_1.txt").read_text() == "episode 1: ..."
    reloaded = TinyPolicy(tiny_gpt.load(downloaded / "policies" / "tiny"))
    prompts = ["Legal actions: pass, bet."]
    assert policy.score(prompts, ["bet"])[0].tolist() == reloaded.score(prompts, ["bet"])[0].tolist()


def test_nested_runs_and_failed_status(mlflow_store):
    with Tracker(mlflow_store.experiment, {}, tracking_uri=mlflow_store.uri, run_name="league") as parent:
        with pytest.raises(ValueError, match="diverged"):
            with Tracker(mlflow_store.experiment, {}, tracking_uri=mlflow_store.uri, parent_run_id=parent.run_id) as child:
                raise ValueError("diverged")
    client = mlflow_store.client
    child_run = client.get_run(child.run_id)
    assert child_run.data.tags["mlflow.parentRunId"] == parent.run_id
    assert child_run.data.tags["mlflow.runName"] == child_run.info.run_name != ""  # a generated name
    assert child_run.info.status == "FAILED"
    assert client.get_run(parent.run_id).info.status == "FINISHED"
    child.close()  # once ended, a run stays as it ended
    assert client.get_run(child.run_id).info.status == "FAILED"


def test_tracking_uri_precedence(mlflow_store, mlflow_template_db, tmp_path, monkeypatch):
    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", dead)
    with Tracker(mlflow_store.experiment, {}, tracking_uri=mlflow_store.uri) as explicit:  # the argument wins
        pass
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_store.uri)
    with Tracker(mlflow_store.experiment, {}) as from_env:
        pass
    assert explicit.tracking_uri == from_env.tracking_uri == mlflow_store.uri
    assert {r.info.run_id for r in mlflow_store.client.search_runs([mlflow_store.experiment_id])} == {
        explicit.run_id, from_env.run_id}

    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    workdir = tmp_path / "workdir"
    workdir.mkdir()
    shutil.copyfile(mlflow_template_db, workdir / "mlflow.db")  # already migrated: no slow first start
    monkeypatch.chdir(workdir)
    with Tracker("default-store", {}) as default:
        pass
    assert default.tracking_uri == "sqlite:///mlflow.db"
    assert MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}").get_run(default.run_id).info.status == "FINISHED"


def test_unreachable_server_fails_fast(monkeypatch):
    uri = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "7")
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT", raising=False)
    start = time.monotonic()
    with pytest.raises(TrackingError, match="unreachable") as error:
        Tracker("test", {"lr": 1e-3}, tracking_uri=uri)
    assert time.monotonic() - start < 10
    assert uri in str(error.value) and "unset MLFLOW_TRACKING_URI" in str(error.value)
    assert isinstance(error.value, RuntimeError)
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "7" and "MLFLOW_HTTP_REQUEST_TIMEOUT" not in os.environ


def test_failures_mid_run_never_raise(mlflow_store, tmp_path, monkeypatch):
    tracker = Tracker(mlflow_store.experiment, {}, tracking_uri=mlflow_store.uri)
    tracker.log_metrics({"loss": 1.0}, step=0)

    def broken(*args, **kwargs):
        raise ConnectionError("store went away")

    for method in ("log_batch", "log_text", "log_dict", "log_artifact", "log_artifacts", "set_terminated"):
        monkeypatch.setattr(tracker.client, method, broken)
    policy = TinyPolicy.create(n_layer=1, n_embd=32, n_head=2)
    with pytest.warns(RuntimeWarning, match="store went away") as warned:
        tracker.log_metrics({"loss": 0.5}, step=1)
        tracker.log_text("x", "x.txt")
        tracker.log_dict({"a": 1}, "a.json")
        tracker.log_learning_curve([{"step": 0, "loss": 1.0}], ["loss"])
        local = tracker.log_policy(policy, "tiny", tmp_path / "checkpoints")
        tracker.log_metrics({"loss": 0.25, "bad": "not a number"}, step=2)
        tracker.close()
    assert len([w for w in warned if issubclass(w.category, RuntimeWarning)]) == 1  # warned once
    assert tracker.failures == 8
    assert (local / "policy.json").exists() and any(local.glob("*.safetensors"))  # saved despite the failed upload
    assert [m.step for m in mlflow_store.client.get_metric_history(tracker.run_id, "loss")] == [0]


def test_dead_http_store_mid_run_never_raises(mlflow_store, tmp_path, monkeypatch):
    tracker = Tracker(mlflow_store.experiment, {}, tracking_uri=mlflow_store.uri)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # keep the test fast; the tracker itself never raises
    tracker.client = MlflowClient(f"http://127.0.0.1:{free_port()}")  # the store went away
    with pytest.warns(RuntimeWarning, match="MLflow logging failed"):
        tracker.log_metrics({"loss": 1.0}, step=0)
        local = tracker.log_policy(TinyPolicy.create(n_layer=1, n_embd=32, n_head=2), "tiny", tmp_path)
        tracker.close("KILLED")
    assert tracker.failures == 3 and (local / "policy.json").exists()
