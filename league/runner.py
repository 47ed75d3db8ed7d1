"""The league runner: learners, matches, training and snapshots, round after round, safe to kill at any moment.

One round reads like the AlphaStar league pseudocode (``league/league.py`` holds the rules):

    best_response:      each main exploiter becomes the exact best response to its main agent (no training)
    for each learner:   opponent = learner.get_match(league)          # the role's matchmaking (PFSP, ...)
    write the plan down                                                # a resumed round replays the same plan
    for each learner:   play matches_per_round matches against its opponent (seats alternate);
                        each result is recorded once, under "r<round>-<learner>-<k>"
    for each learner:   train train.steps steps against the frozen opponent (marl.magrpo.train with
                        frozen=[opponent]: SPIRAL for zero-sum arenas, MAGRPO for cooperative ones;
                        against itself: shared-policy self-play); save the new weights as a new version
    for each learner:   if learner.ready_to_checkpoint(league): take a snapshot (copied and hashed)
    kuhn_poker_v0:      exact exploitability of every new snapshot and of every learner
    the round is done:  round += 1

Everything a resumed run needs is in the league folder (``league.db`` via :class:`league.state.LeagueState`,
and policy folders), written so that killing the process at any moment loses nothing done and counts
nothing twice:

- Policy folders are never changed in place: a learner's weights after round r go to a new folder
  ``players/<id>/r<r+1>`` (written under a temporary name, then renamed), and the player row that points
  at it is committed in one transaction with its new step count. Snapshots are copies under
  ``snapshots/<id>``, hashed and recorded by ``LeagueState.take_snapshot``.
- Every random choice of round r draws from a generator seeded by (seed, r): the round number is the
  whole RNG state. The plan (each learner's opponent and both policy folders) is stored before any
  match, so a resumed round faces the same opponents even though some of its results are already in.
- The round's matches are always played as the same list (results depend only on specs and policies),
  and ``record_match`` writes a match id at most once: a replayed result is the same and is dropped.
- Training and checkpoints are marked done per learner and round in the same transaction as their
  results; a resumed round skips what is marked and redoes the rest from the same inputs and seeds.

With ``tracking.enabled`` the league is one MLflow parent run (ratings, win rates, exploitability,
matches per second per round; the report, the payoff table and the snapshots as artifacts; the best
main agent registered with the alias ``champion``), each learner a nested run with its training metrics.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from arenas.config import ConfigError, describe, load_yaml
from league.league import League, LeagueExploiter, MainAgent, MainExploiter, Matchmaking, MatchResult, Player, Weighting
from league.state import LeagueState

INITIAL = "initial"  # the starting policy's folder inside the league folder; exploiters reset to it
PLAYERS = "players"  # players/<id>/r<round>: a learner's weights after each round
WORK = "work"  # training outputs before they are moved into place
CONFIG_FILE = "config.yaml"  # a copy of the config, for people (the database holds the one that counts)
KUHN = "kuhn_poker_v0"
# TrainConfig fields the runner sets itself for each training call
RUNNER_OWNED = {"arena", "params", "channel", "policies", "frozen", "seed", "out", "experiment", "tracking_uri",
                "tracking", "max_minutes", "max_new_tokens", "temperature", "reference"}
SFT_OWNED = {"arenas", "transcripts", "arena_params", "policy", "out", "seed", "eval_max_new_tokens"}
console = Console()


# ---------------------------------------------------------------------------- configuration
class InitialPolicy(BaseModel):
    """Where every learner starts: a saved policy folder (e.g. from ``agora sft``) or a fresh tiny GPT,
    optionally warm-started on the answer format first (``marl.sft``; ``teacher: random`` by default)."""

    model_config = ConfigDict(extra="forbid")
    path: str | None = None  # a saved policy folder
    gpt: dict[str, Any] | None = None  # or a fresh tiny GPT: GPTConfig fields, e.g. {n_layer: 2, n_embd: 64}
    seed: int = 0
    warm_start: dict[str, Any] | None = None  # SFTConfig fields (steps, batch_size, lr, teacher, ...)

    @model_validator(mode="after")
    def _one_source(self) -> InitialPolicy:
        if (self.path is None) == (self.gpt is None):
            raise ValueError("give exactly one of path (a saved policy folder) or gpt (a fresh tiny GPT)")
        return self


class Roles(BaseModel):
    """How many learners of each AlphaStar role, and the main agents' matchmaking."""

    model_config = ConfigDict(extra="forbid")
    main_agents: int = Field(1, ge=1)
    main_exploiters: int = Field(0, ge=0)
    league_exploiters: int = Field(0, ge=0)
    matchmaking: Matchmaking = "alphastar"  # alphastar | self_play | fictitious | pfsp | best_response
    pfsp_weighting: Weighting = "squared"  # variance | linear | linear_capped | squared


class SnapshotRules(BaseModel):
    """A learner is frozen into a snapshot when it beats all its role's targets more often than
    ``win_rate`` (after at least ``min_steps`` training steps), or after ``max_steps`` steps."""

    model_config = ConfigDict(extra="forbid")
    win_rate: float = Field(0.7, ge=0, le=1)
    min_steps: int = Field(1, ge=1)
    max_steps: int = Field(100, ge=1)

    @model_validator(mode="after")
    def _order(self) -> SnapshotRules:
        if self.min_steps > self.max_steps:
            raise ValueError(f"min_steps ({self.min_steps}) must not exceed max_steps ({self.max_steps})")
        return self


class Tracking(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    experiment: str = "league"
    tracking_uri: str | None = None  # default: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the working folder
    champion: bool = True  # register the best main agent as a model version with the alias "champion"
    model_name: str | None = None  # the registered model's name; default "agora-<arena>"


class LeagueConfig(BaseModel):
    """``agora league run CONFIG --dir DIR``: everything a league needs (see configs/league_kuhn.yaml)."""

    model_config = ConfigDict(extra="forbid")
    arena: str
    params: dict[str, Any] = {}  # the arena's keyword arguments
    # a word: one main agent with that matchmaking (best_response: and one main exploiter, the exact best response)
    roles: Roles | Literal["self_play", "fictitious", "pfsp", "best_response"] = Roles()
    initial_policy: InitialPolicy
    rounds: int | None = Field(None, ge=1)  # stop after this many rounds ...
    minutes: float | None = Field(None, gt=0)  # ... or when the next round would not fit in this budget
    matches_per_round: int = Field(8, ge=0)  # per learner, against its opponent, seats alternating
    train: dict[str, Any] = {}  # marl.magrpo.TrainConfig fields; steps = training steps per learner and round
    snapshot: SnapshotRules = SnapshotRules()
    payoff_decay: float = Field(1.0, gt=0, le=1)
    max_new_tokens: int = Field(24, ge=1)  # in matches and training (<answer>pass</answer> is 21 bytes)
    temperature: float = Field(1.0, gt=0)
    exploitability: bool = True  # kuhn_poker_v0: exact exploitability of every snapshot and learner
    executor: Literal["local", "ray"] = "local"  # where matches run
    num_workers: int = Field(2, ge=1)
    ray_address: str | None = None
    threads: int | None = Field(None, ge=1)  # torch threads in this process (1 is best on a busy 2-core machine)
    tracking: Tracking = Tracking()
    seed: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _budget(self) -> LeagueConfig:
        if self.rounds is None and self.minutes is None:
            raise ValueError("give rounds, minutes, or both (the league stops at whichever comes first)")
        return self

    def role_counts(self) -> Roles:
        if isinstance(self.roles, str):
            return Roles(matchmaking=self.roles, main_exploiters=int(self.roles == "best_response"))
        return self.roles


def check_config(cfg: LeagueConfig, source: str = "config", initial_exists: bool = False) -> LeagueConfig:
    """What pydantic cannot see: a known arena and its parameters, valid training and warm-start fields, and
    (unless the league already copied it: ``initial_exists``) a saved initial policy."""
    import arenas

    try:
        spec = arenas.spec(cfg.arena)
        arenas.make(cfg.arena, **cfg.params)
    except KeyError as e:
        raise ConfigError(f"{source}: arena: {e.args[0]}") from None
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{source}: params: {e}") from None
    owned = sorted(RUNNER_OWNED & set(cfg.train))
    if owned:
        raise ConfigError(f"{source}: train: {', '.join(owned)} set by the league itself (top-level keys: arena, "
                          f"params, max_new_tokens, temperature, seed)")
    try:
        base_train(cfg, spec.rewards)
    except ValidationError as e:
        raise ConfigError(describe(e, f"{source}: train")) from None
    roles = cfg.role_counts()
    if roles.matchmaking == "best_response":
        from league.exploitability import game_of

        try:
            game_of(cfg.arena)
        except ValueError as e:
            raise ConfigError(f"{source}: roles: best_response needs exact best responses: {e}") from None
        if roles.main_exploiters < 1:
            raise ConfigError(f"{source}: roles: best_response needs main_exploiters >= 1 (they are the best responses)")
    if not initial_exists and cfg.initial_policy.path is not None and not (Path(cfg.initial_policy.path) / "policy.json").is_file():
        raise ConfigError(f"{source}: initial_policy.path: {cfg.initial_policy.path!r} is not a saved policy folder "
                          "(no policy.json)")
    if cfg.initial_policy.warm_start is not None:
        owned = sorted(SFT_OWNED & set(cfg.initial_policy.warm_start))
        if owned:
            raise ConfigError(f"{source}: initial_policy.warm_start: {', '.join(owned)} set by the league itself")
        try:
            warm_start_config(cfg, Path("."))
        except ValidationError as e:
            raise ConfigError(describe(e, f"{source}: initial_policy.warm_start")) from None
    return cfg


def load_config(path: str | Path) -> LeagueConfig:
    return check_config(load_yaml(path, LeagueConfig), str(path))


def base_train(cfg: LeagueConfig, rewards: str):
    """The learners' TrainConfig before the runner fills in policies, seed and output folder."""
    from marl.magrpo import TrainConfig

    algorithm = "spiral" if rewards == "zero-sum" else "magrpo"
    return TrainConfig.model_validate({"algorithm": algorithm, **cfg.train, "arena": cfg.arena, "params": cfg.params,
                                       "max_new_tokens": cfg.max_new_tokens, "temperature": cfg.temperature,
                                       "tracking": False})


def warm_start_config(cfg: LeagueConfig, out: Path):
    from marl.sft import SFTConfig

    init = cfg.initial_policy
    policy = {"backend": "tiny", "path": init.path} if init.path else {"backend": "tiny", "gpt": init.gpt, "seed": init.seed}
    fields = {"teacher": "random", "eval_episodes": 0, **(init.warm_start or {})}
    return SFTConfig.model_validate({**fields, "arenas": [cfg.arena], "arena_params": {cfg.arena: cfg.params},
                                     "policy": policy, "out": str(out), "seed": cfg.seed,
                                     "eval_max_new_tokens": cfg.max_new_tokens})


# ---------------------------------------------------------------------------- small helpers
def derive_seed(*keys: int) -> int:
    """A 31-bit seed from integer keys (e.g. the league seed, the round, a learner's index)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0] & 0x7FFFFFFF)


def _replace_dir(src: Path, dest: Path) -> None:
    """Move a finished folder into place by a rename; a leftover at ``dest`` (from a killed attempt whose
    record was never committed) is removed first."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(src, dest)


def is_league_dir(directory: str | Path) -> bool:
    return (Path(directory) / "league.db").is_file()


def open_state(directory: str | Path) -> LeagueState:
    """The state of an existing league folder, or a ConfigError that says what is wrong."""
    d = Path(directory)
    if not d.is_dir():
        raise ConfigError(f"{d}: no such league folder")
    if not is_league_dir(d):
        raise ConfigError(f"{d}: not a league folder (no league.db); start one with `agora league run CONFIG --dir {d}`")
    state = LeagueState(d)
    if state.meta("config") is None:
        state.close()
        raise ConfigError(f"{d}: the league's config was never stored (not started by `agora league run`)")
    return state


def stored_config(state: LeagueState) -> LeagueConfig:
    return LeagueConfig.model_validate(state.meta("config"))


# ---------------------------------------------------------------------------- the runner
class LeagueRunner:
    """Runs (or resumes) the league in ``directory``. ``run()`` goes round after round until the budget is
    spent and returns a summary; every step is written to the league folder as it happens."""

    def __init__(self, directory: str | Path, cfg: LeagueConfig | None = None, progress: bool = True):
        self.dir = Path(directory)
        self.progress = progress
        if cfg is not None:  # a new league
            if is_league_dir(self.dir):
                raise ConfigError(f"{self.dir} already holds a league: continue it with `agora league resume {self.dir}` "
                                  "or choose another --dir")
            if self.dir.exists() and any(self.dir.iterdir()):
                raise ConfigError(f"{self.dir} exists and is not empty: choose a new or empty --dir")
            self.state = LeagueState(self.dir)
            self.state.set_meta("config", cfg.model_dump(mode="json"))
            self.state.set_meta("created", time.time())
            (self.dir / CONFIG_FILE).write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
        else:
            self.state = open_state(self.dir)
        self.cfg = check_config(stored_config(self.state), str(self.dir / CONFIG_FILE), (self.dir / INITIAL).is_dir())
        import arenas

        self.spec = arenas.spec(self.cfg.arena)
        self.agents = list(arenas.make(self.cfg.arena, **self.cfg.params).possible_agents)
        self.kuhn = self.cfg.exploitability and self.spec.name == KUHN
        self.trackers: dict[str, Any] = {}
        self.executor = None
        self._session_start = time.perf_counter()
        self._elapsed_before = float(self.state.meta("elapsed_s", 0.0))

    # ------------------------------------------------------------------ the loop
    def run(self) -> dict[str, Any]:
        if self.cfg.threads:
            import torch

            torch.set_num_threads(self.cfg.threads)
        status = "FAILED"
        try:
            self.setup()
            self.start_tracking()
            self.executor = self._make_executor()
            with self._progress_bar() as bar:
                while self.budget_left():
                    r = int(self.state.meta("round", 0))
                    t0 = time.perf_counter()
                    if self.cfg.role_counts().matchmaking == "best_response":
                        bar.update(f"round {r}: best responses")
                        self.respond(r)
                    bar.update(f"round {r}: matchmaking")
                    plan = self.plan_round(r)
                    bar.update(f"round {r}: {len(plan) * self.cfg.matches_per_round} matches")
                    results, match_s = self.play_round(r, plan)
                    trained = {}
                    for k, entry in enumerate(plan):
                        bar.update(f"round {r}: training {entry['learner']} against {entry['opponent']}")
                        trained[entry["learner"]] = self.train_learner(r, k, entry)
                    bar.update(f"round {r}: snapshots")
                    snaps = self.checkpoint_round(r)
                    bar.update(f"round {r}: exploitability")
                    self.finish_round(r, plan, results, match_s, trained, snaps, time.perf_counter() - t0)
                    bar.advance(self.round_line(r))
            status = "FINISHED"
        except KeyboardInterrupt:
            status = "KILLED"
            raise
        finally:
            if self.executor is not None:
                self.executor.close()
            if status != "FINISHED":
                self.close_tracking(status)
        summary = self.finish()
        self.close_tracking("FINISHED")
        return summary

    def budget_left(self) -> bool:
        r = int(self.state.meta("round", 0))
        if self.cfg.rounds is not None and r >= self.cfg.rounds:
            return False
        if self.cfg.minutes is not None:
            history = self.state.meta("history", [])
            last = history[-1]["seconds"] if history else 0.0
            return self.elapsed() + last <= 60 * self.cfg.minutes  # start a round only if one more fits
        return True

    def elapsed(self) -> float:
        return self._elapsed_before + time.perf_counter() - self._session_start

    # ------------------------------------------------------------------ setup: the initial policy and the players
    def setup(self) -> None:
        if self.state.meta("setup_done"):
            return
        initial = self.dir / INITIAL
        if not initial.is_dir():
            tmp = self.dir / WORK / "initial"
            if tmp.exists():
                shutil.rmtree(tmp)
            self.build_initial_policy(tmp)
            _replace_dir(tmp, initial)
        roles = self.cfg.role_counts()
        snap = {"snapshot_win_rate": self.cfg.snapshot.win_rate, "snapshot_min_steps": self.cfg.snapshot.min_steps,
                "snapshot_max_steps": self.cfg.snapshot.max_steps}
        players: list[Player] = [MainAgent(f"main_{i}", self.cfg.arena, INITIAL, matchmaking=roles.matchmaking,
                                           pfsp_weighting=roles.pfsp_weighting, **snap) for i in range(roles.main_agents)]
        players += [MainExploiter(f"main_exploiter_{i}", self.cfg.arena, INITIAL, best_response=roles.matchmaking == "best_response",
                                  **snap) for i in range(roles.main_exploiters)]
        players += [LeagueExploiter(f"league_exploiter_{i}", self.cfg.arena, INITIAL, **snap)
                    for i in range(roles.league_exploiters)]
        known = {p.id for p in self.state.players()}
        for p in players:
            if p.id not in known:
                self.state.save_player(p, {"trained_round": -1})
        if self.kuhn:
            self.set_exploitability({INITIAL: self.exploitability_of(INITIAL)})
        self.state.set_meta("round", 0)
        self.state.set_meta("setup_done", True)

    def build_initial_policy(self, out: Path) -> None:
        init = self.cfg.initial_policy
        if init.warm_start is not None:
            from marl import sft

            wcfg = warm_start_config(self.cfg, out)
            with console.status(f"warm start: the answer format of {self.cfg.arena} from {wcfg.teacher} play "
                                f"({wcfg.steps} steps)", spinner="dots") if self.progress else _nothing():
                _, report = sft.train(wcfg, show=False)
            if self.progress:
                console.print(f"warm start: {report['steps']} steps in {report['minutes']:.1f} minutes, "
                              f"loss {report['loss_first']:.3f} -> {report['loss_last']:.3f}")
        elif init.path is not None:
            shutil.copytree(init.path, out)
        else:
            from marl.policy import TinyPolicy

            TinyPolicy.create(seed=init.seed, **(init.gpt or {})).save(out)

    # ------------------------------------------------------------------ 0. exact best responses
    def respond(self, r: int) -> None:
        """With ``matchmaking: best_response`` main exploiter i is, for round r, the exact best response to
        main agent i (mod their number) as it starts the round: a tabular policy in ``players/<id>/r<r>``.
        Written once per round (a resumed round finds it in place), before the plan reads the policies."""
        from league.exploitability import action_probs, best_response, info_states
        from marl.policy import TabularPolicy, load_policy

        league = self.league()
        mains = league.main_agent_ids(self.cfg.arena)
        for i, pid in enumerate(league.learner_ids(self.cfg.arena, MainExploiter)):
            player = league.players[pid]
            if not player.best_response:
                continue
            version = self.dir / PLAYERS / pid / f"r{r:05d}"
            if player.policy == version.relative_to(self.dir).as_posix():
                continue
            target = load_policy(self.abs(league.players[mains[i % len(mains)]].policy), self.cfg.arena)
            tmp = self.dir / WORK / pid / "best_response"
            TabularPolicy(best_response(action_probs(target, info_states(self.cfg.arena)), self.cfg.arena)).save(tmp)
            _replace_dir(tmp, version)
            player.policy = version.relative_to(self.dir).as_posix()
            self.state.save_player(player)

    # ------------------------------------------------------------------ 1. matchmaking
    def plan_round(self, r: int) -> list[dict[str, Any]]:
        """Each learner's opponent for round r (chosen once; a resumed round reads it back)."""
        saved = self.state.meta("plan")
        if saved and saved["round"] == r:
            return saved["learners"]
        league = self.league()
        rng = np.random.default_rng([self.cfg.seed, r, 0])
        plan = []
        for p in self.learners(league):
            match = p.get_match(league, rng)
            opponent = league.players[match.away]
            plan.append({"learner": p.id, "policy": p.policy, "opponent": opponent.id, "opponent_policy": opponent.policy,
                         "branch": match.branch})
        self.state.set_meta("plan", {"round": r, "learners": plan})
        return plan

    # ------------------------------------------------------------------ 2. matches
    def match_specs(self, r: int, plan: list[dict[str, Any]]) -> list:
        from league.matches import MatchSpec

        specs = []
        n = len(self.agents)
        for k, entry in enumerate(plan):
            for m in range(self.cfg.matches_per_round):
                seat = m % n  # the learner's seat; the opponent fills the others
                players = tuple(entry["learner"] if s == seat else entry["opponent"] for s in range(n))
                policies = tuple(self.abs(entry["policy"] if s == seat else entry["opponent_policy"]) for s in range(n))
                specs.append(MatchSpec(f"r{r:05d}-{entry['learner']}-{m:03d}", self.cfg.arena, players, policies,
                                       seed=derive_seed(self.cfg.seed, r, k, m, 1), params=self.cfg.params,
                                       max_new_tokens=self.cfg.max_new_tokens, temperature=self.cfg.temperature))
        return specs

    def play_round(self, r: int, plan: list[dict[str, Any]]) -> tuple[list[MatchResult], float]:
        """Play the round's matches (all of them, also after a resume: the same specs give the same results)
        and record those not yet recorded. Returns the results and the seconds spent playing."""
        specs = self.match_specs(r, plan)
        if not specs:
            return [], 0.0
        if all(self.state.has_match(s.match_id) for s in specs):
            done = {m.match_id: m for m in self.state.matches(self.cfg.arena)}
            return [done[s.match_id] for s in specs], 0.0
        t0 = time.perf_counter()
        results = self.executor.run(specs)
        seconds = time.perf_counter() - t0
        for result in results:
            self.state.record_match(result)  # a no-op for a match recorded before a crash
        return results, seconds

    # ------------------------------------------------------------------ 3. training against the frozen opponent
    def train_learner(self, r: int, k: int, entry: dict[str, Any]) -> dict[str, float]:
        """``train.steps`` steps of the learner against its opponent, frozen. Against itself (self-play)
        one shared policy plays every seat and learns from all; otherwise the learner takes each seat in
        turn (the steps split between them) and the opponent's policy is frozen. The new weights become the
        folder ``players/<id>/r<r+1>`` and the player's row points at it, with its step count."""
        from marl.magrpo import train

        learner = self.player(entry["learner"])
        progress = self.state.progress(learner.id)
        if progress.get("trained_round", -1) >= r:
            return progress.get("train_metrics", {})
        base = base_train(self.cfg, self.spec.rewards)
        if isinstance(learner, MainExploiter) and learner.best_response:
            learner.step += base.steps  # an exact best response needs no training; its steps pace its snapshots
            self.state.save_player(learner, {"trained_round": r, "train_metrics": {}})
            return {}
        self_play = entry["opponent"] == learner.id
        seats: list[int | None] = [None] if self_play else list(range(len(self.agents)))
        per_seat = [base.steps // len(seats) + (i < base.steps % len(seats)) for i in range(len(seats))]
        current = self.abs(entry["policy"])
        work = self.dir / WORK / learner.id
        history: list[dict[str, float]] = []
        for i, (seat, steps) in enumerate(zip(seats, per_seat)):
            if steps == 0:
                continue
            out = work / f"r{r:05d}-{i}"
            if out.exists():
                shutil.rmtree(out)
            if seat is None:
                policies = {"policies": {"learner": _spec_of(current)}}
                frozen = []
            else:
                policies = {"policies": {"learner": _spec_of(current),
                                         "opponent": _spec_of(self.abs(entry["opponent_policy"]))},
                            "mapping": {a: "learner" if s == seat else "opponent" for s, a in enumerate(self.agents)}}
                frozen = ["opponent"]
            # with kl_coef, every learner is pulled towards the league's initial policy: a fixed magnet (magnetic
            # mirror descent) that keeps its play mixed, where a pull towards its own last version would let it drift
            tcfg = base.model_copy(update={"policies": type(base.policies).model_validate(policies), "frozen": frozen,
                                           "steps": steps, "seed": derive_seed(self.cfg.seed, r, k, i, 2),
                                           "out": str(out), "reference": str(self.dir / INITIAL)})
            result = train(tcfg, progress=False)
            current = str(result["saved"]["learner"])
            history += result["history"]
        steps_done = sum(per_seat)
        version = self.dir / PLAYERS / learner.id / f"r{r + 1:05d}"
        _replace_dir(Path(current), version)
        shutil.rmtree(work, ignore_errors=True)
        metrics = _mean_metrics(history)
        learner.policy = version.relative_to(self.dir).as_posix()
        learner.step += steps_done
        self.state.save_player(learner, {"trained_round": r, "train_metrics": metrics})
        tracker = self.trackers.get(learner.id)
        if tracker:
            first = learner.step - len(history)
            for j, h in enumerate(history):
                tracker.log_metrics({key: v for key, v in h.items() if key != "step"}, first + j)
        return metrics

    # ------------------------------------------------------------------ 4. snapshots
    def checkpoint_round(self, r: int) -> list[str]:
        """Freeze every learner its role's rule says is ready (the payoff includes this round's matches).
        Returns the round's snapshots, also those taken before a crash."""
        learners = [p.id for p in self.learners(self.league())]
        for k, learner_id in enumerate(learners):
            if self.state.progress(learner_id).get("checkpointed_round", -1) >= r:
                continue
            league = self.league()  # with the snapshots taken just before: a resumed round sees the same
            p = league.players[learner_id]
            if p.ready_to_checkpoint(league):
                self.state.take_snapshot(p.checkpoint(np.random.default_rng([self.cfg.seed, r, 1, k])), parent=p)
            self.state.set_progress(p.id, checkpointed_round=r)
        # a snapshot of this round has its parent's step after this round's training (steps grow every round)
        steps = {p.id: p.step for p in self.state.players()}
        return [rec.snapshot.id for rec in self.state.snapshots(self.cfg.arena)
                if rec.snapshot.parent in steps and rec.snapshot.step == steps[rec.snapshot.parent]]

    # ------------------------------------------------------------------ 5. bookkeeping: exploitability, history, metrics
    def finish_round(self, r: int, plan, results: list[MatchResult], match_s: float, trained: dict[str, dict],
                     snaps: list[str], seconds: float) -> None:
        league = self.league()
        expl = self.state.meta("exploitability", {})
        missing = {s: self.exploitability_of(league.players[s].policy) for s in league.snapshot_ids(self.cfg.arena)
                   if self.kuhn and s not in expl}
        if missing:
            expl = self.set_exploitability(missing)
        ratings = self.state.ratings(self.cfg.arena)
        learners = {}
        for entry in plan:
            p = self.player(entry["learner"])
            mine = [m for m in results if m.match_id.startswith(f"r{r:05d}-{p.id}-")]
            wins = [] if entry["opponent"] == p.id else [_points(m, p.id) for m in mine]  # self-play: no win rate
            row = {"step": p.step, "opponent": entry["opponent"], "branch": entry["branch"],
                   "win_rate": float(np.mean(wins)) if wins else None,
                   "rating": ratings[p.id].ordinal if p.id in ratings else None,
                   "reward": trained.get(p.id, {}).get("reward/joint_mean"),
                   "valid_rate": trained.get(p.id, {}).get("valid_rate")}
            if self.kuhn:
                row["exploitability"] = self.exploitability_of(p.policy)
            learners[p.id] = row
        history = [h for h in self.state.meta("history", []) if h["round"] != r]
        history.append({"round": r, "seconds": seconds, "elapsed_s": self.elapsed(), "matches": len(results),
                        "matches_per_s": len(results) / match_s if match_s > 0 else None,
                        "learners": learners, "snapshots": snaps,
                        "members": len(league.players)})
        tracker = self.trackers.get("league")
        if tracker:
            for sid in snaps:
                tracker.log_artifacts(self.dir / league.players[sid].policy, f"snapshots/{_artifact_name(sid)}")
            metrics = {"league/matches_per_s": history[-1]["matches_per_s"], "league/members": len(league.players),
                       "league/snapshots": len(league.snapshot_ids(self.cfg.arena)), "league/round_s": seconds,
                       "league/matches_total": self.state.match_count()}
            for pid, row in learners.items():
                for key in ("win_rate", "rating", "exploitability", "reward", "valid_rate"):
                    metrics[f"{key}/{pid}"] = row.get(key)
            if snaps and self.kuhn:
                metrics["exploitability/new_snapshots"] = float(np.mean([expl[s] for s in snaps]))
            tracker.log_metrics({k: v for k, v in metrics.items() if v is not None}, r)
        self.state.set_meta("history", history)
        self.state.set_meta("elapsed_s", self.elapsed())
        self.state.set_meta("round", r + 1)  # the round is done
        self._collect_garbage()

    def _collect_garbage(self) -> None:
        """Old learner versions are no longer referenced once a round is done (snapshots are copies)."""
        for p in self.state.players():
            folder = self.dir / PLAYERS / p.id
            if folder.is_dir():
                for version in folder.iterdir():
                    if version.relative_to(self.dir).as_posix() != p.policy:
                        shutil.rmtree(version, ignore_errors=True)

    def round_line(self, r: int) -> str:
        h = self.state.meta("history", [])[-1]
        parts = [f"round {r}", f"{h['seconds']:.0f}s"]
        for pid, row in h["learners"].items():
            s = f"{pid} vs {'itself' if row['opponent'] == pid else row['opponent']}"
            if row["win_rate"] is not None:
                s += f" won {row['win_rate']:.0%}"
            if row.get("exploitability") is not None:
                s += f", exploitability {row['exploitability']:.3f}"
            parts.append(s)
        if h["snapshots"]:
            parts.append("snapshot " + ", ".join(h["snapshots"]))
        return " | ".join(parts)

    # ------------------------------------------------------------------ the end: report, champion, summary
    def finish(self) -> dict[str, Any]:
        from league import report

        path = report.write_report(self.dir)
        payoff_csv = report.write_payoff_csv(self.dir)
        champion = report.champion(self.state, self.cfg)
        mlflow = self.state.meta("mlflow")
        tracker = self.trackers.get("league")
        if tracker:
            tracker.log_artifact(path)
            tracker.log_artifact(payoff_csv)
            tracker.log_artifact(self.dir / CONFIG_FILE)
            if champion:
                tracker.set_tags({"champion": champion["id"], "champion_exploitability": champion.get("exploitability")})
                name = _artifact_name(champion["id"])
                tracker.log_artifacts(self.dir / champion["policy"], f"champion/{name}")
                done = int(self.state.meta("round", 0))
                if self.cfg.tracking.champion and (mlflow.get("model") or {}).get("round") != done:
                    version = tracker.register_model(f"champion/{name}", self.cfg.tracking.model_name or f"agora-{self.cfg.arena}",
                                                     alias="champion", tags={"league_member": champion["id"]})
                    if version:
                        mlflow = {**mlflow, "model": {"name": self.cfg.tracking.model_name or f"agora-{self.cfg.arena}",
                                                      "version": version, "round": done, "member": champion["id"]}}
                        self.state.set_meta("mlflow", mlflow)
        self.state.set_meta("finished", time.time())
        return {"dir": str(self.dir), "report": str(path), "payoff_csv": str(payoff_csv), "champion": champion,
                "rounds": int(self.state.meta("round", 0)), "matches": self.state.match_count(),
                "snapshots": len(self.state.snapshots()), "mlflow": mlflow, "elapsed_s": self.elapsed()}

    # ------------------------------------------------------------------ MLflow: the league is the parent run
    def start_tracking(self) -> None:
        t = self.cfg.tracking
        if not t.enabled:
            return
        from marl.tracking import Tracker

        saved = self.state.meta("mlflow")
        if saved is None:
            uri = _absolute_uri(t.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db")
            parent = Tracker(t.experiment, self.cfg.model_dump(mode="json"), tracking_uri=uri, run_name=f"league-{self.dir.name}",
                             tags={"arena": self.cfg.arena, "kind": "league", "league_dir": str(self.dir.resolve())})
            saved = {"uri": uri, "experiment": t.experiment, "parent": parent.run_id, "learners": {}}
            self.state.set_meta("mlflow", saved)
        else:
            parent = Tracker(t.experiment, {}, tracking_uri=saved["uri"], run_id=saved["parent"])
        self.trackers["league"] = parent
        for p in self.state.players():
            run_id = saved["learners"].get(p.id)
            if run_id is None:
                child = Tracker(t.experiment, base_train(self.cfg, self.spec.rewards).model_dump(mode="json"),
                                tracking_uri=saved["uri"], run_name=p.id, parent_run_id=parent.run_id,
                                tags={"arena": self.cfg.arena, "kind": "learner", "role": p.role})
                saved["learners"][p.id] = child.run_id
                self.state.set_meta("mlflow", saved)
            else:
                child = Tracker(t.experiment, {}, tracking_uri=saved["uri"], run_id=run_id)
            self.trackers[p.id] = child

    def close_tracking(self, status: str) -> None:
        for tracker in self.trackers.values():
            tracker.close(status)
        self.trackers = {}

    # ------------------------------------------------------------------ plumbing
    def _make_executor(self):
        from league.matches import make_executor

        return make_executor(self.cfg.executor, num_workers=self.cfg.num_workers, address=self.cfg.ray_address)

    def league(self) -> League:
        return self.state.load_league(self.cfg.payoff_decay)

    def learners(self, league: League) -> list[Player]:
        return [p for p in league.players.values() if isinstance(p, Player)]

    def player(self, player_id: str) -> Player:
        return next(p for p in self.state.players() if p.id == player_id)

    def abs(self, policy: str) -> str:
        return str((self.dir / policy).resolve())

    def exploitability_of(self, policy: str) -> float:
        from league.exploitability import policy_exploitability
        from marl.policy import load_policy

        return policy_exploitability(load_policy(self.abs(policy), self.cfg.arena)).value

    def set_exploitability(self, values: dict[str, float]) -> dict[str, float]:
        expl = {**self.state.meta("exploitability", {}), **values}
        self.state.set_meta("exploitability", expl)
        return expl

    def _progress_bar(self) -> _Bar:
        total = self.cfg.rounds if self.cfg.rounds is not None else None
        return _Bar(self.progress, total, int(self.state.meta("round", 0)), self.cfg.minutes)


@contextlib.contextmanager
def _nothing():
    yield


def _spec_of(path: str) -> dict[str, Any]:
    from marl.policy import parse_policy

    return parse_policy(path).model_dump()


def _mean_metrics(history: list[dict[str, float]]) -> dict[str, float]:
    keys = {k for h in history for k in h if k != "step"}
    return {k: float(np.mean([h[k] for h in history if k in h])) for k in sorted(keys)}


def _points(m: MatchResult, player: str) -> float:
    """The player's points in a two-seat match: 1 win, 0.5 draw, 0 loss (its first seat when it sat in both)."""
    seat = m.players.index(player)
    mine, theirs = m.scores[seat], m.scores[1 - seat]
    return 1.0 if mine > theirs else 0.5 if mine == theirs else 0.0


def _artifact_name(member: str) -> str:
    return member.replace("@", "_at_")


def _absolute_uri(uri: str) -> str:
    """``sqlite:///relative.db`` resolved against the working folder, so a resume elsewhere finds the same store."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix):].startswith("/"):
        return prefix + str(Path(uri[len(prefix):]).resolve())
    return uri


class _Bar:
    """The league's rich progress bar: rounds done (of ``rounds``, if set), time, and what is going on now."""

    def __init__(self, enabled: bool, total: int | None, done: int, minutes: float | None):
        self.enabled = enabled
        if enabled:
            budget = f" / {minutes:g} min" if minutes else ""
            self.prog = Progress(TextColumn("[bold]league"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                 TextColumn(budget + "  {task.fields[info]}"), console=console)
            self.task = self.prog.add_task("league", total=total, completed=done, info="")

    def __enter__(self) -> _Bar:
        if self.enabled:
            self.prog.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.enabled:
            self.prog.stop()

    def update(self, info: str) -> None:
        if self.enabled:
            self.prog.update(self.task, info=info)

    def advance(self, line: str) -> None:
        if self.enabled:
            self.prog.console.print(line, highlight=False)
            self.prog.advance(self.task)


# ---------------------------------------------------------------------------- command line
def add_commands(sub: argparse._SubParsersAction) -> None:
    """``agora league run | resume | status | report``."""
    p = sub.add_parser("league", help="self-play leagues: run, resume, status, report")
    leagues = p.add_subparsers(dest="league_command", required=True, metavar="COMMAND")

    q = leagues.add_parser("run", help="start a league from a YAML config in a new folder")
    q.add_argument("config", help="a YAML league config (see configs/league_kuhn.yaml)")
    q.add_argument("--dir", required=True, help="the league folder (new or empty)")
    q.add_argument("--rounds", type=int, help="override the config's rounds")
    q.add_argument("--minutes", type=float, help="override the config's time budget")
    q.add_argument("--quiet", action="store_true", help="no progress bars")
    q.set_defaults(run=run_command)

    q = leagues.add_parser("resume", help="continue a league where it stopped (after a crash, a kill, or to extend it)")
    q.add_argument("dir", help="the league folder")
    q.add_argument("--rounds", type=int, help="raise the total number of rounds")
    q.add_argument("--minutes", type=float, help="raise the total time budget")
    q.add_argument("--quiet", action="store_true", help="no progress bars")
    q.set_defaults(run=resume_command)

    q = leagues.add_parser("status", help="leaderboard, payoff table and progress of a league folder")
    q.add_argument("dir", help="the league folder")
    q.set_defaults(run=status_command)

    q = leagues.add_parser("report", help="write a self-contained HTML report of a league folder")
    q.add_argument("dir", help="the league folder")
    q.add_argument("--out", help="the HTML file (default: DIR/report.html)")
    q.set_defaults(run=report_command)


def _budget_overrides(cfg: LeagueConfig, args: argparse.Namespace) -> LeagueConfig:
    update = {k: v for k, v in (("rounds", args.rounds), ("minutes", args.minutes)) if v is not None}
    if not update:
        return cfg
    bad = [f"--{k} must be positive, got {v}" for k, v in update.items() if v <= 0]
    if bad:
        raise ConfigError("; ".join(bad))
    return cfg.model_copy(update=update)


def run_command(args: argparse.Namespace) -> int:
    cfg = _budget_overrides(load_config(args.config), args)
    summary = LeagueRunner(args.dir, cfg, progress=not args.quiet).run()
    print_summary(summary)
    return 0


def resume_command(args: argparse.Namespace) -> int:
    with open_state(args.dir) as state:
        cfg = stored_config(state)
        new = _budget_overrides(cfg, args)
        if new != cfg:
            state.set_meta("config", new.model_dump(mode="json"))
            state.set_meta("finished", None)
        done = int(state.meta("round", 0))
    console.print(f"resuming {args.dir} at round {done}")
    summary = LeagueRunner(args.dir, progress=not args.quiet).run()
    print_summary(summary)
    return 0


def status_command(args: argparse.Namespace) -> int:
    from league import report

    with open_state(args.dir) as state:
        for renderable in report.status_renderables(state, Path(args.dir)):
            console.print(renderable)
    return 0


def report_command(args: argparse.Namespace) -> int:
    from league import report

    with open_state(args.dir):
        pass
    path = report.write_report(args.dir, args.out)
    console.print(f"report: {path}")
    return 0


def print_summary(summary: dict[str, Any]) -> None:
    from league import report

    with open_state(summary["dir"]) as state:
        for renderable in report.status_renderables(state, Path(summary["dir"]), payoff=False):
            console.print(renderable)
    console.print(f"[bold]done[/]: {summary['rounds']} rounds, {summary['matches']} matches, {summary['snapshots']} snapshots "
                  f"in {summary['elapsed_s'] / 60:.1f} minutes")
    champ = summary["champion"]
    if champ:
        line = f"champion (best main agent): {champ['id']}"
        if champ.get("exploitability") is not None:
            line += f", exploitability {champ['exploitability']:.3f} (uniform random: 0.458)"
        console.print(line)
    console.print(f"report: {summary['report']}  payoff table: {summary['payoff_csv']}")
    m = summary["mlflow"]
    if m:
        console.print(f"MLflow: experiment {m['experiment']!r}, league run {m['parent']} (learners nested) at {m['uri']}")
        if m.get("model"):
            console.print(f"        registered model {m['model']['name']!r} version {m['model']['version']} alias 'champion'")
        console.print(f"        browse: mlflow ui --backend-store-uri {m['uri']}")
