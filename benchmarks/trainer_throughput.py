"""Training throughput on CPU: Agora's MAGRPO step vs comlrl's MAGRPOTrainer and TRL's GRPOTrainer.

One step of each trainer does the same work on the same transformers model: 2 start states (prompts),
a group of 4 completions of at most 16 new tokens per prompt and learning agent (sampling at
temperature 1, top-p 1), group-relative advantages, a policy-gradient loss, one AdamW step, in fp32.

- Agora, 2 agents: ``marl.magrpo.train`` itself (rollout, advantage, loss, update) on a single-turn
  arena, two separate models; the step time is the trainer's own ``time/step_s``.
- comlrl ``MAGRPOTrainer`` (the MAGRPO authors' library), 2 agents (two separate models), ``num_turns=1``;
  one ``train()`` epoch over the 2 prompts is one update per agent. ``top_k=0``: its ``None`` would leave
  transformers' default top-k of 50 in place, and every trainer here samples the full distribution.
- Agora, 1 agent: the same trainer with the partner played by the arena's scripted heuristic, so only
  one model samples and learns: the same work as TRL's single-agent step.
- TRL ``GRPOTrainer``, 1 agent: ``bf16=False, gradient_checkpointing=False`` (this CPU has no bf16),
  ``beta=0`` (no reference model, like the others), 8 completions per step. The bench extra pins trl
  1.14.2: from 1.15 on, TRL's fused LM-head kernel runs as a torch fallback on CPU, 5-8x slower per step
  here, and the comparison should be with the peer at its best.

The arena (``bench_matrix_v0``, registered here) is the climbing game of ``climbing_v0`` whose start
states alternate between two payoff tables (the climbing and the penalty game of Claus and Boutilier),
so the 2 start states of a step are 2 different prompts. Every trainer gets those prompts through the
model's chat template, and the same reward (the arena's). comlrl finds the end of a prompt at its first
pad token, and SmolLM2's pad token is ``<|im_end|>``, which its chat template uses inside the prompt:
comlrl's tokenizer therefore gets ``<|endoftext|>`` as its pad token.

Models: ``tiny``, a random Llama (4 layers, d=64) with SmolLM2's tokenizer, built here; ``smollm2``,
SmolLM2-135M-Instruct (``marl.hf.smollm2_path()``). Agora and the peer it is compared with run in two
processes that take turns step by step (one warm-up step each, then ``--steps`` timed rounds), so that load
from other programs on the machine hits both alike; Agora's pause between steps is its trainer's progress
callback, outside the step's own timing. The table shows medians. Completions/s counts the learning agents'
completions; tokens/s their generated tokens (up to and with the end-of-sequence token).

Compute bound: the least arithmetic a step needs, about 2N FLOPs per generated token and 6N per trained
token, N the parameters of the model's matmuls (its Linear layers): a prompt is prefilled and trained once
per group (its tokens need no LM head, so N there is without it) and each completion token is generated and
trained once. At the fp32 matmul FLOP/s that torch reaches on this machine in the same run (the best of a
few 2048x2048 products) that arithmetic takes a least time; the "bound" column is that least time over the
measured step time. The "ceiling" column is the speed-up over a peer that Agora's step would show if it ran at
that bound: a target beyond it asks for less arithmetic (fewer tokens, a smaller head) or a faster number format.

    pip install -e ".[bench]"   # comlrl and trl (see the Makefile's bench target)
    python benchmarks/trainer_throughput.py [--model tiny|smollm2|both] [--steps 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import arenas  # noqa: E402
from arenas.games import climbing  # noqa: E402

ARENA = "bench_matrix_v0"
AGENTS = ("agent_0", "agent_1")
PROMPTS, GROUP, NEW_TOKENS, LR = 2, 4, 16, 1e-5
PENALTY = ((10.0, 0.0, -10.0), (0.0, 2.0, 0.0), (-10.0, 0.0, 10.0))  # Claus & Boutilier's penalty game, k = -10
TABLES = (climbing.PAYOFFS, PENALTY)


# ---------------------------------------------------------------------------- the arena
class MatrixArena(climbing.raw_env):
    """The climbing arena whose payoff table alternates with the start seed's parity."""

    def _new_game(self, options: dict) -> None:
        self.payoffs = TABLES[int(self.np_random_seed) % len(TABLES)]
        self.scale = max(abs(v) for row in self.payoffs for v in row)
        super()._new_game(options)


def register_arena() -> None:
    if ARENA not in arenas.names():
        arenas.register(arenas.ArenaSpec(
            name=ARENA, factory=MatrixArena, agents="2", parallel=True, rewards="shared",
            description="climbing_v0 with the climbing or the penalty table, by the start seed's parity",
            heuristic=climbing.heuristic))


def prompts(seeds: list[int]) -> dict[str, list[str]]:
    """Each agent's first observation for each start seed."""
    out: dict[str, list[str]] = {a: [] for a in AGENTS}
    for seed in seeds:
        env = arenas.make(ARENA)
        env.reset(seed=seed)
        for a in AGENTS:
            out[a].append(env.observe(a)["text"])
    return out


def joint_reward(seed: int, action_0: str, action_1: str) -> float:
    env = arenas.make(ARENA)
    env.reset(seed=seed)
    env.step(action_0)
    env.step(action_1)
    return float(env.rewards["agent_0"])


def partner(seed: int) -> str:
    env = arenas.make(ARENA)
    env.reset(seed=seed)
    env.step("a")
    return climbing.heuristic(env.observe("agent_1")["text"], {}, None)


# ---------------------------------------------------------------------------- models
def model_dir(name: str, tmp: Path) -> Path:
    from marl import hf

    if name == "smollm2":
        return hf.smollm2_path()
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    path = tmp / "tiny-llama"
    if not (path / "config.json").is_file():
        tok = AutoTokenizer.from_pretrained(hf.smollm2_path())
        torch.manual_seed(0)
        cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=256, num_hidden_layers=4,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                          tie_word_embeddings=False, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                          pad_token_id=tok.pad_token_id)
        LlamaForCausalLM(cfg).save_pretrained(path)
        tok.save_pretrained(path)
    return path


def load(path: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32), AutoTokenizer.from_pretrained(path)


def matmul_params(model) -> tuple[int, int]:
    """Parameters of the model's matmuls: all of them, and those of its LM head."""
    total = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    return total, model.get_output_embeddings().weight.numel()


def chat(tokenizer, text: str) -> list[int]:
    return list(tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                              tokenize=True, return_dict=False))


def peak_matmul_flops(repeats: int = 5, n: int = 2048) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * n**3 / (time.perf_counter() - t0))
    return best


# ---------------------------------------------------------------------------- results
@dataclass
class Result:
    name: str
    agents: int
    step_s: list[float] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)  # generated tokens per timed step
    error: str | None = None

    @property
    def completions(self) -> int:
        return self.agents * PROMPTS * GROUP

    def median_step(self) -> float:
        return statistics.median(self.step_s)

    def median_tokens(self) -> float:
        return statistics.median(self.tokens)


# ---------------------------------------------------------------------------- taking turns
class Baton:
    """A trainer running in a worker process does one step per turn: it waits for ``go`` before its first step
    and, after each step, reports the step's seconds and generated tokens and waits again. Its partner's step
    runs in between, so machine noise hits both trainers of a comparison alike."""

    def __init__(self, conn):
        self.conn = conn

    def start(self) -> None:
        self.conn.recv()

    def step(self, seconds: float, tokens: int) -> None:
        self.conn.send(("step", seconds, tokens))
        self.conn.recv()


# ---------------------------------------------------------------------------- Agora
def run_agora(baton: Baton, path: Path, smollm2: bool, agents: int, steps: int, tmp: Path) -> None:
    """``marl.magrpo.train`` itself; its per-step progress callback is where the baton changes hands (outside
    the step's own timing, ``time/step_s``)."""
    from marl import magrpo

    spec = {"backend": "smollm2"} if smollm2 else {"backend": "hf", "path": str(path)}
    policies = {"p0": spec, "p1": spec if agents == 2 else {"backend": "scripted", "name": "heuristic"}}
    # the trainer's start seeds of a step are consecutive: one of each table, like the peers' 2 prompts
    cfg = magrpo.TrainConfig(arena=ARENA, policies={"policies": policies, "mapping": {"agent_0": "p0", "agent_1": "p1"}},
                             steps=steps + 1, batch_size=PROMPTS, group_size=GROUP, max_new_tokens=NEW_TOKENS, lr=LR,
                             tracking=False, out=str(tmp / f"agora-{agents}"), seed=0)

    def progress(enabled: bool, total: int):
        baton.start()

        def bar(step, metrics):
            if step is not None:
                baton.step(metrics["time/step_s"], round(metrics["speed/tokens_per_s"] * metrics["time/rollout_s"]))
        return bar

    if not callable(getattr(magrpo, "_progress", None)):
        raise RuntimeError("marl.magrpo has no _progress(enabled, steps) hook to pace its steps")
    magrpo._progress = progress
    magrpo.train(cfg, progress=True)
    shutil.rmtree(tmp / f"agora-{agents}", ignore_errors=True)


# ---------------------------------------------------------------------------- comlrl
def run_comlrl(baton: Baton, path: Path, steps: int) -> None:
    from comlrl.trainers.reinforce.magrpo import MAGRPOConfig, MAGRPOTrainer
    from datasets import Dataset

    model_a, tok = load(path)
    model_b, _ = load(path)
    tok.pad_token = "<|endoftext|>"  # see the module docstring: comlrl cuts a prompt at its first pad token
    text = prompts(list(range(PROMPTS)))
    items = Dataset.from_list([{"seed": s, "prompt": text["agent_0"][s]} for s in range(PROMPTS)])
    formatters = [lambda item, a=a: tok.apply_chat_template([{"role": "user", "content": text[a][item["seed"]]}],
                                                          add_generation_prompt=True, tokenize=False) for a in AGENTS]

    def reward(c0, c1, *, batch_items=None):
        return [joint_reward(int(batch_items[0]["seed"]), c0[0], c1[0])]

    args = MAGRPOConfig(num_train_epochs=1, agent_learning_rate=LR, num_agents=2, agent_devices="cpu",
                        num_generations=GROUP, max_new_tokens=NEW_TOKENS, temperature=1.0, top_p=1.0, top_k=0,
                        num_turns=1, eval_interval=0, rollout_buffer_size=PROMPTS, advantage_normalization=True)
    trainer = MAGRPOTrainer(agents=[model_a, model_b], num_agents=2, tokenizer=tok, train_dataset=items,
                            reward_func=reward, formatters=formatters, args=args)
    trainer.verbose = False
    generated = []
    inner = trainer._generate_completions

    def counting(*a, **k):
        out = inner(*a, **k)
        generated.append(sum(out["response_lens"]))
        return out

    trainer._generate_completions = counting
    baton.start()
    for step in range(steps + 1):  # one train() epoch over the 2 prompts: one update per agent
        generated.clear()
        torch.manual_seed(step)
        t0 = time.perf_counter()
        trainer.train()
        baton.step(time.perf_counter() - t0, sum(generated))


# ---------------------------------------------------------------------------- TRL
def run_trl(baton: Baton, path: Path, steps: int, tmp: Path) -> None:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    model, tok = load(path)
    text = prompts(list(range(PROMPTS)))["agent_0"]
    data = Dataset.from_list([{"seed": s, "prompt": [{"role": "user", "content": text[s]}]} for s in range(PROMPTS)])
    generated: list[int] = []

    def reward(prompts, completions, completion_ids, seed, **_):
        generated.append(sum(len(c) for c in completion_ids))
        return [joint_reward(int(s), c[0]["content"], partner(int(s))) for s, c in zip(seed, completions)]

    class Timer(TrainerCallback):  # a step, generation included, runs from on_step_begin to on_step_end
        def on_train_begin(self, args, state, control, **kw):
            baton.start()

        def on_step_begin(self, args, state, control, **kw):
            generated.clear()
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            baton.step(time.perf_counter() - self.t0, sum(generated))

    args = GRPOConfig(output_dir=str(tmp / "trl"), max_steps=steps + 1, per_device_train_batch_size=PROMPTS * GROUP,
                      gradient_accumulation_steps=1, num_generations=GROUP, max_completion_length=NEW_TOKENS,
                      learning_rate=LR, beta=0.0, temperature=1.0, top_p=1.0, top_k=0, bf16=False, fp16=False,
                      gradient_checkpointing=False, use_cpu=True, report_to="none", logging_steps=10**6,
                      save_strategy="no", disable_tqdm=True, seed=0, dataloader_num_workers=0)
    trainer = GRPOTrainer(model=model, reward_funcs=reward, args=args, train_dataset=data, processing_class=tok,
                          callbacks=[Timer()])
    trainer.train()


# ---------------------------------------------------------------------------- turns and table
RUNNERS = {"agora2": ("Agora MAGRPO, 2 agents", 2), "comlrl": ("comlrl MAGRPOTrainer, 2 agents", 2),
           "agora1": ("Agora MAGRPO, 1 agent", 1), "trl": ("TRL GRPOTrainer, 1 agent", 1)}


def worker(kind: str, model: str, path: str, steps: int, threads: int | None, tmp: str, conn) -> None:
    """One trainer in its own process (its own memory and library state), stepping when the baton says."""
    if threads:
        torch.set_num_threads(threads)
    os.environ.setdefault("WANDB_MODE", "disabled")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    register_arena()
    baton = Baton(conn)
    try:
        if kind.startswith("agora"):
            run_agora(baton, Path(path), model == "smollm2", RUNNERS[kind][1], steps, Path(tmp))
        elif kind == "comlrl":
            run_comlrl(baton, Path(path), steps)
        else:
            run_trl(baton, Path(path), steps, Path(tmp))
        conn.send(("done",))
    except ImportError as e:
        conn.send(("error", f"not installed ({e.name or e}): pip install -e \".[bench]\""))
    except Exception as e:  # a peer that cannot run says exactly why, and the table goes on without it
        traceback.print_exc()
        conn.send(("error", f"{type(e).__name__}: {e}".splitlines()[0][:200]))


def take_turns(kinds: tuple[str, ...], model: str, path: Path, steps: int, threads: int | None, tmp: Path) -> list[Result]:
    """The trainers in ``kinds`` step by turns, one at a time: a warm-up step each, then ``steps`` rounds."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    results, procs = {}, {}
    for kind in kinds:
        mine, theirs = ctx.Pipe()
        proc = ctx.Process(target=worker, args=(kind, model, str(path), steps, threads, str(tmp), theirs), daemon=True)
        proc.start()
        procs[kind], results[kind] = (proc, mine), Result(*RUNNERS[kind])

    def turn(kind: str) -> tuple:
        proc, conn = procs[kind]
        conn.send("go")
        while not conn.poll(1.0):
            if not proc.is_alive():
                return ("error", f"its process ended with exit code {proc.exitcode}")
        return conn.recv()

    for step in range(steps + 1):
        for kind in kinds:
            if results[kind].error:
                continue
            msg = turn(kind)
            if msg[0] == "error":
                results[kind].error = msg[1]
            elif msg[0] == "step" and step > 0:  # step 0 warms up
                results[kind].step_s.append(msg[1])
                results[kind].tokens.append(msg[2])
    for kind, (proc, _) in procs.items():
        if not results[kind].error and (msg := turn(kind))[0] == "error":  # let the trainer finish
            results[kind].error = msg[1]
        proc.join(timeout=60)
    return [results[k] for k in kinds]


def bench(model: str, steps: int, threads: int | None, tmp: Path) -> tuple[list[tuple[Result, Result | None]], dict]:
    """Agora against comlrl (2 learning agents each), then Agora against TRL (1 each), each pair by turns."""
    path = model_dir(model, tmp)
    net, tok = load(path)
    n = matmul_params(net)
    del net
    text = prompts(list(range(PROMPTS)))
    prompt_tokens = {a: sum(len(chat(tok, t)) for t in text[a]) for a in AGENTS}
    agora2, comlrl = take_turns(("agora2", "comlrl"), model, path, steps, threads, tmp)
    agora1, trl = take_turns(("agora1", "trl"), model, path, steps, threads, tmp)
    info = {"params": n[0], "head": n[1], "prompt_tokens": prompt_tokens}
    return [(agora2, None), (comlrl, agora2), (agora1, None), (trl, agora1)], info


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for name in ("comlrl", "trl", "transformers", "torch"):
        try:
            out.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            out.append(f"{name} not installed")
    return ", ".join(out)


def least_seconds(res: Result, info: dict, flops: float) -> float:
    """The step's least arithmetic (see the module docstring) at the matmul peak."""
    n, body = info["params"], info["params"] - info["head"]
    prompt = info["prompt_tokens"]["agent_0"] + (info["prompt_tokens"]["agent_1"] if res.agents == 2 else 0)
    return (2 + 6) * (body * prompt + n * res.median_tokens()) / flops


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=("tiny", "smollm2", "both"), default="both")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per trainer, after one warm-up step")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("WANDB_MODE", "disabled")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    load_avg = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load_avg > 0.5:  # other processes on the cores make OpenMP threads spin-wait: numbers swing widely
        print(f"warning: load average {load_avg:.1f} before the run; timings will be noisy (try --threads 1)")
    register_arena()
    flops = peak_matmul_flops()
    tmp = Path(tempfile.mkdtemp(prefix="agora-bench-"))
    rows, notes = [], []
    try:
        for model in ("tiny", "smollm2") if args.model == "both" else (args.model,):
            results, info = bench(model, args.steps, args.threads, tmp)
            flops = max(flops, peak_matmul_flops())  # measured again after the model's runs
            for res, ours in results:
                if res.error:
                    notes.append(f"{model}: {res.name} could not run: {res.error}")
                    rows.append([model, res.name, "-", "-", "-", "-", "n/a", "n/a", "n/a", "-"])
                    continue
                step = res.median_step()
                ratios = ["", "", ""]
                if ours is not None and not ours.error:
                    ratios = [f"{(ours.completions / ours.median_step()) / (res.completions / step):.2f}x",
                              f"{(ours.median_tokens() / ours.median_step()) / (res.median_tokens() / step):.2f}x",
                              f"{step / least_seconds(ours, info, flops):.1f}x"]
                rows.append([model, res.name, f"{step:.2f}", f"{res.completions / step:.2f}",
                             f"{res.median_tokens() / step:.1f}", f"{res.median_tokens() / res.completions:.1f}",
                             *ratios, f"{least_seconds(res, info, flops) / step:.1%}"])
            notes.append(f"{model}: N = {info['params'] / 1e6:.2f}M matmul parameters ({info['head'] / 1e6:.2f}M in the LM head); prompt tokens per step "
                         f"(2 prompts) agent_0 {info['prompt_tokens']['agent_0']}, agent_1 {info['prompt_tokens']['agent_1']}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    header = ["model", "trainer", "s/step", "completions/s", "tokens/s", "tokens/completion", "Agora: completions/s",
              "Agora: tokens/s", "ceiling", "bound"]
    title = (f"One training step on CPU ({torch.get_num_threads()} threads, fp32): {PROMPTS} prompts x group {GROUP}, "
             f"{NEW_TOKENS} new tokens, median of {args.steps} steps after 1 warm-up; torch matmul peak "
             f"{flops / 1e9:.0f} GFLOP/s")
    foot = [f"Peers: {versions()}.",
            "Agora: the Agora row above (same number of learning agents) over this row, in completions/s and in tokens/s.",
            "ceiling: the completions/s of Agora's step at the bound over this row's: no speed-up beyond it without "
            "less arithmetic or a faster number format.",
            "bound: least time of the step's arithmetic at the matmul peak over the measured step time.", *notes]
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, caption="\n".join(foot), caption_justify="left")
    for h in header:
        table.add_column(h, justify="left" if h in ("model", "trainer") else "right")
    for row in rows:
        table.add_row(*row)
    console = Console()
    if not console.is_terminal:  # a log file: no wrapping at 80 columns
        console = Console(width=150)
    console.print(table)


if __name__ == "__main__":
    main()
