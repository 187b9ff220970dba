"""Benchmark: one training step of the paper's baseline CNN with its convolution weights in the default
(contiguous) layout against channels-last, which BaselineCNN uses. Prints the median seconds per step of
each, interleaved so that a busy machine slows both alike; writes nothing.

    python scripts/bench_baseline_layout.py                      # bf16 autocast where the CPU has it, batch 100
    python scripts/bench_baseline_layout.py --precision fp32 --batch-size 25
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from capsviz.machine import cpu_features, git_commit
from capsviz.model.baseline import BaselineCNN


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--precision", choices=("bf16", "fp32"), default="bf16")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per layout (default 5)")
    args = parser.parse_args(argv)
    if args.batch_size < 1 or args.steps < 1:
        parser.error("--batch-size and --steps must be at least 1")
    images, labels = torch.rand(args.batch_size, 1, 28, 28), torch.randint(0, 10, (args.batch_size,))
    models = {}
    for layout in ("contiguous", "channels-last"):
        torch.manual_seed(0)
        model = BaselineCNN()  # channels-last weights, as trained
        if layout == "contiguous":
            for conv in model.convs:
                conv.weight.data = conv.weight.data.contiguous()
        models[layout] = (model, torch.optim.Adam(model.parameters(), lr=1e-3))

    def step(layout: str) -> float:
        model, optimizer = models[layout]
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16"):
            loss = F.cross_entropy(model(images).logits.float(), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return time.perf_counter() - started

    times: dict[str, list[float]] = {layout: [] for layout in models}
    for layout in models:
        step(layout)  # warm-up
    for _ in range(args.steps):
        for layout in models:
            times[layout].append(step(layout))
    cpu = cpu_features()
    print(f"{cpu.model} ({'native bf16' if cpu.native_bf16 else 'no native bf16'}), {torch.get_num_threads()} "
          f"thread(s), torch {torch.__version__}, commit {git_commit()}: {args.precision}, batch {args.batch_size}")
    for layout, seconds in times.items():
        print(f"  {layout:>13}: median {statistics.median(seconds):.3f} s/step "
              f"({', '.join(f'{s:.2f}' for s in seconds)})")
    ratio = statistics.median(times["contiguous"]) / statistics.median(times["channels-last"])
    print(f"  channels-last is {ratio:.2f}x the contiguous layout's speed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
