"""CPU sampling speed: marl.tiny_gpt (KV cache) vs Hugging Face GPT2LMHeadModel.generate.

Both models have the same shape (4 layers, d=256, 4 heads, byte vocab of 259), random init.
Each (model, batch) case runs in its own subprocess so the reported peak RSS is its own.

    python benchmarks/generation_speed.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PROMPT_LEN, NEW_TOKENS = 64, 64


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def worker(impl: str, batch: int, repeats: int) -> dict:
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
    params = sum(p.numel() for p in model.parameters())
    rss_before = _rss_mib()
    run(0)  # warm-up
    run(1)
    times = []
    for i in range(repeats):
        t0 = time.perf_counter()
        run(100 + i)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {"impl": impl, "batch": batch, "params": params, "seconds": med,
            "tok_s": batch * NEW_TOKENS / med, "peak_rss_mib": _rss_mib(), "rss_before_mib": rss_before,
            "threads": torch.get_num_threads()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer timed repeats")
    ap.add_argument("--worker", nargs=2, metavar=("IMPL", "BATCH"), help=argparse.SUPPRESS)
    ap.add_argument("--repeats", type=int, default=None)
    args = ap.parse_args()
    repeats = args.repeats or (3 if args.quick else 10)
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), repeats)))
        return
    results = {}
    for batch in (1, 8):
        for impl in ("ours", "hf"):
            cmd = [sys.executable, __file__, "--worker", impl, str(batch), "--repeats", str(repeats)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            results[impl, batch] = json.loads(out.strip().splitlines()[-1])
    header = ["batch", "model", "params", "tokens/s", "ours/HF", "peak RSS MiB"]
    rows = []
    for batch in (1, 8):
        ratio = results["ours", batch]["tok_s"] / results["hf", batch]["tok_s"]
        for impl, name in (("ours", "tiny_gpt (KV cache)"), ("hf", "HF GPT2LMHeadModel")):
            r = results[impl, batch]
            rows.append([str(batch), name, f"{r['params'] / 1e6:.2f}M", f"{r['tok_s']:.0f}",
                         f"{ratio:.2f}x" if impl == "ours" else "", f"{r['peak_rss_mib']:.0f}"])
    title = (f"Sampling speed, CPU ({results['ours', 1]['threads']} threads), prompt {PROMPT_LEN}, "
             f"{NEW_TOKENS} new tokens, median of {repeats}")
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(title)
        widths = [max(len(x) for x in col) for col in zip(header, *rows)]
        for row in [header, *rows]:
            print("  ".join(x.ljust(w) for x, w in zip(row, widths)))
        return
    table = Table(title=title)
    for h in header:
        table.add_column(h, justify="left" if h == "model" else "right")
    for row in rows:
        table.add_row(*row)
    Console().print(table)


if __name__ == "__main__":
    main()
