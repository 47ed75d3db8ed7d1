"""League matches: seeded play, batching plan, policy cache, input checks, Ray execution and a worker killed mid-batch."""

import json
import os
import threading
import time

import pytest

from league.league import MatchResult
from league.matches import (LocalMatches, MatchSpec, PolicyCache, check_specs, make_executor, plan, play_batch,
                            play_match)
from marl.policy import ScriptedPolicy, TinyPolicy

KUHN = "kuhn_poker_v0"
FALLBACK = {"invalid_action": "fallback"}  # an untrained GPT's moves become random legal ones: full games


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Two small saved tiny GPTs and a saved scripted policy."""
    root = tmp_path_factory.mktemp("policies")
    for i in range(2):
        TinyPolicy.create(seed=i, n_layer=1, n_head=2, n_embd=32).save(root / f"gpt{i}")
    ScriptedPolicy(KUHN, "random").save(root / "scripted")
    return root


def mixed_specs(root, n=8, prefix="m"):
    """Matches whose outcomes depend on the seeds and on sampling: GPTs against each other and against scripted play."""
    pairs = [(f"{root}/gpt0", f"{root}/gpt1"), (f"{root}/gpt0", "random"), ("heuristic", "random"), (f"{root}/gpt1", f"{root}/gpt1")]
    return [MatchSpec(f"{prefix}{k}", KUHN, (f"p{k % 3}", f"q{k % 2}"), pairs[k % len(pairs)], seed=100 + k, params=FALLBACK)
            for k in range(n)]


def test_play_match_is_one_seeded_episode(folders):
    spec = MatchSpec("a", KUHN, ("x", "y"), ("random", "random"), seed=3)
    first = play_match(spec)
    assert isinstance(first, MatchResult) and first == play_match(spec)
    assert (first.match_id, first.arena, first.players, first.seed) == ("a", KUHN, ("x", "y"), 3)
    assert sum(first.scores) == 0  # zero-sum
    outcomes = {play_match(MatchSpec(f"s{s}", KUHN, ("x", "y"), ("random", "random"), seed=s)).scores for s in range(12)}
    assert len(outcomes) > 1
    # a one-match batch is play_match, with or without a shared cache
    assert play_batch([spec], PolicyCache()) == [first]


def test_spec_is_hashable_and_owns_its_params():
    params = {"invalid_action": "fallback"}
    spec = MatchSpec("a", KUHN, ["x", "y"], ["random", "random"], seed=0, params=params)
    params["invalid_action"] = "penalize"
    assert spec.players == ("x", "y") and spec.params == {"invalid_action": "fallback"}
    assert hash(spec) == hash(MatchSpec("a", KUHN, ("x", "y"), ("random", "random"), 0, {"invalid_action": "fallback"}))
    assert len({spec, MatchSpec("a", KUHN, ("x", "y"), ("random", "random"), 0, {"invalid_action": "fallback"})}) == 1


def test_plan_groups_shared_policies_into_near_equal_batches(folders):
    specs = mixed_specs(folders, n=11)
    batches = plan(specs, batch_size=2)
    assert sorted(i for b in batches for i in b) == list(range(11))
    for b in batches:
        assert len({specs[i].policies for i in b}) == 1 and 1 <= len(b) <= 2
    assert plan(specs, batch_size=100) == [[0, 4, 8], [1, 5, 9], [2, 6, 10], [3, 7]]
    assert [len(b) for b in plan([specs[0]] * 9, 4)] == [3, 3, 3]
    with pytest.raises(ValueError, match="batch_size"):
        plan(specs, 0)


def test_local_results_follow_the_specs_and_the_plan(folders):
    specs = mixed_specs(folders, n=8)
    ex = LocalMatches(batch_size=3)
    results = ex.run(specs)
    assert [r.match_id for r in results] == [s.match_id for s in specs]
    assert [r.players for r in results] == [s.players for s in specs]
    assert ex.run(specs, progress=True) == results  # seeded
    assert len({r.scores for r in results}) > 1
    # batch size 1: every match is its own play_match
    assert LocalMatches(batch_size=1).run(specs) == [play_match(s) for s in specs]


def test_policies_load_once_and_a_saved_again_folder_reloads(folders, tmp_path):
    learner = tmp_path / "learner"
    ScriptedPolicy(KUHN, "random").save(learner)
    cache = PolicyCache()
    a = cache.get(str(learner), KUHN)
    snap = cache.get(str(folders / "gpt0"), KUHN)
    assert cache.get(str(learner), KUHN) is a and cache.get(str(folders / "gpt0"), KUHN) is snap
    assert cache.get(f"tiny:{folders / 'gpt0'}", KUHN) is not snap  # another spec string, same files: loaded apart
    assert cache.get("random", KUHN) is cache.get("random", KUHN)
    assert cache.loads == 4
    ScriptedPolicy(KUHN, "heuristic").save(learner)  # the learner saved again
    b = cache.get(str(learner), KUHN)
    assert b is not a and b.name == "heuristic" and cache.loads == 5
    assert cache.get(str(folders / "gpt0"), KUHN) is snap  # the snapshot stays cached
    small = PolicyCache(max_policies=1)
    small.get("random", KUHN)
    small.get("heuristic", KUHN)
    small.get("random", KUHN)
    assert small.loads == 3  # least recently used evicted


def test_a_local_executor_reuses_its_cache(folders):
    ex = LocalMatches()
    specs = mixed_specs(folders, n=8)
    ex.run(specs)
    loads = ex.cache.loads
    ex.run(specs)
    assert loads == 4 and ex.cache.loads == loads  # gpt0, gpt1, random, heuristic: each once


@pytest.mark.parametrize("change, message", [
    (dict(arena="kuhn_poker_v9"), "unknown arena 'kuhn_poker_v9'"),
    (dict(params={"nope": 1}), "bad parameters.*no parameter 'nope'"),
    (dict(policies=("random",)), "1 policies for the 2 seats of kuhn_poker_v0"),
    (dict(players=("x", "y", "z")), "3 players for the 2 seats"),
    (dict(policies=("random", "missing/policy")), "seat 1 .*policy folder 'missing/policy' does not exist"),
    (dict(policies=("tiny:missing", "random")), "seat 0 .*'missing' .*does not exist"),
    (dict(policies=("nonsense", "random")), "policy folder 'nonsense' does not exist"),
    (dict(max_new_tokens=0), "max_new_tokens"),
])
def test_bad_input_raises_before_any_match_is_played(folders, change, message):
    good = MatchSpec("good", KUHN, ("x", "y"), (f"{folders}/gpt0", "random"), seed=0)
    bad = MatchSpec(**{**dict(match_id="bad", arena=KUHN, players=("x", "y"), policies=("random", "random"), seed=1), **change})
    ex = LocalMatches()
    with pytest.raises(ValueError, match=message) as err:
        ex.run([good, bad])
    assert "match 'bad'" in str(err.value)
    assert ex.cache.loads == 0  # nothing was loaded, nothing played


def test_more_bad_input(folders, tmp_path):
    (tmp_path / "empty").mkdir()
    spec = MatchSpec("a", KUHN, ("x", "y"), ("random", "random"), seed=0)
    with pytest.raises(ValueError, match="appears more than once"):
        check_specs([spec, spec])
    with pytest.raises(ValueError, match="has no policy.json"):
        check_specs([MatchSpec("a", KUHN, ("x", "y"), (str(tmp_path / "empty"), "random"), seed=0)])
    with pytest.raises(ValueError, match="unknown match executor"):
        make_executor("dask")
    with pytest.raises(ValueError, match="same arena"):
        play_batch([spec, MatchSpec("b", KUHN, ("x", "y"), ("heuristic", "random"), seed=0)])


# ---------------------------------------------------------------------------- Ray
@pytest.fixture(scope="session")
def ray_cluster():
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def ray_matches(ray_cluster):
    ex = make_executor("ray", num_workers=2, batch_size=2)
    yield ex
    ex.close()


def test_ray_gives_the_same_results_as_local(folders, ray_matches, monkeypatch, tmp_path):
    monkeypatch.chdir(folders)  # relative policy folders: actors resolve them as this process does
    specs = mixed_specs(".", n=10)
    local = LocalMatches(batch_size=2).run(specs)
    assert ray_matches.run(specs) == local
    assert ray_matches.run(list(reversed(specs)))[::-1] == LocalMatches(batch_size=2).run(list(reversed(specs)))[::-1]
    with pytest.raises(ValueError, match="seats"):
        ray_matches.run([MatchSpec("bad", KUHN, ("x",), ("random",), seed=0)])
    # a learner folder saved again reaches the actors: random -> heuristic changes the results
    learner = tmp_path / "learner"
    ScriptedPolicy(KUHN, "random").save(learner)
    specs = [MatchSpec(f"l{k}", KUHN, ("learner", "x"), (str(learner), "random"), seed=k) for k in range(6)]
    before = ray_matches.run(specs)
    assert before == LocalMatches(batch_size=2).run(specs)
    ScriptedPolicy(KUHN, "heuristic").save(learner)
    after = ray_matches.run(specs)
    assert after == LocalMatches(batch_size=2).run(specs) and after != before


def big_specs(root, n, prefix):
    """Default-size GPTs: a few tenths of a second per match, so a kill lands mid-batch."""
    for i in range(2):
        if not (root / f"big{i}").is_dir():
            TinyPolicy.create(seed=10 + i).save(root / f"big{i}")
    return [MatchSpec(f"{prefix}{k}", KUHN, ("a", "b"), (str(root / f"big{k % 2}"), "random"), seed=k, params=FALLBACK)
            for k in range(n)]


def run_and_kill_worker_0(ex, specs):
    """Run the specs in a thread and kill actor 0 while it plays a batch; returns (results, error)."""
    import ray

    out: dict = {}

    def target():
        try:
            out["results"] = ex.run(specs)
        except Exception as err:  # noqa: BLE001 (handed to the test)
            out["error"] = err

    runner = threading.Thread(target=target)
    runner.start()
    deadline = time.time() + 30
    while 0 not in ex.busy and time.time() < deadline:
        time.sleep(0.001)
    assert 0 in ex.busy, "worker 0 never got a batch, or finished before the kill"  # kill at once: a fast machine finishes soon
    victim = ex.workers[0]
    ray.kill(victim)  # mid-batch: the batch it plays is re-run on a fresh actor
    runner.join(timeout=120)
    assert not runner.is_alive()
    assert ex.workers[0] is not victim
    return out.get("results"), out.get("error")


def test_a_worker_killed_mid_batch_costs_no_result(tmp_path_factory, ray_matches):
    specs = big_specs(tmp_path_factory.mktemp("big"), 8, "k")
    expected = LocalMatches(batch_size=2).run(specs)
    replaced = ray_matches.replaced
    results, error = run_and_kill_worker_0(ray_matches, specs)
    assert error is None and ray_matches.replaced == replaced + 1
    assert [r.match_id for r in results] == [s.match_id for s in specs]  # each exactly once, in order
    assert results == expected
    assert json.dumps([r.scores for r in results])  # plain floats


def test_a_batch_that_keeps_losing_its_worker_fails_clearly(tmp_path_factory, ray_matches, monkeypatch):
    root = tmp_path_factory.mktemp("big")
    monkeypatch.setattr(ray_matches, "max_retries", 0)
    results, error = run_and_kill_worker_0(ray_matches, big_specs(root, 4, "g"))
    assert results is None and isinstance(error, RuntimeError) and "lost their worker 1 times" in str(error)
    quick = [MatchSpec(f"q{k}", KUHN, ("x", "y"), ("heuristic", "random"), seed=k) for k in range(4)]
    assert ray_matches.run(quick) == LocalMatches(batch_size=2).run(quick)  # a fresh actor took its place
