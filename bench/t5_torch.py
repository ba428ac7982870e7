"""PyTorch baseline for bench/t5.ts: times the T5 encoder of shared/reference/t5_golden.py (an independent
plain-PyTorch re-implementation of HF's T5EncoderModel) on a random T5-small-shaped model and prints one
JSON line with the fields bench/measure.ts's TorchRun expects (times_s, peak_rss_mb, blas, torch).

    /usr/bin/python3 bench/t5_torch.py --batch 8 --length 64 --iters 5 [--threads 2]
"""
import argparse
import json
import os
import resource
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REF = os.path.join(HERE, "..", "..", "shared", "reference")
sys.path.insert(0, REF)

import t5_golden as ref  # noqa: E402  (re-executes under /usr/bin/python3 when torch is missing)
import torch  # noqa: E402


def matmul_gflops():
    a, b = torch.randn(512, 512), torch.randn(512, 512)
    a @ b
    t0 = time.perf_counter()
    for _ in range(10):
        a @ b
    return 10 * 2 * 512 ** 3 / (time.perf_counter() - t0) / 1e9


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--length", type=int, default=64)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)  # t5_golden sets 1 for reproducibility; a throughput baseline uses the cores
    raw = ref.hf_config("T5EncoderModel", 32128, 512, 64, 8, 2048, 6, 32, 128, "relu", True)
    cfg = ref.resolve_config(raw)
    weights = ref.make_weights(cfg, a.seed, ["shared.weight"])
    g = torch.Generator().manual_seed(a.seed + 1)
    ids = torch.randint(3, cfg["vocab_size"], (a.batch, a.length), generator=g)
    mask = torch.ones(a.batch, a.length)
    times = []
    with torch.inference_mode():
        for i in range(a.warmup + a.iters):
            t0 = time.perf_counter()
            out = ref.t5_encode(weights, cfg, ids, mask)
            dt = time.perf_counter() - t0
            if i >= a.warmup:
                times.append(dt)
    mm = matmul_gflops()
    params = sum(v.numel() for k, v in weights.items())
    flops = 2 * (params - cfg["vocab_size"] * cfg["d_model"]) * a.batch * a.length
    print(json.dumps({
        "times_s": times, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "fwd_gflop_per_image": flops / a.batch / 1e9, "tokens": a.batch * a.length, "out_rms": float(out.pow(2).mean().sqrt()),
        "blas": {"matmul512_gflop_s": mm, "reference_blas_suspected": mm < 20},
        "torch": torch.__version__, "threads": a.threads,
    }))


if __name__ == "__main__":
    main()
