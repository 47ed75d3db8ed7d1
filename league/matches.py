"""Where league matches run: in this process (default) or on Ray actors (``executor: ray``).

A match is a :class:`MatchSpec` (an arena, one player and one policy per seat, a seed); playing it gives
a :class:`~league.league.MatchResult` whose scores are each seat's return. The life of a list of specs:

1. **Checked** before any work: arena, arena parameters, number of seats, policies (a saved policy
   folder that exists, or a name ``marl.policy.parse_policy`` knows), unique match ids. Bad input
   raises ``ValueError`` naming the match and what is wrong.
2. **Planned** into batches: specs with the same arena, parameters, policies and sampling settings
   are played together, at most ``batch_size`` at a time, in lock step (``marl.rollout.collect``), so
   each policy answers the prompts of a whole batch with one ``generate`` call. The plan depends only
   on the specs and ``batch_size``, and the sampling seed of a batch only on its specs' seeds: the same
   specs give the same results in this process and on Ray. With ``batch_size=1`` each result depends
   on its own spec alone (``play_match``).
3. **Played**: :class:`LocalMatches` plays the batches one after another; :class:`RayMatches` hands
   them to actors as they become free. Each actor keeps the policies it loaded (:class:`PolicyCache`);
   the files of saved policies travel once through the object store, and an actor fetches them only
   when it does not hold that version yet. An actor that dies mid-batch is replaced and its batch is
   played again on the new actor (the same result, since batches are seeded), so every spec gets
   exactly one result, in the order of the specs.

A policy folder is identified by its path and a cheap fingerprint (relative path, size and
modification time of each file): a learner's folder that was saved again is reloaded, an immutable
snapshot stays cached.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import os
import shutil
import tempfile
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from arenas.scripted import SCRIPTED
from league.league import MatchResult

DEFAULT_BATCH_SIZE = 8
Fingerprint = tuple[tuple[str, int, int], ...]


@dataclass(frozen=True)
class MatchSpec:
    """One match to play. ``players`` and ``policies`` go seat by seat, in ``env.possible_agents`` order."""

    match_id: str  # unique; the runner derives it deterministically (e.g. "r12-main_agent_0-3")
    arena: str
    players: tuple[str, ...]  # league player/snapshot ids, one per seat
    policies: tuple[str, ...]  # per seat: a saved policy folder, or a spec string (``random``, ``heuristic``, ``tiny:DIR``)
    seed: int
    params: dict = field(default_factory=dict)  # the arena's keyword arguments
    max_new_tokens: int = 24
    temperature: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "players", tuple(self.players))
        object.__setattr__(self, "policies", tuple(self.policies))
        object.__setattr__(self, "params", dict(self.params))  # our own copy: nobody else can change it

    def __hash__(self) -> int:  # the params dict enters through its canonical JSON
        return hash((self.match_id, self.arena, self.players, self.policies, self.seed, _canonical(self.params),
                     self.max_new_tokens, self.temperature))


def _canonical(params: dict) -> str:
    return json.dumps(params, sort_keys=True, default=repr)


# ---------------------------------------------------------------------------- checking the specs
def check_specs(specs: Sequence[MatchSpec]) -> None:
    """Raise ``ValueError`` naming the match and the problem for anything that would fail later."""
    import arenas
    from marl.policy import parse_policy

    seats: dict[tuple[str, str], list[str]] = {}  # (arena, params) -> possible agents
    problems: dict[tuple[str, str], str | None] = {}  # (policy, arena) -> what is wrong with it
    seen: set[str] = set()
    for spec in specs:
        if not isinstance(spec, MatchSpec):
            raise ValueError(f"expected MatchSpec, got {type(spec).__name__}")
        where = f"match {spec.match_id!r}"
        if not isinstance(spec.match_id, str) or not spec.match_id:
            raise ValueError(f"{where}: match_id must be a non-empty string")
        if spec.match_id in seen:
            raise ValueError(f"{where}: the match id appears more than once (each match is played and recorded once)")
        seen.add(spec.match_id)
        if isinstance(spec.seed, bool) or not isinstance(spec.seed, numbers.Integral):
            raise ValueError(f"{where}: seed must be an integer, got {spec.seed!r}")
        if spec.max_new_tokens < 1 or spec.temperature < 0:
            raise ValueError(f"{where}: need max_new_tokens >= 1 and temperature >= 0, "
                             f"got {spec.max_new_tokens} and {spec.temperature}")
        key = (spec.arena, _canonical(spec.params))
        if key not in seats:
            try:
                arenas.spec(spec.arena)
            except KeyError as err:
                raise ValueError(f"{where}: {err.args[0]}") from None
            try:
                seats[key] = list(arenas.make(spec.arena, **spec.params).possible_agents)
            except (TypeError, ValueError) as err:
                raise ValueError(f"{where}: bad parameters {spec.params} for arena {spec.arena}: {err}") from None
        agents = seats[key]
        for what, values in (("players", spec.players), ("policies", spec.policies)):
            if len(values) != len(agents):
                raise ValueError(f"{where}: {len(values)} {what} for the {len(agents)} seats of {spec.arena} "
                                 f"({', '.join(agents)})")
        for seat, (player, policy) in enumerate(zip(spec.players, spec.policies)):
            if not isinstance(policy, str) or not policy:
                raise ValueError(f"{where}, seat {seat}: a policy must be a non-empty string, got {policy!r}")
            if (policy, spec.arena) not in problems:
                problems[policy, spec.arena] = _policy_problem(policy, spec.arena, parse_policy)
            problem = problems[policy, spec.arena]
            if problem:
                raise ValueError(f"{where}, seat {seat} ({agents[seat]}, player {player!r}): {problem}")


def _policy_problem(policy: str, arena: str, parse_policy: Callable) -> str | None:
    import arenas

    kind, _, rest = policy.partition(":")
    if _named(policy) or (kind == "remote" and "@" in rest):
        pass
    elif kind == "tiny" and rest:
        missing = [f for f in ("config.json", "model.safetensors") if not (Path(rest) / f).is_file()]
        if not Path(rest).is_dir():
            return f"policy folder {rest!r} (from {policy!r}) does not exist"
        if missing:
            return f"policy folder {rest!r} (from {policy!r}) has no {' or '.join(missing)}"
    elif kind == "hf" and rest:
        if rest.startswith((".", "/", "~")) and not Path(rest).is_dir():
            return f"model folder {rest!r} (from {policy!r}) does not exist"
    elif not Path(policy).exists():
        return f"policy folder {policy!r} does not exist"
    elif not (Path(policy) / "policy.json").is_file():
        return f"policy folder {policy!r} has no policy.json (not a saved policy)"
    try:
        spec = parse_policy(policy)
        if spec.backend == "scripted":
            arenas.scripted(arena, spec.name or "random")
    except (ValueError, KeyError) as err:  # KeyError: a policy.json without "backend"
        return f"{err.__class__.__name__}: {err}" if isinstance(err, KeyError) else str(err)
    return None


def _named(policy: str) -> bool:
    return policy in (*SCRIPTED, "tiny", "smollm2")


def policy_folder(policy: str) -> tuple[str, Path] | None:
    """``(prefix, folder)`` when the policy names saved files on disk: ``DIR`` (a folder with policy.json),
    ``tiny:DIR`` or ``hf:DIR``; None for names (``random``, ``smollm2``, a hub model id, ...)."""
    if _named(policy):
        return None
    kind, _, rest = policy.partition(":")
    if kind in ("tiny", "hf") and rest:
        return (kind + ":", Path(rest)) if Path(rest).is_dir() else None
    if kind == "remote" and "@" in rest:
        return None
    return ("", Path(policy)) if (Path(policy) / "policy.json").is_file() else None


def fingerprint(folder: str | Path) -> Fingerprint:
    """Relative path, size and modification time (ns) of every file: changes when the policy is saved again."""
    root = Path(folder)
    out = []
    for dirpath, _, files in os.walk(root):
        for name in files:
            st = os.stat(os.path.join(dirpath, name))
            out.append((Path(dirpath, name).relative_to(root).as_posix(), st.st_size, st.st_mtime_ns))
    return tuple(sorted(out))


def _absolute(spec: MatchSpec) -> MatchSpec:
    """The spec with its policy folders as absolute paths (actors may run in another working directory)."""
    policies = []
    for p in spec.policies:
        found = policy_folder(p)
        policies.append(p if found is None else found[0] + str(found[1].resolve()))
    return spec if tuple(policies) == spec.policies else replace(spec, policies=tuple(policies))


# ---------------------------------------------------------------------------- policies, loaded once
class PolicyCache:
    """Loaded policies by name or folder (with its fingerprint) and arena, the least recently used evicted
    beyond ``max_policies``. ``loads`` counts the policies built."""

    def __init__(self, max_policies: int = 32):
        self.max_policies = max_policies
        self.loads = 0
        self._items: OrderedDict[tuple[str, str], tuple[Fingerprint | None, Any]] = OrderedDict()

    def get(self, policy: str, arena: str, shipped: tuple[Fingerprint, Any] | None = None):
        """The policy a spec string names. ``shipped``: its folder's fingerprint and an object ref of its
        files (from :class:`RayMatches`), fetched only when this cache does not hold that version."""
        from marl.policy import load_policy

        found = policy_folder(policy) if shipped is None else None
        if shipped is not None:  # the folder's files, sent by RayMatches
            key, fp = (policy, arena), shipped[0]
            load = lambda: _load_shipped(policy, shipped[1], arena)  # noqa: E731
        elif found is not None:  # a folder on this machine
            key, fp = (found[0] + str(found[1].resolve()), arena), fingerprint(found[1])
            load = lambda: load_policy(policy, arena)  # noqa: E731
        else:  # a name: scripted, a fresh tiny GPT, a hub model, an endpoint
            key, fp = (policy, arena), None
            load = lambda: load_policy(policy, arena)  # noqa: E731
        hit = self._items.get(key)
        if hit is not None and hit[0] == fp:
            self._items.move_to_end(key)
            return hit[1]
        loaded = load()
        if hasattr(loaded, "model"):
            loaded.model.eval().requires_grad_(False)
        self.loads += 1
        self._items[key] = (fp, loaded)
        self._items.move_to_end(key)
        while len(self._items) > self.max_policies:
            self._items.popitem(last=False)
        return loaded


def _read_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _load_shipped(policy: str, ref: Any, arena: str):
    """Write the shipped files into a temporary folder, load the policy from there, remove the folder."""
    import ray

    from marl.policy import load_policy

    files = ray.get(ref)
    prefix = policy.split(":", 1)[0] + ":" if policy.startswith(("tiny:", "hf:")) else ""
    tmp = Path(tempfile.mkdtemp(prefix="agora-policy-"))
    try:
        for rel, data in files.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_bytes(data)
        return load_policy(prefix + str(tmp), arena)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------- playing
def plan(specs: Sequence[MatchSpec], batch_size: int = DEFAULT_BATCH_SIZE) -> list[list[int]]:
    """Batches of spec indices: specs that can share lock-step generation (same arena, parameters, policies
    and sampling settings), split into near-equal parts of at most ``batch_size``. Depends on nothing else."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    groups: dict[tuple, list[int]] = {}
    for i, s in enumerate(specs):
        groups.setdefault((s.arena, _canonical(s.params), s.policies, s.max_new_tokens, s.temperature), []).append(i)
    batches = []
    for idx in groups.values():
        n = math.ceil(len(idx) / batch_size)
        size, extra = divmod(len(idx), n)
        start = 0
        for k in range(n):
            end = start + size + (k < extra)
            batches.append(idx[start:end])
            start = end
    return batches


def sample_seed(seeds: Sequence[int]) -> int:
    """The sampling seed of a batch: a hash of its matches' seeds (a one-match batch: of its own seed)."""
    digest = hashlib.sha256(json.dumps([int(s) for s in seeds]).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def play_batch(specs: Sequence[MatchSpec], cache: PolicyCache | None = None,
               shipped: dict[str, tuple[Fingerprint, Any]] | None = None) -> list[MatchResult]:
    """Play matches that share arena, parameters, policies and sampling settings, in lock step."""
    import arenas
    from marl.rollout import collect

    first = specs[0]
    if any((s.arena, s.params, s.policies, s.max_new_tokens, s.temperature) !=
           (first.arena, first.params, first.policies, first.max_new_tokens, first.temperature) for s in specs):
        raise ValueError("play_batch needs specs with the same arena, params, policies and sampling settings; use plan()")
    cache = cache if cache is not None else PolicyCache()
    shipped = shipped or {}
    make_env = lambda: arenas.make(first.arena, **first.params)  # noqa: E731
    agents = make_env().possible_agents
    policies = {a: cache.get(p, first.arena, shipped.get(p)) for a, p in zip(agents, first.policies)}
    seeds = [s.seed for s in specs]
    rollouts = collect(make_env, policies, seeds, 1, max_new_tokens=first.max_new_tokens,
                       temperature=first.temperature, sample_seed=sample_seed(seeds))
    out = []
    for s, r in zip(specs, rollouts):
        returns = r.returns()
        out.append(MatchResult(s.match_id, s.arena, s.players, tuple(float(returns[a]) for a in agents), s.seed))
    return out


def play_match(spec: MatchSpec, cache: PolicyCache | None = None) -> MatchResult:
    """One episode of one match, seeded by ``spec.seed``; scores are each seat's return."""
    check_specs([spec])
    return play_batch([spec], cache)[0]


def _progress(enabled: bool, total: int):
    """A rich progress bar over matches; ``bar(n)`` advances it, ``bar(None)`` closes it."""
    if not enabled:
        return lambda n: None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("matches"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    task = bar.add_task("matches", total=total)
    bar.start()

    def advance(n: int | None) -> None:
        if n is None:
            bar.stop()
        else:
            bar.advance(task, n)

    return advance


class LocalMatches:
    """Plays matches in this process, batch after batch, with one policy cache across runs."""

    def __init__(self, batch_size: int = DEFAULT_BATCH_SIZE, cache: PolicyCache | None = None):
        self.batch_size = batch_size
        self.cache = cache if cache is not None else PolicyCache()

    def run(self, specs: list[MatchSpec], progress: bool = False) -> list[MatchResult]:
        check_specs(specs)
        results: list[MatchResult | None] = [None] * len(specs)
        bar = _progress(progress, len(specs))
        try:
            for batch in plan(specs, self.batch_size):
                for i, r in zip(batch, play_batch([specs[i] for i in batch], self.cache)):
                    results[i] = r
                bar(len(batch))
        finally:
            bar(None)
        return results  # type: ignore[return-value]

    def close(self) -> None:
        pass

    def __enter__(self) -> LocalMatches:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# ---------------------------------------------------------------------------- Ray
class RayMatches:
    """Plays matches on ``num_workers`` Ray actors (1 CPU each). Uses the running Ray instance, or starts
    one (``address`` for an existing cluster; else a local one with ``num_workers`` CPUs); ``close``
    stops the actors, not Ray. Ray runs its workers at nice 15: on a machine shared with other jobs, set
    ``RAY_worker_niceness=0`` before Ray starts. A batch whose actor dies is played again on a fresh
    actor, up to ``max_retries`` times. ``replaced`` counts the actors replaced so far; ``busy`` maps each busy
    actor's index in ``workers`` to the match ids it is playing."""

    def __init__(self, num_workers: int = 2, address: str | None = None, max_retries: int = 3,
                 batch_size: int = DEFAULT_BATCH_SIZE, ready_timeout_s: float = 300.0):
        import ray

        if num_workers < 1:
            raise ValueError(f"num_workers must be >= 1, got {num_workers}")
        if not ray.is_initialized():
            ray.init(address=address, num_cpus=None if address else num_workers, include_dashboard=False,
                     log_to_driver=False, ignore_reinit_error=True)
        self.ray, self.max_retries, self.batch_size = ray, max_retries, batch_size
        self.replaced = 0
        self.busy: dict[int, list[str]] = {}
        self._actor = ray.remote(num_cpus=1)(_Worker)
        self.workers = [self._actor.remote() for _ in range(num_workers)]
        self._files: dict[tuple[str, Fingerprint], Any] = {}  # (policy, fingerprint) -> object ref of its files
        ready, _ = ray.wait([w.ready.remote() for w in self.workers], num_returns=num_workers, timeout=ready_timeout_s)
        if len(ready) < num_workers:
            self.close()
            raise RuntimeError(f"only {len(ready)} of {num_workers} match workers (1 CPU each) started within "
                               f"{ready_timeout_s:.0f} s; Ray's free resources: {ray.available_resources()}")
        ray.get(ready)  # an actor that failed to start raises here

    def _ship(self, specs: Sequence[MatchSpec]) -> dict[str, tuple[Fingerprint, Any]]:
        """Put the files of every policy folder the specs use into the object store (once per version);
        refs of versions not used in this run are dropped."""
        shipped, keep = {}, {}
        for policy in dict.fromkeys(p for s in specs for p in s.policies):
            found = policy_folder(policy)
            if found is None:
                continue
            fp = fingerprint(found[1])
            ref = self._files.get((policy, fp))
            for _ in range(3):
                if ref is not None:
                    break
                files = _read_files(found[1])
                if fingerprint(found[1]) == fp:  # not saved again while we read it
                    ref = self.ray.put(files)
                else:
                    fp = fingerprint(found[1])
            if ref is None:
                raise RuntimeError(f"policy folder {found[1]} kept changing while its files were read")
            keep[policy, fp] = ref
            shipped[policy] = (fp, ref)
        self._files = keep
        return shipped

    def _replace(self, w: int) -> None:
        try:
            self.ray.kill(self.workers[w])
        except Exception:  # already gone
            pass
        self.workers[w] = self._actor.remote()
        self.replaced += 1

    def run(self, specs: list[MatchSpec], progress: bool = False) -> list[MatchResult]:
        from ray.exceptions import NodeDiedError, OutOfMemoryError, RayActorError, WorkerCrashedError

        retry_on = (RayActorError, WorkerCrashedError, OutOfMemoryError, NodeDiedError)  # the worker died, not the match
        check_specs(specs)
        specs = [_absolute(s) for s in specs]
        shipped = self._ship(specs)
        batches = plan(specs, self.batch_size)
        queue = deque((k, 0) for k in range(len(batches)))  # (batch, failed attempts)
        idle = list(range(len(self.workers)))
        running: dict[Any, tuple[int, int, int]] = {}  # future -> (worker, batch, failed attempts)
        results: list[MatchResult | None] = [None] * len(specs)
        bar = _progress(progress, len(specs))
        try:
            while queue or running:
                while queue and idle:
                    w, (k, tries) = idle.pop(0), queue.popleft()
                    part = [specs[i] for i in batches[k]]
                    files = {p: shipped[p] for p in part[0].policies if p in shipped}
                    running[self.workers[w].play.remote(part, files)] = (w, k, tries)
                    self.busy[w] = [s.match_id for s in part]
                done, _ = self.ray.wait(list(running), num_returns=1)
                w, k, tries = running.pop(done[0])
                del self.busy[w]
                try:
                    out = self.ray.get(done[0])
                except retry_on as err:
                    self._replace(w)  # a fresh actor in its place, also when we give up: the executor stays usable
                    if tries >= self.max_retries:
                        ids = [specs[i].match_id for i in batches[k]]
                        raise RuntimeError(f"matches {ids} lost their worker {tries + 1} times; last error: {err}") from err
                    queue.appendleft((k, tries + 1))
                    idle.append(w)
                    continue
                for i, r in zip(batches[k], out):
                    if results[i] is not None or r.match_id != specs[i].match_id:
                        raise RuntimeError(f"match {specs[i].match_id}: result {r.match_id} arrived twice or out of place")
                    results[i] = r
                idle.append(w)
                bar(len(out))
        finally:
            self.busy = {}
            bar(None)
        return results  # type: ignore[return-value]

    def close(self) -> None:
        for w in self.workers:
            try:
                self.ray.kill(w)
            except Exception:  # already gone
                pass
        self.workers, self._files = [], {}

    def __enter__(self) -> RayMatches:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _Worker:
    """A Ray actor: one torch thread and a policy cache that lives as long as the actor."""

    def __init__(self) -> None:
        import torch

        torch.set_num_threads(1)
        self.cache = PolicyCache()

    def ready(self) -> int:
        return os.getpid()

    def play(self, specs: list[MatchSpec], shipped: dict[str, tuple[Fingerprint, Any]]) -> list[MatchResult]:
        return play_batch(specs, self.cache, shipped)


def make_executor(kind: Literal["local", "ray"], num_workers: int = 2, address: str | None = None,
                  batch_size: int = DEFAULT_BATCH_SIZE, max_retries: int = 3) -> LocalMatches | RayMatches:
    """``local``: this process; ``ray``: ``num_workers`` Ray actors (on the cluster at ``address`` if given)."""
    if kind == "local":
        return LocalMatches(batch_size=batch_size)
    if kind == "ray":
        return RayMatches(num_workers=num_workers, address=address, max_retries=max_retries, batch_size=batch_size)
    raise ValueError(f"unknown match executor {kind!r}: use 'local' or 'ray'")
