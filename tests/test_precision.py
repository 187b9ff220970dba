"""--precision: the decision from the CPU's answer (injected here), the trial that confirms it, the CLI,
and what run.json records. The arithmetic itself is real: tests/test_fast_path_agreement.py runs both precisions."""
import json

import pytest
import torch

from capsviz.machine import CpuFeatures, cpu_features, describe_machine
from capsviz.model.fast.precision import TRIAL_MIN_IMAGES, choose_precision
from trainer.run import main

from conftest import run_trainer

CPU = torch.device("cpu")
NO_BF16 = CpuFeatures(model="Intel Xeon (Cascade Lake)", avx512=True, avx512_bf16=False, amx_bf16=False,
                      arm_bf16=False)
AVX512_BF16 = CpuFeatures(model="AMD EPYC", avx512=True, avx512_bf16=True, amx_bf16=False, arm_bf16=False)
AMX = CpuFeatures(model="Intel Xeon (Sapphire Rapids)", avx512=True, avx512_bf16=True, amx_bf16=True,
                  arm_bf16=False)


def never_called():
    raise AssertionError("no trial is needed where the CPU has no native bf16")


def test_auto_picks_fp32_without_native_bf16_and_skips_the_trial():
    choice = choose_precision("auto", CPU, features=NO_BF16, trial=never_called)
    assert choice.precision == "fp32" and choice.requested == "auto"
    assert "Cascade Lake" in choice.reason and "no native bf16" in choice.reason and choice.trial_ms is None


@pytest.mark.parametrize("features, what", [(AVX512_BF16, "AVX-512 BF16"), (AMX, "AMX")])
def test_auto_picks_bf16_where_native_and_the_trial_agrees(features, what):
    choice = choose_precision("auto", CPU, features=features, trial=lambda: {"bf16": 40.0, "fp32": 90.0})
    assert choice.precision == "bf16"
    assert what in choice.reason and choice.trial_ms == {"bf16": 40.0, "fp32": 90.0}


def test_auto_trusts_the_trial_over_the_flags():
    """A CPU may report bf16 and still run it slowly (a VM, an emulating library): the trial decides."""
    choice = choose_precision("auto", CPU, features=AVX512_BF16, trial=lambda: {"bf16": 120.0, "fp32": 80.0})
    assert choice.precision == "fp32" and "but a trial step took 120 ms in bf16" in choice.reason
    tie = choose_precision("auto", CPU, features=AVX512_BF16, trial=lambda: {"bf16": 105.0, "fp32": 100.0})
    assert tie.precision == "bf16", "within the margin the CPU's answer stands, so runs on one machine agree"


def test_a_run_too_short_for_the_trial_to_pay_takes_the_cpus_answer():
    """The trial costs a dozen steps: a run of fewer training images in all skips it and says so."""
    short = choose_precision("auto", CPU, features=AMX, trial=never_called, training_images=TRIAL_MIN_IMAGES - 1)
    assert short.precision == "bf16" and short.trial_ms is None
    assert "AMX" in short.reason and f"a run of {TRIAL_MIN_IMAGES - 1:,} training images is too short" in short.reason
    assert choose_precision("auto", CPU, features=NO_BF16, trial=never_called, training_images=10).precision == "fp32"
    trial = lambda: {"bf16": 120.0, "fp32": 80.0}  # noqa: E731
    for long_enough in (TRIAL_MIN_IMAGES, None):  # None: a budget, whose length is not known yet
        choice = choose_precision("auto", CPU, features=AMX, trial=trial, training_images=long_enough)
        assert choice.precision == "fp32" and choice.trial_ms == {"bf16": 120.0, "fp32": 80.0}


def test_the_trainer_counts_every_epoch_when_it_decides_whether_the_trial_pays(monkeypatch, tmp_path):
    """A run's training images in all are its subset times its epochs; a budget run always has the trial."""
    from capsviz.model.fast import precision
    from trainer import loop

    monkeypatch.setattr(precision, "cpu_features", lambda: AMX)
    trials = []
    monkeypatch.setattr(loop, "trial_timings", lambda *args: trials.append(1) or {"bf16": 40.0, "fp32": 90.0})
    monkeypatch.setattr(loop, "_precision_choices", {})
    images, labels = torch.zeros(1000, 1, 28, 28, dtype=torch.uint8), torch.zeros(1000, dtype=torch.long)

    def trainer(epochs: int, budget=None):
        config = loop.TrainConfig(routings=1, epochs=epochs)
        return loop.Trainer(config, tmp_path / f"run-{epochs}-{bool(budget)}", CPU, (images, labels),
                            (images[:10], labels[:10]), log=lambda message: None, budget=budget)

    enough = -(-TRIAL_MIN_IMAGES // len(images))  # epochs of these 1,000 images that reach the threshold
    assert "no trial" in trainer(epochs=enough - 1).precision.reason and not trials
    assert trainer(epochs=enough).precision.trial_ms and len(trials) == 1
    loop._precision_choices.clear()
    assert trainer(epochs=1, budget={"seconds": 60, "deadline": 0}).precision.trial_ms and len(trials) == 2


def test_a_resume_on_the_same_cpu_keeps_its_precision_without_a_trial(monkeypatch, tmp_path):
    """--resume with auto where the run last trained: state.pt's precision, no trial (its answer would be
    thrown away); a state.pt from another CPU, or none, has the trial."""
    from capsviz import store
    from capsviz.model.fast import precision
    from trainer import loop

    monkeypatch.setattr(precision, "cpu_features", lambda: AMX)
    trials = []
    monkeypatch.setattr(loop, "trial_timings", lambda *args: trials.append(1) or {"bf16": 40.0, "fp32": 90.0})
    monkeypatch.setattr(loop, "_precision_choices", {})
    images, labels = torch.zeros(1000, 1, 28, 28, dtype=torch.uint8), torch.zeros(1000, dtype=torch.long)
    here = describe_machine(CPU)
    lines = []

    def resumed(run_dir, *, resume=True):
        config = loop.TrainConfig(routings=1, epochs=TRIAL_MIN_IMAGES)  # long enough for the trial to pay
        return loop.Trainer(config, run_dir, CPU, (images, labels), (images[:10], labels[:10]), log=lines.append,
                            resume=resume)

    same = tmp_path / "same"
    store.write_state(same, {"epoch": 1, "environment": {**here, "precision": "fp32", "precision_reason": "a trial"}})
    kept = resumed(same).precision
    assert kept.precision == "fp32" and "kept from the run's last start" in kept.reason and not trials
    assert lines == [f"precision fp32 (auto): {kept.reason}"], "said once, before training"
    other = tmp_path / "other"
    store.write_state(other, {"epoch": 1, "environment": {**here, "cpu": "another CPU", "precision": "fp32"}})
    assert resumed(other).precision.precision == "bf16" and len(trials) == 1, "another CPU decides afresh"
    loop._precision_choices.clear()
    assert resumed(tmp_path / "none").precision.precision == "bf16" and len(trials) == 2, "no state.pt: the trial"


@pytest.mark.parametrize("requested", ["bf16", "fp32"])
def test_forced_precision_is_kept_whatever_the_cpu(requested):
    for features in (NO_BF16, AVX512_BF16):
        choice = choose_precision(requested, CPU, features=features, trial=never_called)
        assert choice.precision == requested and "asked for" in choice.reason


def test_plain_path_is_fp32():
    assert choose_precision("auto", CPU, fast=False, features=AVX512_BF16, trial=never_called).precision == "fp32"


def test_this_machine_is_described_with_its_bf16_support():
    info = describe_machine(CPU)
    assert info["cpu"] == cpu_features().model and info["cpu"]
    assert set(info["cpu_flags"]) >= {"avx512_bf16", "amx_bf16", "native_bf16"}
    assert info["cpu_flags"]["native_bf16"] == cpu_features().native_bf16
    json.dumps(info)  # plain JSON types


@pytest.mark.parametrize("argv, message", [
    (["--precision", "half"], "--precision half: unknown precision (use auto, bf16 or fp32)"),
    (["--precision", "bf16", "--no-fast"], "--precision bf16: the plain path (--no-fast) is fp32 only"),
])
def test_cli_refuses_bad_precision(tmp_path, capsys, argv, message):
    out = tmp_path / "run"
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"error: {message}"
    assert not out.exists()


@pytest.mark.slow
def test_forced_precisions_train_and_a_resume_decides_again(tmp_path):
    """A run forced to fp32 trains and records it; resumed with --precision bf16 (as on a machine where auto
    would choose it) it continues, its history stays whole, and the resume records the new choice."""
    out = tmp_path / "run"
    quick = ["--routings", "1", "--subset", "200", "--test-subset", "100", "--out", str(out)]
    first = run_trainer(*quick, "--epochs", "1", "--precision", "fp32")
    assert first.returncode == 0, first.stderr
    assert "fast path in fp32" in first.stdout
    info = json.loads((out / "run.json").read_text())
    assert info["environment"]["precision"] == "fp32" and "asked for" in info["environment"]["precision_reason"]
    assert info["config"]["precision"] == "fp32"
    second = run_trainer(*quick, "--epochs", "2", "--precision", "bf16", "--resume")
    assert second.returncode == 0, second.stderr
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "finished" and info["epochs_done"] == 2
    assert info["environment"]["precision"] == "fp32", "where training started"
    assert [resume["precision"] for resume in info["resumes"]] == ["bf16"]
    history = (out / "history.csv").read_text().splitlines()
    assert len(history) == 3 and all("nan" not in line for line in history[1:])


def test_a_resume_on_the_same_cpu_keeps_the_runs_precision_and_another_cpu_decides_afresh():
    from capsviz.model.fast.precision import kept_on_resume

    here = describe_machine(CPU)
    started = {**here, "precision": "fp32", "precision_reason": "a trial step took 120 ms in bf16"}
    kept = kept_on_resume(started, here, "auto")
    assert kept.precision == "fp32" and "kept from the run's last start" in kept.reason
    elsewhere = {**started, "cpu": "Intel Xeon (Cascade Lake)"}
    assert kept_on_resume(elsewhere, here, "auto") is None, "another CPU decides for itself"
    assert kept_on_resume(started, here, "bf16") is None, "a forced precision is obeyed"
    capped = {**started, "kernel_variables": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_VNNI", "OMP_NUM_THREADS": "1"}}
    assert kept_on_resume(capped, here, "auto") is None, "the same CPU with its instructions capped is another kind"
    threads_only = {**started, "kernel_variables": {"OMP_NUM_THREADS": "1"}}
    assert kept_on_resume(threads_only, here, "auto") is not None, "a thread count does not change the kind of CPU"
