"""Where rollouts run: in this process (default) or on Ray actors (``executor: ray``).

The start states of a step are split into ``num_workers`` partitions, and each partition is one batched
``collect`` call with its own sampling seed. The local executor runs the partitions one after another,
Ray runs them at once on actors; since the partitions are identical, the same seed gives the same
rollouts either way. Each actor builds the policies once and receives only new weights per step,
sent once through the object store.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from marl.policy import Policy, PolicyMapping
from marl.rollout import Rollout, collect


def partitions(seeds: list[int], n: int) -> list[list[int]]:
    return [[int(s) for s in p] for p in np.array_split(np.array(seeds, dtype=np.int64), min(n, len(seeds))) if len(p)]


def weights(policies: dict[str, Policy]) -> dict[int, dict[str, Any]]:
    """State dicts of the trainable policies, keyed by their order in the mapping."""
    unique = list(dict.fromkeys(policies.values()))
    return {i: {k: v.detach().cpu() for k, v in p.model.state_dict().items()} for i, p in enumerate(unique) if hasattr(p, "model")}


class LocalExecutor:
    def __init__(self, make_env: Callable[[], Any], policies: dict[str, Policy], num_workers: int = 1):
        self.make_env, self.policies, self.num_workers = make_env, policies, num_workers

    def run(self, seeds: list[int], group_size: int, sample_seed: int, **gen: Any) -> list[Rollout]:
        out: list[Rollout] = []
        for k, part in enumerate(partitions(seeds, self.num_workers)):
            out += _offset(collect(self.make_env, self.policies, part, group_size, sample_seed=sample_seed + k, **gen), out)
        return out

    def close(self) -> None:
        pass


def _offset(rollouts: list[Rollout], done: list[Rollout]) -> list[Rollout]:
    """Group ids are per collect call; make them unique across partitions."""
    first = done[-1].group + 1 if done else 0
    for r in rollouts:
        r.group += first
    return rollouts


class RayExecutor:
    def __init__(self, arena: str, arena_kwargs: dict[str, Any], mapping: PolicyMapping, policies: dict[str, Policy],
                 num_workers: int, address: str | None = None):
        import ray

        if not ray.is_initialized():
            ray.init(address=address, num_cpus=None if address else num_workers, include_dashboard=False,
                     log_to_driver=False, ignore_reinit_error=True)
        self.ray, self.policies = ray, policies
        worker = ray.remote(num_cpus=1)(_Worker)
        self.workers = [worker.remote(arena, arena_kwargs, mapping.model_dump(mode="json"), list(policies)) for _ in range(num_workers)]

    def run(self, seeds: list[int], group_size: int, sample_seed: int, **gen: Any) -> list[Rollout]:
        ref = self.ray.put(weights(self.policies))  # once per step, shared by every actor
        parts = partitions(seeds, len(self.workers))
        futures = [w.run.remote(ref, part, group_size, sample_seed + k, gen) for k, (w, part) in enumerate(zip(self.workers, parts))]
        out: list[Rollout] = []
        for result in self.ray.get(futures):
            out += _offset(result, out)
        return out

    def close(self) -> None:
        for w in self.workers:
            self.ray.kill(w)


class _Worker:
    """A Ray actor: the arena and the policies, built once; weights arrive each step."""

    def __init__(self, arena: str, arena_kwargs: dict[str, Any], mapping: dict[str, Any], agents: list[str]):
        import torch

        import arenas

        torch.set_num_threads(1)
        self.make_env = lambda: arenas.make(arena, **arena_kwargs)
        self.policies = PolicyMapping.model_validate(mapping).build(agents, arena=arena)

    def run(self, state: dict[int, dict[str, Any]], seeds: list[int], group_size: int, sample_seed: int, gen: dict[str, Any]) -> list[Rollout]:
        for i, p in enumerate(dict.fromkeys(self.policies.values())):
            if i in state:
                p.model.load_state_dict(state[i])
        return collect(self.make_env, self.policies, seeds, group_size, sample_seed=sample_seed, **gen)
