"""Experiment tracking: one MLflow run per training run, logged so that training never dies of it.

``Tracker`` talks to MLflow through its own ``MlflowClient`` bound to one tracking URI; it never touches
MLflow's global state (active run, global tracking URI), so several trackers (e.g. a parent run and its
nested runs, or parallel tests) coexist in one process.

Only the start is strict: an unreachable store fails at once with ``TrackingError`` rather than after a
long training. Once the run exists, logging is best effort: a failure (the server went away, a full
disk) warns once, is counted in ``Tracker.failures``, and training goes on.
"""

from __future__ import annotations

import logging
import math
import os
import subprocess
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunStatus
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode

logger = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
MAX_PARAM_VALUE_LENGTH = 6000  # MLflow rejects longer param values
PARAMS_PER_BATCH = 100  # MLflow's limit per log_batch call
METRICS_PER_BATCH = 1000  # likewise
CHECK_TIMEOUT_S = "5"  # seconds per request for the reachability check of an HTTP store


class TrackingError(RuntimeError):
    """The tracking store cannot be used to start a run."""


def flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts to dotted keys (``{"policy": {"gpt": {"n_layer": 2}}}`` -> ``{"policy.gpt.n_layer": 2}``):
    MLflow params are flat, and dotted keys keep the config's structure searchable."""
    if isinstance(config, dict) and (config or not prefix):
        out: dict[str, Any] = {}
        for key, value in config.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: config}


def code_version() -> str:
    """The git commit of the checkout this package runs from ("unknown" outside a git checkout), so every
    run records which code produced it."""
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = result.stdout.strip()
    return commit if result.returncode == 0 and commit else "unknown"


class Tracker:
    """One MLflow run: params (the flattened config) and tags at start, then metrics and artifacts.

    The tracking URI is ``tracking_uri`` if given, else the ``MLFLOW_TRACKING_URI`` environment variable,
    else ``sqlite:///mlflow.db`` in the current folder (artifacts then go to ``./mlruns``). The experiment
    is created if missing. ``parent_run_id`` makes this a nested run of that run. ``run_id`` attaches to
    an existing run instead of creating one (a resumed job goes on logging where it stopped): the run is
    marked RUNNING again and its params are left as they are.

    Use as a context manager to end the run FINISHED, or FAILED when the block raises (the exception
    propagates); otherwise call ``close``.
    """

    def __init__(self, experiment: str, config: dict, tags: dict[str, str] | None = None,
                 tracking_uri: str | None = None, run_name: str | None = None, parent_run_id: str | None = None,
                 run_id: str | None = None):
        self.tracking_uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
        self.client = MlflowClient(tracking_uri=self.tracking_uri)
        self.failures = 0
        self._warned = False
        self._closed = False

        run_tags = {str(k): str(v) for k, v in (tags or {}).items()}
        run_tags["agora.code_version"] = code_version()
        if run_name:
            run_tags["mlflow.runName"] = run_name
        if parent_run_id:
            run_tags["mlflow.parentRunId"] = parent_run_id
        try:
            self._check_reachable()
            if run_id:
                run = self.client.get_run(run_id)
                self.client.update_run(run_id, status="RUNNING")
            else:
                experiment_id = self._experiment_id(experiment)
                run = self.client.create_run(experiment_id, tags=run_tags, run_name=run_name)
        except TrackingError:
            raise
        except Exception as e:
            raise TrackingError(f"cannot start an MLflow run at {self.tracking_uri!r}: {e}") from e
        self.run_id: str = run.info.run_id
        self.run_name: str = run.info.run_name
        if run_id:
            return  # attached: params and tags were logged when the run was created

        params = [Param(key, str(value)[:MAX_PARAM_VALUE_LENGTH]) for key, value in flatten(config).items()]
        for i in range(0, len(params), PARAMS_PER_BATCH):
            self._safe("log params", self.client.log_batch, self.run_id, params=params[i:i + PARAMS_PER_BATCH])

    def _check_reachable(self) -> None:
        """Fail fast on a dead HTTP server: MLflow's default retries would take minutes to give up."""
        if not self.tracking_uri.startswith(("http://", "https://")):
            return  # a local store fails (or works) right away in _experiment_id
        saved = {name: os.environ.get(name) for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")}
        os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
        os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = CHECK_TIMEOUT_S
        try:
            self.client.search_experiments(max_results=1)
        except Exception as e:
            raise TrackingError(
                f"MLflow tracking server {self.tracking_uri} is unreachable ({type(e).__name__}: {e}); "
                "start the server or unset MLFLOW_TRACKING_URI to use the local SQLite store") from e
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    def _experiment_id(self, name: str) -> str:
        experiment = self.client.get_experiment_by_name(name)
        if experiment is None:
            try:
                return self.client.create_experiment(name)
            except MlflowException as e:  # created meanwhile by a concurrent tracker
                if e.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
                    raise
                experiment = self.client.get_experiment_by_name(name)
        if experiment.lifecycle_stage != "active":
            raise TrackingError(f"experiment {name!r} at {self.tracking_uri} is deleted: restore it or use another name")
        return experiment.experiment_id

    def _safe(self, what: str, fn: Callable, *args, **kwargs) -> bool:
        """Run one logging call; a failure must not end training, so it is counted and warned about once."""
        try:
            fn(*args, **kwargs)
            return True
        except Exception as e:
            self._failed(what, e)
            return False

    def _failed(self, what: str, error: Exception) -> None:
        self.failures += 1
        message = f"MLflow logging failed ({what} to {self.tracking_uri}): {type(error).__name__}: {error}"
        if not self._warned:
            self._warned = True
            warnings.warn(f"{message}; training goes on, further failures are only counted in Tracker.failures",
                          RuntimeWarning, stacklevel=4)
        else:
            logger.debug(message)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """All metrics of one step in one batched request (one request each costs milliseconds apiece).
        NaN and infinite values are skipped: some MLflow stores reject them and they plot as nothing."""
        timestamp = int(time.time() * 1000)
        batch = []
        for key, value in metrics.items():
            try:
                value = float(value)
            except (TypeError, ValueError) as e:
                self._failed(f"metric {key!r}", e)
                continue
            if math.isfinite(value):
                batch.append(Metric(key, value, timestamp, int(step)))
        for i in range(0, len(batch), METRICS_PER_BATCH):
            self._safe("log metrics", self.client.log_batch, self.run_id, metrics=batch[i:i + METRICS_PER_BATCH])

    def log_text(self, text: str, artifact_file: str) -> None:
        self._safe(f"text {artifact_file}", self.client.log_text, self.run_id, text, artifact_file)

    def log_dict(self, data: dict | list, artifact_file: str) -> None:
        """JSON or YAML by the file's extension (MLflow's rule)."""
        self._safe(f"dict {artifact_file}", self.client.log_dict, self.run_id, data, artifact_file)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Upload a local file (under ``artifact_path`` in the run, or at its root)."""
        self._safe(f"artifact {path}", self.client.log_artifact, self.run_id, str(path), artifact_path)

    def log_artifacts(self, directory: str | Path, artifact_path: str | None = None) -> None:
        """Upload a local folder's files (under ``artifact_path`` in the run, or at its root)."""
        self._safe(f"artifacts {directory}", self.client.log_artifacts, self.run_id, str(directory), artifact_path)

    def register_model(self, artifact_path: str, name: str, alias: str | None = None,
                       tags: dict[str, str] | None = None) -> str | None:
        """Register this run's artifact folder as a new version of the model ``name`` (created if missing),
        optionally pointing ``alias`` (e.g. ``champion``) at it. Returns the version, or None on failure."""
        try:
            try:
                self.client.create_registered_model(name)
            except MlflowException as e:
                if e.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
                    raise
            version = self.client.create_model_version(name, f"runs:/{self.run_id}/{artifact_path}", run_id=self.run_id,
                                                       tags={str(k): str(v) for k, v in (tags or {}).items()})
            if alias:
                self.client.set_registered_model_alias(name, alias, version.version)
            return str(version.version)
        except Exception as e:
            self._failed(f"register model {name}", e)
            return None

    def set_tags(self, tags: dict[str, Any]) -> None:
        for key, value in tags.items():
            self._safe(f"tag {key}", self.client.set_tag, self.run_id, str(key), str(value))

    def log_learning_curve(self, history: list[dict[str, float]], keys: list[str],
                           artifact_file: str = "learning_curve.png") -> None:
        """One subplot per key against ``step`` (an entry's ``"step"``, else its index), so a run's progress
        is visible in the MLflow UI without a notebook. Non-finite and missing values are left out."""
        self._safe(f"learning curve {artifact_file}", self._log_learning_curve, history, keys, artifact_file)

    def _log_learning_curve(self, history, keys, artifact_file):
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # Agg: no display, no pyplot global state
        from matplotlib.figure import Figure

        fig = Figure(figsize=(6, 2.5 * max(1, len(keys))), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(max(1, len(keys)), 1, squeeze=False)[:, 0]
        for ax, key in zip(axes, keys):
            points = [(entry.get("step", i), entry[key]) for i, entry in enumerate(history)
                      if key in entry and _finite(entry[key])]
            ax.plot([s for s, _ in points], [float(v) for _, v in points], marker="." if len(points) < 50 else None)
            ax.set_title(key)
            ax.set_xlabel("step")
            ax.set_ylabel(key)
            ax.grid(alpha=0.3)
        fig.suptitle(f"Learning curve: {self.run_name}")
        artifact = Path(artifact_file)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / artifact.name
            fig.savefig(path, dpi=100)
            self.client.log_artifact(self.run_id, str(path), artifact.parent.as_posix() if artifact.parent.parts else None)

    def log_policy(self, policy, name: str, local_dir: str | Path) -> Path:
        """Save the policy (safetensors + config, by its own ``save``) to ``local_dir/name`` first, then upload
        that folder under ``policies/<name>``: the local copy exists even when the upload fails."""
        path = Path(local_dir) / name
        policy.save(path)
        self._safe(f"policy {name}", self.client.log_artifacts, self.run_id, str(path), f"policies/{name}")
        return path

    def close(self, status: str = "FINISHED") -> None:
        """End the run with ``status`` (FINISHED, FAILED or KILLED); later calls do nothing."""
        RunStatus.from_string(status)  # a typo is a bug here, not a tracking failure
        if self._closed:
            return
        self._closed = True
        self._safe("end run", self.client.set_terminated, self.run_id, status)

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.close("FINISHED" if exc_type is None else "FAILED")
        return False


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
