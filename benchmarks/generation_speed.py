"""CPU sampling speed: marl.tiny_gpt (KV cache) vs Hugging Face GPT2LMHeadModel.generate.

Both models have the same shape (4 layers, d=256, 4 heads, byte vocab of 259), random init.
Timed calls alternate between the two models in one process (fair under machine noise);
peak RSS is measured separately, one subprocess per (model, batch), so each number is its own.
``--smollm2`` adds the real SmolLM2-135M-Instruct (``marl.hf``, its own sampler), timed and measured in
its own subprocess per batch size.

    python benchmarks/generation_speed.py [--quick] [--smollm2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PROMPT_LEN, NEW_TOKENS = 64, 64
IMPLS = {"ours": "tiny_gpt (KV cache)", "hf": "HF GPT2LMHeadModel"}


def make_runner(impl: str, batch: int):
    """Build one model and return (run(seed) -> None, parameter count)."""
    import torch

    from marl.tiny_gpt import BOS, EOS, GPT, PAD, GPTConfig, generate

    torch.manual_seed(0)
    prompts = torch.randint(0, 256, (batch, PROMPT_LEN))
    prompts[:, 0] = BOS
    if impl == "ours":
        model = GPT(GPTConfig(n_layer=4, n_head=4, n_embd=256)).eval()
        rows = prompts.tolist()

        def run(seed):
            out = generate(model, rows, NEW_TOKENS, seed=seed, stop_token_ids=())
            assert all(len(s.completion_ids) == NEW_TOKENS for s in out)
    else:
        from transformers import GPT2Config, GPT2LMHeadModel

        cfg = GPT2Config(n_layer=4, n_embd=256, n_head=4, vocab_size=259, n_positions=1024,
                         bos_token_id=BOS, eos_token_id=EOS)
        model = GPT2LMHeadModel(cfg).eval()
        mask = torch.ones_like(prompts)

        def run(seed):
            torch.manual_seed(seed)
            out = model.generate(prompts, attention_mask=mask, do_sample=True, max_new_tokens=NEW_TOKENS,
                                 min_new_tokens=NEW_TOKENS, pad_token_id=PAD)
            assert out.shape == (batch, PROMPT_LEN + NEW_TOKENS)
    return run, sum(p.numel() for p in model.parameters())


def peak_rss_worker(impl: str, batch: int) -> dict:
    """Runs alone in a subprocess: peak RSS of importing, building and sampling with one model."""
    run, _ = make_runner(impl, batch)
    run(0)
    run(1)
    return {"peak_rss_mib": _peak_rss_mib()}


def smollm2_worker(batch: int, repeats: int) -> dict:
    """Runs alone in a subprocess: SmolLM2's tokens/s (generated tokens over median call time) and peak RSS."""
    from marl.policy import load_policy

    policy = load_policy("smollm2")
    prompts = ["Write a short story about two robots who learn to share a single battery."] * batch
    policy.generate(prompts, max_new_tokens=8, seed=0)  # warm-up
    times, tokens = [], []
    for i in range(repeats):
        t0 = time.perf_counter()
        out = policy.generate(prompts, max_new_tokens=NEW_TOKENS, temperature=1.0, seed=100 + i)
        times.append(time.perf_counter() - t0)
        tokens.append(sum(len(o.completion_ids) for o in out))
    med = statistics.median(times)
    return {"params": sum(p.numel() for p in policy.model.parameters()), "tok_s": statistics.median(tokens) / med,
            "peak_rss_mib": _peak_rss_mib()}


def _peak_rss_mib() -> float:
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the parent process
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def time_cases(repeats: int) -> dict:
    """Median seconds per generate call; ours and HF alternate so machine noise hits both alike."""
    import torch

    results = {}
    for batch in (1, 8):
        runners = {impl: make_runner(impl, batch) for impl in IMPLS}
        for impl, (run, _) in runners.items():  # warm-up
            run(0)
            run(1)
        times = {impl: [] for impl in IMPLS}
        for i in range(repeats):
            for impl, (run, _) in runners.items():
                t0 = time.perf_counter()
                run(100 + i)
                times[impl].append(time.perf_counter() - t0)
        for impl, (_, params) in runners.items():
            med = statistics.median(times[impl])
            results[impl, batch] = {"params": params, "tok_s": batch * NEW_TOKENS / med}
    results["threads"] = torch.get_num_threads()
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer timed repeats")
    ap.add_argument("--repeats", type=int, default=None, help="timed generate calls per case")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--smollm2", action="store_true", help="also time SmolLM2-135M-Instruct (needs the hf extra)")
    ap.add_argument("--rss-worker", nargs=2, metavar=("IMPL", "BATCH"), help=argparse.SUPPRESS)
    ap.add_argument("--smollm2-worker", nargs=2, metavar=("BATCH", "REPEATS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rss_worker:
        print(json.dumps(peak_rss_worker(args.rss_worker[0], int(args.rss_worker[1]))))
        return
    if args.smollm2_worker:
        print(json.dumps(smollm2_worker(int(args.smollm2_worker[0]), int(args.smollm2_worker[1]))))
        return
    repeats = args.repeats or (3 if args.quick else 15)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load > 0.5:  # other processes on the cores make OpenMP threads spin-wait: numbers swing widely
        print(f"warning: load average {load:.1f} before the run; timings will be noisy")
    results = time_cases(repeats)
    for key in [(impl, batch) for batch in (1, 8) for impl in IMPLS]:
        cmd = [sys.executable, __file__, "--rss-worker", key[0], str(key[1])]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        results[key].update(json.loads(out.strip().splitlines()[-1]))
    header = ["batch", "model", "params", "tokens/s", "ours/HF", "peak RSS MiB"]
    rows = []
    for batch in (1, 8):
        ratio = results["ours", batch]["tok_s"] / results["hf", batch]["tok_s"]
        for impl, name in IMPLS.items():
            r = results[impl, batch]
            rows.append([str(batch), name, f"{r['params'] / 1e6:.2f}M", f"{r['tok_s']:.0f}",
                         f"{ratio:.2f}x" if impl == "ours" else "", f"{r['peak_rss_mib']:.0f}"])
        if args.smollm2:
            cmd = [sys.executable, __file__, "--smollm2-worker", str(batch), str(min(repeats, 3))]
            r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
            rows.append([str(batch), "SmolLM2-135M-Instruct (marl.hf)", f"{r['params'] / 1e6:.1f}M", f"{r['tok_s']:.0f}", "",
                         f"{r['peak_rss_mib']:.0f}"])
    title = (f"Sampling on CPU ({results['threads']} threads): prompt {PROMPT_LEN}, {NEW_TOKENS} new "
             f"tokens, median of {repeats}; peak RSS per model in its own process")
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for h in header:
        table.add_column(h, justify="left" if h == "model" else "right")
    for row in rows:
        table.add_row(*row)
    Console().print(table)


if __name__ == "__main__":
    main()
