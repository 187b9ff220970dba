"""Benchmark: training and evaluation throughput of the fast path against plain fp32, at 1, 2 and 3
routings, plus the dashboard's inference latencies; optionally the test error of both paths after a
few epochs on a fixed subset.

    python -m trainer.bench                       # throughput, CPU or the auto device
    python -m trainer.bench --accuracy            # also train both paths on a subset and compare errors
    python -m trainer.bench --precision fp32      # the fast path in fp32 (default: auto, as trainer.run)

Each path runs in its own subprocess, so process-wide settings of the fast path (the allocator
tuning) cannot help the plain one. Results are printed and written to bench/results/.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure_path(fast: bool, routings: list[int], device_name: str, batch: int, steps: int, repeats: int,
                 precision: str, compile_model: bool = False, eval_batches: int = 4) -> dict:
    """Images/s for training steps and evaluation batches of the real model on real MNIST digits.

    Each figure is the median of `repeats` timed windows (`steps` training batches, or `eval_batches`
    evaluation batches of 500), with the slowest and fastest window beside it: a shared or virtual machine slows
    single windows now and then, and the median is what a long run sees."""
    from capsviz import load_mnist
    from capsviz.machine import resolve_device
    from trainer.loop import EVAL_BATCH_SIZE, TrainConfig, Trainer, select, train_one_epoch, validate

    device = resolve_device(device_name)
    images, labels = load_mnist("train")
    results = {}
    for r in routings:
        config = TrainConfig(routings=r, batch_size=batch, fast=fast, device=device_name, precision=precision)
        trainer = Trainer(config, ROOT / "bench" / "unused", device, select(images, labels, batch * steps),
                          select(images, labels, eval_batches * EVAL_BATCH_SIZE), log=lambda message: None)
        warm = select(images[:2 * batch], labels[:2 * batch], None)
        compute = trainer.precision.precision
        if compile_model and fast:
            trainer.model = torch.compile(trainer.model)  # shares the parameters the optimizer holds
        task, dataset = trainer.task, trainer.dataset
        train_one_epoch(trainer.model, trainer.optimizer, task, dataset, warm[0].to(device), warm[1].to(device),
                        config, trainer.generator, device, precision=compute)  # warm-up: allocator, kernel choice
        validate(trainer.model, task, trainer.test_images[:EVAL_BATCH_SIZE], trainer.test_labels[:EVAL_BATCH_SIZE],
                 config, device, precision=compute)
        synchronize(device)
        train, evaluation = [], []
        for _ in range(repeats):
            stats = train_one_epoch(trainer.model, trainer.optimizer, task, dataset, trainer.train_images,
                                    trainer.train_labels, config, trainer.generator, device, precision=compute)
            train.append(stats.images / stats.seconds)
        for _ in range(repeats):
            stats = validate(trainer.model, task, trainer.test_images, trainer.test_labels, config, device,
                             precision=compute)
            evaluation.append(stats.images / stats.seconds)
        results[r] = {"train_images_per_second": statistics.median(train), "train_range": [min(train), max(train)],
                      "eval_images_per_second": statistics.median(evaluation),
                      "eval_range": [min(evaluation), max(evaluation)], "precision": trainer.precision.to_dict()}
        print(f"  {'fast' if fast else 'plain'} ({compute}) r{r}: train {results[r]['train_images_per_second']:.1f} img/s "
              f"({min(train):.0f}-{max(train):.0f}), eval {results[r]['eval_images_per_second']:.1f} img/s "
              f"({min(evaluation):.0f}-{max(evaluation):.0f})", file=sys.stderr, flush=True)
    return results


def check_results_dir(folder: str) -> None:
    """Refuse (ValueError, one line) a --results-dir the JSON could not be written in: an empty or
    over-long path, a file or a path under one, a folder without write permission."""
    import os

    from capsviz.atomic import nearest_existing
    from trainer.paths import path_problem

    problem = path_problem(folder)  # the text as given: Path("") would read as the current folder
    if problem:
        raise ValueError(f"--results-dir {folder!r}: {problem}")
    try:
        existing, problem = nearest_existing(folder)
    except OSError as error:
        raise ValueError(f"--results-dir {folder}: {error.strerror}") from None
    if problem:
        raise ValueError(f"--results-dir {folder}: {problem}, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"--results-dir {folder}: {existing} is not writable")


def measure_inference(repeats: int = 50) -> dict:
    """What the dashboard does on the CPU, fp32: decode one capsule vector; a full forward of one digit."""
    from capsviz import CapsNet

    torch.manual_seed(0)
    model = CapsNet(routings=3).eval()
    digit = torch.rand(1, 1, 28, 28)
    timings = {}
    with torch.no_grad():
        poses = model(digit).poses
        for name, call in (("decode_ms", lambda: model.decode(poses, 3)), ("forward_ms", lambda: model(digit))):
            for _ in range(5):
                call()
            samples = []
            for _ in range(repeats):
                start = time.perf_counter()
                call()
                samples.append(1000 * (time.perf_counter() - start))
            timings[name] = sorted(samples)[len(samples) // 2]  # median
    return timings


def measure_accuracy(fast: bool, seed: int, subset: int, test_subset: int, epochs: int, device_name: str,
                     precision: str) -> float:
    from capsviz import load_mnist
    from capsviz.machine import resolve_device
    from trainer.loop import TrainConfig, Trainer, select

    device = resolve_device(device_name)
    config = TrainConfig(routings=3, epochs=epochs, fast=fast, seed=seed, subset=subset, test_subset=test_subset,
                         device=device_name, precision=precision)
    trainer = Trainer(config, ROOT / "bench" / "unused", device, select(*load_mnist("train"), subset),
                      select(*load_mnist("test"), test_subset), log=lambda message: None)
    error = None
    for epoch in range(1, epochs + 1):
        error = trainer.run_epoch(epoch)["test_error"]
    return error


def worker(args) -> None:
    """Runs one path in this process and prints its results as JSON on stdout."""
    fast = args.worker == "fast"
    if args.accuracy_seed is not None:
        result = measure_accuracy(fast, args.accuracy_seed, args.subset, args.test_subset, args.epochs, args.device,
                                  args.precision)
    else:
        result = measure_path(fast, args.routings, args.device, args.batch_size, args.steps, args.repeats,
                              args.precision, args.compile, args.eval_batches)
    print(json.dumps(result))


def spawn(path: str, extra: list[str]) -> dict:
    command = [sys.executable, "-m", "trainer.bench", "--worker", path, *extra]
    result = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    if result.returncode != 0:
        raise SystemExit(f"error: benchmark worker {' '.join(command)} failed (exit {result.returncode})")
    return json.loads(result.stdout.strip().splitlines()[-1])


def machine(device_name: str) -> dict:
    """The trainer's own machine record (capsviz.machine): CPU model, its bf16 support, torch, commit."""
    from capsviz.machine import describe_machine, resolve_device

    info = describe_machine(resolve_device(device_name))
    if info["device"] == "cuda":
        info["gpu"] = info["device_name"]
    return info


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default auto)")
    parser.add_argument("--precision", default="auto",
                        help="the fast path's arithmetic: auto, bf16 or fp32, as trainer.run (default auto)")
    parser.add_argument("--routings", type=lambda t: [int(x) for x in t.split(",")], default=[1, 2, 3],
                        help="comma-separated routing counts (default 1,2,3)")
    parser.add_argument("--batch-size", type=int, default=100, help="training batch size (default 100)")
    parser.add_argument("--steps", type=int, default=10, help="training batches per timed window (default 10)")
    parser.add_argument("--repeats", type=int, default=5, help="timed windows per figure; the median is reported (default 5)")
    parser.add_argument("--eval-batches", type=int, default=4,
                        help="evaluation batches of 500 test images per timed window (default 4)")
    parser.add_argument("--compile", action="store_true", help="also torch.compile the fast path's model")
    parser.add_argument("--accuracy", action="store_true", help="also train both paths on a subset and compare test errors")
    parser.add_argument("--subset", type=int, default=5000, help="training images for --accuracy (default 5000)")
    parser.add_argument("--test-subset", type=int, default=2000, help="test images for --accuracy (default 2000)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs for --accuracy (default 3)")
    parser.add_argument("--seeds", type=int, default=2, help="seeds per path for --accuracy (default 2)")
    parser.add_argument("--results-dir", default=str(RESULTS), help="where the JSON goes (default bench/results)")
    parser.add_argument("--worker", choices=["fast", "plain"], help=argparse.SUPPRESS)
    parser.add_argument("--accuracy-seed", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return 0

    from capsviz.machine import resolve_device
    from trainer.loop import TrainConfig
    from trainer.run import CliError, validate_config
    try:
        check_results_dir(args.results_dir)  # before minutes of measuring, not after
        resolve_device(args.device)
        for routings in args.routings:  # the trainer's own checks for what a training run shares
            validate_config(TrainConfig(routings=routings, batch_size=args.batch_size, epochs=args.epochs,
                                        precision=args.precision))
        for name in ("steps", "repeats", "eval_batches", "subset", "test_subset", "seeds"):
            if getattr(args, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} {getattr(args, name)}: must be at least 1")
    except (ValueError, CliError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    common = ["--device", args.device, "--precision", args.precision, "--routings", ",".join(map(str, args.routings)),
              "--batch-size", str(args.batch_size), "--steps", str(args.steps), "--repeats", str(args.repeats),
              "--eval-batches", str(args.eval_batches),
              *(["--compile"] if args.compile else [])]
    print(f"measuring on {args.device}: batch {args.batch_size}, median of {args.repeats} windows of {args.steps} "
          f"training batches per figure", flush=True)
    paths = {path: spawn(path, common) for path in ("fast", "plain")}
    report = {"machine": machine(args.device), "batch_size": args.batch_size, "steps": args.steps, "repeats": args.repeats,
              "eval_batches": args.eval_batches,
              "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "throughput": [], "inference": measure_inference()}
    fast_precision = paths["fast"][str(args.routings[0])]["precision"]
    report["precision"] = {"requested": args.precision, "fast": fast_precision, "plain": "fp32"}
    report["compiled"] = args.compile
    cpu = report["machine"]
    bf16 = "native bf16" if cpu["cpu_flags"]["native_bf16"] else "no native bf16"
    print(f"\n{cpu['cpu']} ({bf16}), {cpu['threads']} threads, torch {cpu['torch']}, device {cpu['device']}\n"
          f"fast path: {fast_precision['precision']} ({fast_precision['reason']}); plain path: fp32")
    print(f"\n{'routings':>8} | {'train fast':>10} | {'train plain':>11} | {'ratio':>5} | {'eval fast':>9} | "
          f"{'eval plain':>10} | {'ratio':>5} | {'s/epoch fast':>12}")
    for r in args.routings:
        fast, plain = paths["fast"][str(r)], paths["plain"][str(r)]
        row = {"routings": r,
               "train_fast": fast["train_images_per_second"], "train_plain": plain["train_images_per_second"],
               "eval_fast": fast["eval_images_per_second"], "eval_plain": plain["eval_images_per_second"],
               "train_fast_range": fast["train_range"], "train_plain_range": plain["train_range"],
               "eval_fast_range": fast["eval_range"], "eval_plain_range": plain["eval_range"]}
        row["train_ratio"] = row["train_fast"] / row["train_plain"]
        row["eval_ratio"] = row["eval_fast"] / row["eval_plain"]
        row["epoch_seconds_fast"] = 60_000 / row["train_fast"] + 10_000 / row["eval_fast"]
        report["throughput"].append(row)
        print(f"{r:>8} | {row['train_fast']:>10.1f} | {row['train_plain']:>11.1f} | {row['train_ratio']:>5.2f} | "
              f"{row['eval_fast']:>9.1f} | {row['eval_plain']:>10.1f} | {row['eval_ratio']:>5.2f} | "
              f"{row['epoch_seconds_fast']:>12.0f}")
    print(f"(images/s, median of {args.repeats} windows; s/epoch = 60k training images + 10k test images)\n"
          f"inference on CPU, fp32, median: decode one capsule vector {report['inference']['decode_ms']:.2f} ms, "
          f"forward one digit {report['inference']['forward_ms']:.2f} ms")

    if args.accuracy:
        extra = ["--device", args.device, "--precision", args.precision, "--subset", str(args.subset), "--test-subset", str(args.test_subset),
                 "--epochs", str(args.epochs)]
        errors = {path: [spawn(path, [*extra, "--accuracy-seed", str(seed)]) for seed in range(args.seeds)]
                  for path in ("fast", "plain")}
        report["accuracy"] = {"subset": args.subset, "test_subset": args.test_subset, "epochs": args.epochs,
                              "routings": 3, "test_error_percent": errors,
                              "precision": {"fast": fast_precision["precision"], "plain": "fp32"}}
        print(f"test error after {args.epochs} epochs on {args.subset} images (3 routings, {args.test_subset} test "
              f"images), seeds 0..{args.seeds - 1}: fast ({fast_precision['precision']}) {errors['fast']}, "
              f"plain (fp32) {errors['plain']}")

    results_dir = Path(args.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    out = results_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{report['machine']['device']}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
