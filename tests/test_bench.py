"""The benchmark command runs both paths and writes what it printed, with the machine, as JSON."""
import json

import pytest

from trainer.bench import main


@pytest.mark.slow
def test_bench_writes_both_paths_their_ratio_and_the_machine(tmp_path, capsys):
    assert main(["--device", "cpu", "--routings", "1", "--steps", "1", "--repeats", "2", "--eval-batches", "1",
                 "--precision", "fp32", "--results-dir", str(tmp_path)]) == 0
    [written] = tmp_path.glob("*-cpu.json")
    report = json.loads(written.read_text())
    [row] = report["throughput"]
    assert row["routings"] == 1 and report["repeats"] == 2 and report["eval_batches"] == 1
    for path in ("fast", "plain"):
        low, high = row[f"train_{path}_range"]
        assert low <= row[f"train_{path}"] <= high
    for key in ("train_fast", "train_plain", "eval_fast", "eval_plain"):
        assert row[key] > 0, key
    assert row["train_ratio"] == pytest.approx(row["train_fast"] / row["train_plain"])
    assert row["epoch_seconds_fast"] == pytest.approx(60_000 / row["train_fast"] + 10_000 / row["eval_fast"])
    assert report["machine"]["device"] == "cpu" and report["machine"]["cpus"] >= 1
    assert 0 < report["inference"]["decode_ms"] < report["inference"]["forward_ms"]
    # the CPU, its bf16 support and each path's precision are named in the JSON and the printed table
    machine = report["machine"]
    assert machine["cpu"] and isinstance(machine["cpu_flags"]["native_bf16"], bool)
    assert report["precision"]["fast"]["precision"] == "fp32" and report["precision"]["plain"] == "fp32"
    printed = capsys.readouterr().out
    assert f"{row['train_fast']:.1f}" in printed and str(written) in printed
    assert machine["cpu"] in printed and "fast path: fp32 (--precision fp32 asked for)" in printed


@pytest.mark.parametrize("arguments, message", [
    (["--device", "tpu"], "--device tpu: unknown device (use auto, cpu, cuda or mps)"),
    (["--repeats", "0"], "--repeats 0: must be at least 1"),
    (["--steps", "-3"], "--steps -3: must be at least 1"),
    (["--routings", "3,11"], "--routings 11: must be between 1 and 10"),
    (["--batch-size", "0"], "--batch-size 0: must be at least 1"),
    (["--eval-batches", "0"], "--eval-batches 0: must be at least 1"),
    (["--precision", "fp16"], "--precision fp16: unknown precision (use auto, bf16 or fp32)"),
])
def test_bench_refuses_bad_values_in_one_line_before_measuring(tmp_path, capsys, arguments, message):
    assert main([*arguments, "--results-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"error: {message}"
    assert not any(tmp_path.iterdir())


def test_bench_refuses_an_empty_results_dir_rather_than_writing_here(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # an empty path would otherwise have meant this folder
    assert main(["--results-dir", ""]) == 2
    assert capsys.readouterr().err.startswith("error: --results-dir '': ")
    assert not any(tmp_path.iterdir())


def run_gpu_script(name, out, **variables):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    return subprocess.run(["bash", f"scripts/{name}.sh"], cwd=root, capture_output=True, text=True, timeout=300,
                          env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "OUT": str(out),
                               "PYTHON": sys.executable, **variables})


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("name", ["gpu_check", "gpu_table1"])
@pytest.mark.slow
def test_gpu_scripts_say_in_one_line_that_there_is_no_gpu(tmp_path, name):
    """scripts/gpu_*.sh are what a GPU session runs in one call; without CUDA each must stop at once
    with one line, measure nothing and write nothing but its (empty) output folder."""
    out = tmp_path / "out"
    result = run_gpu_script(name, out)
    assert result.returncode == 3, result.stderr
    assert result.stderr.strip().startswith(f"{name}: no CUDA GPU on this machine (torch ")
    assert result.stderr.strip().endswith("nothing measured") and result.stderr.count("\n") == 1
    assert out.is_dir() and not any(out.iterdir())


@pytest.mark.slow
def test_gpu_table1_rehearsed_on_the_cpu_brings_back_histories_and_the_best_3_routing_weights(tmp_path):
    """The Table 1 script, rehearsed on the CPU as it will run on a lent GPU: the sweep's runs come back
    as run.json + history.csv + log each, the best 3-routing run with reconstruction with int8 weights,
    and the resume states stay behind."""
    import torch

    from capsviz.store import load_weights, read_run_json

    out = tmp_path / "out"
    result = run_gpu_script("gpu_table1", out, ALLOW_CPU="1", BUDGET="200", EPOCHS="1", SEEDS="0,1",
                            ONLY="capsnet-r3-recon", EXTRA="--subset 100 --test-subset 50", OMP_NUM_THREADS="1")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "gpu_table1: done; 2 run histories" in result.stdout
    for seed in (0, 1):
        run = out / "table1" / f"capsnet-r3-recon-seed{seed}"
        assert sorted(path.name for path in run.iterdir()) == ["history.csv", "routing.csv", "run.json", "train.log"]
        assert read_run_json(run)["config"]["seed"] == seed
    best = out / "best-r3"
    assert torch.load(best / "model.pt", weights_only=True)["compact"] == "int8-per-channel"
    assert load_weights(best / "model.pt").config.routings == 3
    assert not (out / "runs").exists() and not list(out.rglob("state.pt")), "resume states are not carried back"
