"""Learning-rate schedules that end at the planned last step, lengthening a run, and the time budget."""
import json
import math
import time

import pytest
import torch

from capsviz import store
from capsviz.training.schedules import COSINE, EXP, Segment, StepSchedule, epochs_that_fit, parse_duration
from trainer.loop import PROVISIONAL_EPOCHS, TrainConfig, Trainer, select, steps_per_epoch
from trainer.run import differences, main


def optimizer(lr=1e-3):
    return torch.optim.Adam([torch.nn.Parameter(torch.zeros(3))], lr=lr)


def lrs(schedule: StepSchedule, steps: int) -> list[float]:
    out = [schedule.current_lr()]
    for _ in range(steps):
        schedule.step()
        out.append(schedule.current_lr())
    return out


@pytest.mark.parametrize("shape", [EXP, COSINE])
def test_a_per_step_schedule_reaches_its_floor_at_the_last_step_and_falls_all_the_way(shape):
    opt = optimizer()
    schedule = StepSchedule(opt, shape=shape, lr=1e-3, floor=1e-5, total_steps=100)
    values = lrs(schedule, 120)
    assert values[0] == pytest.approx(1e-3)
    assert values[100] == pytest.approx(1e-5) and values[120] == pytest.approx(1e-5)  # stays at the floor
    assert all(b < a for a, b in zip(values[:100], values[1:101]))
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-5)  # the optimizer follows
    middle = values[50]
    assert middle == pytest.approx(1e-4 if shape == EXP else (1e-3 + 1e-5) / 2)  # geometric / arithmetic midpoint


def test_warm_up_rises_linearly_from_a_hundredth_then_decays():
    schedule = StepSchedule(optimizer(), shape=COSINE, lr=1e-3, floor=1e-5, total_steps=100, warmup_steps=10)
    values = lrs(schedule, 100)
    assert values[0] == pytest.approx(1e-5) and values[5] == pytest.approx(1e-5 + 0.5 * (1e-3 - 1e-5))
    assert values[10] == pytest.approx(1e-3) and values[100] == pytest.approx(1e-5)


def test_replanning_goes_on_from_the_learning_rate_where_it_stands():
    schedule = StepSchedule(optimizer(), shape=COSINE, lr=1e-3, floor=1e-5, total_steps=100)
    lrs(schedule, 40)
    before = schedule.current_lr()
    schedule.replan(200)  # lengthened
    assert schedule.current_lr() == pytest.approx(before) and schedule.total_steps == 200
    values = lrs(schedule, 160)
    assert values[-1] == pytest.approx(1e-5) and all(b <= a for a, b in zip(values, values[1:]))
    shorter = StepSchedule(optimizer(), shape=EXP, lr=1e-3, floor=1e-5, total_steps=100)
    lrs(shorter, 40)
    shorter.replan(50)
    assert lrs(shorter, 10)[-1] == pytest.approx(1e-5)


def test_lengthening_an_ended_plan_restarts_where_a_plan_of_the_new_length_stands():
    schedule = StepSchedule(optimizer(), shape=COSINE, lr=1e-3, floor=1e-5, total_steps=100)
    lrs(schedule, 100)
    assert schedule.ended
    how = schedule.extend(200, lr=1e-3)
    assert "restarting" in how
    assert schedule.current_lr() == pytest.approx(Segment(COSINE, 0, 200, 1e-3, 1e-5).lr(100))
    assert lrs(schedule, 100)[-1] == pytest.approx(1e-5)


def test_the_schedule_state_round_trips():
    schedule = StepSchedule(optimizer(), shape=EXP, lr=1e-3, floor=1e-6, total_steps=50, warmup_steps=5)
    lrs(schedule, 20)
    schedule.replan(80)
    copy = StepSchedule(optimizer(), shape=EXP, lr=1.0, floor=1e-3, total_steps=3)
    copy.load_state_dict(json.loads(json.dumps(schedule.state_dict())))  # plain data, as in state.pt
    assert lrs(copy, 60) == pytest.approx(lrs(schedule, 60))


@pytest.mark.parametrize("text, seconds", [("90m", 5400), ("1h", 3600), ("1h30m", 5400), ("2.5h", 9000),
                                           ("45min", 2700), ("600s", 600), ("90", 5400), ("1 h 5 m", 3900)])
def test_budgets_are_read_in_hours_minutes_and_seconds(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "0m", "-5m", "5x", "h", "100000h"])
def test_a_bad_budget_is_refused(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_epochs_that_fit():
    assert epochs_that_fit(done=0, seconds_left=1000, seconds_per_epoch=0) == 1  # untimed: one to measure
    assert epochs_that_fit(done=2, seconds_left=1000, seconds_per_epoch=300) == 5
    assert epochs_that_fit(done=4, seconds_left=-10, seconds_per_epoch=300) == 4  # past the deadline: stop here


@pytest.fixture(scope="module")
def mnist_arrays():
    from capsviz import load_mnist
    return (*load_mnist("train"), *load_mnist("test"))


def test_a_budget_plans_from_the_timed_epochs_and_re_plans_when_the_speed_drifts(tmp_path, mnist_arrays, monkeypatch):
    train_images, train_labels, test_images, test_labels = mnist_arrays
    config = TrainConfig(routings=1, subset=200, test_subset=100, batch_size=50, device="cpu", precision="fp32",
                         schedule=COSINE)
    clock = [1_000_000.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    trainer = Trainer(config, tmp_path / "run", torch.device("cpu"), select(train_images, train_labels, 200),
                      select(test_images, test_labels, 100), log=lambda message: None,
                      budget={"seconds": 1000, "deadline": clock[0] + 1000, "max_epochs": None})
    trainer.plan_budget()  # nothing timed: one epoch, its schedule held near lr
    assert config.epochs == 1 and trainer.schedule.total_steps == PROVISIONAL_EPOCHS * trainer.steps_per_epoch
    trainer.epoch_seconds, clock[0] = [100.0], clock[0] + 100
    trainer.history = [{}]
    trainer.plan_budget()  # 900 s left at 100 s an epoch: 9 more
    assert config.epochs == 10 and trainer.schedule.total_steps == 10 * trainer.steps_per_epoch
    trainer.epoch_seconds, clock[0] = [100.0, 300.0], clock[0] + 300
    trainer.history = [{}, {}]
    trainer.plan_budget()  # slower: 600 s left at 200 s (the mean of the last two) an epoch
    assert config.epochs == 5 and trainer.schedule.total_steps == 5 * trainer.steps_per_epoch
    trainer.budget["max_epochs"] = 4
    trainer.plan_budget()
    assert config.epochs == 4
    assert trainer.budget_record()["planned_epochs"] == 4


@pytest.mark.slow
def test_a_cosine_run_ends_at_its_floor_and_is_lengthened_by_resume(tmp_path, capsys):
    out = tmp_path / "run"
    common = ["--routings", "1", "--subset", "200", "--test-subset", "100", "--batch-size", "50", "--out", str(out)]
    assert main([*common, "--epochs", "2", "--schedule", "cosine", "--lr-floor", "2e-5"]) == 0
    state = store.read_state(out)
    steps = steps_per_epoch(200, 50)
    assert state["schedule"]["steps"] == 2 * steps
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(2e-5)
    info = store.read_run_json(out)
    assert info["config"]["schedule"] == "cosine" and info["config"]["lr_floor"] == 2e-5
    assert main(["--resume", "--epochs", "3", "--out", str(out)]) == 0
    assert "restarting" in capsys.readouterr().out
    info = store.read_run_json(out)
    assert info["epochs_done"] == 3 and info["resumes"][-1]["changes"]["epochs"] == [2, 3]
    assert store.read_state(out)["optimizer"]["param_groups"][0]["lr"] == pytest.approx(2e-5)


@pytest.mark.slow
def test_a_budget_run_records_its_plan_and_deadline(tmp_path):
    out = tmp_path / "run"
    assert main(["--routings", "1", "--subset", "100", "--test-subset", "50", "--batch-size", "50", "--budget", "1h",
                 "--epochs", "2", "--schedule", "exp", "--out", str(out)]) == 0
    info = store.read_run_json(out)
    assert info["epochs_done"] == 2 and info["budget"]["seconds"] == 3600 and info["budget"]["max_epochs"] == 2
    assert store.read_state(out)["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-5)  # at the floor
    assert main(["--resume", "--out", str(out)]) == 0  # the deadline and the cap kept: nothing more to do
    assert store.read_run_json(out)["epochs_done"] == 2


@pytest.mark.slow  # three trainer runs
def test_a_resume_given_epochs_drops_the_runs_deadline_even_when_they_equal_its_plan(tmp_path, capsys):
    """A budget run stopped short of its plan whose deadline has passed: `--resume --epochs N` is a fixed
    plan (--help), also when N is what the budget had planned (state.pt's config): the spent deadline plans
    nothing (it used to, and a run could finish at once, short of N)."""
    out = tmp_path / "run"
    base = ["--routings", "1", "--subset", "100", "--test-subset", "50", "--batch-size", "50", "--out", str(out)]
    assert main([*base, "--budget", "1h", "--epochs", "1"]) == 0
    state = store.read_state(out)
    state["config"]["epochs"] = 2  # the budget had planned 2 epochs, and the run stopped after 1 ...
    state["budget"]["deadline"] = time.time() - 60  # ... with its deadline now spent
    store.write_state(out, state)
    assert main(["--resume", "--out", str(out)]) == 0  # the deadline kept: nothing fits, done as it stands
    assert store.read_run_json(out)["epochs_done"] == 1
    capsys.readouterr()
    assert main(["--resume", "--epochs", "2", "--out", str(out)]) == 0
    assert store.read_run_json(out)["epochs_done"] == 2, capsys.readouterr().out
    assert "budget" not in capsys.readouterr().out, "no budget planned the resumed epochs"
    info = store.read_run_json(out)
    assert "budget" not in info, "run.json's budget is the plan in force"
    assert info["resumes"][-1]["changes"]["budget"][0]["seconds"] == 3600, "the dropped budget, kept in resumes[]"
    assert info["resumes"][-1]["changes"]["budget"][1] is None


@pytest.mark.parametrize("argv, message", [
    (["--schedule", "linear"], "--schedule linear: unknown schedule"),
    (["--schedule", "cosine", "--lr-floor", "0.01"], "--lr-floor 0.01: above the learning rate"),
    (["--lr-floor", "0"], "--lr-floor 0.0: must be a finite number above 0"),
    (["--warmup", "-1"], "--warmup -1.0: must be between 0 and 10 epochs"),
    (["--budget", "soon"], "--budget 'soon' is not a duration"),
])
def test_bad_schedule_values_are_refused_in_one_line(tmp_path, capsys, argv, message):
    out = tmp_path / "run"
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists()


def test_runs_from_before_schedules_resume_and_compare_as_the_per_epoch_decay_they_used():
    shipped = store.read_run_json(store.PROJECT_ROOT / "checkpoints" / "mnist-x0.9" / "mnist-r3")
    assert shipped["config"]["schedule"] == "exp-epoch" and shipped["config"]["recipe"] == "paper"
    legacy = {key: value for key, value in shipped["config"].items() if key not in store.LEGACY_SETTINGS}
    config = TrainConfig(**{**shipped["config"], "data_dir": None})
    assert not [line for line in differences(legacy, config) if "schedule" in line or "recipe" in line]
    assert math.isclose(config.lr_decay, shipped["config"]["lr_decay"])
