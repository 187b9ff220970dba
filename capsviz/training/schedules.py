"""Learning-rate schedules, and the time budget that plans how many epochs a run gets.

The paper says only "an exponentially decaying learning rate". Three schedules (`--schedule`):

    exp-epoch   lr x lr_decay after every epoch (x0.9: common ports; x0.99: about the authors' code). It never
                ends: a run stopped after E epochs stops at lr x decay^(E-1). Runs before schedules were
                chosen used it, so their histories keep their meaning.
    exp         per step, exponentially from lr to lr_floor at the planned last step
    cosine      per step, half a cosine from lr to lr_floor at the planned last step

`exp` and `cosine` take an optional linear warm-up (`--warmup` epochs, from lr / 100). Their plan is a list
of segments (shape, first and last step, lr at each end), kept in state.pt: lengthening a run
(`--resume --epochs N`) or a budget's re-plan replaces what is left of it with one segment from the step and
learning rate where the run stands to the floor at the new last step, so the learning rate never jumps.
"""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass

EXP_EPOCH, EXP, COSINE = "exp-epoch", "exp", "cosine"
SCHEDULES = (EXP_EPOCH, EXP, COSINE)
WARMUP_START = 0.01  # a warm-up starts at lr x this
MAX_WARMUP_EPOCHS = 10


@dataclass(frozen=True)
class Segment:
    """The learning rate from step `start` (lr_start) to step `end` (lr_end), of `shape` linear, exp or cosine."""

    shape: str
    start: int
    end: int
    lr_start: float
    lr_end: float

    def lr(self, step: int) -> float:
        if self.end <= self.start or step >= self.end:
            return self.lr_end
        progress = max(0.0, (step - self.start) / (self.end - self.start))
        if self.shape == "linear":
            return self.lr_start + (self.lr_end - self.lr_start) * progress
        if self.shape == EXP:
            return self.lr_start * (self.lr_end / self.lr_start) ** progress
        if self.shape != COSINE:  # a segment read back from state.pt
            raise ValueError(f"unknown schedule segment shape {self.shape!r}")
        return self.lr_end + (self.lr_start - self.lr_end) * 0.5 * (1.0 + math.cos(math.pi * progress))


class StepSchedule:
    """A per-step schedule over an optimizer's param groups: step() after each optimizer step. Its state
    (the step count and the segments) goes into state.pt."""

    def __init__(self, optimizer, *, shape: str, lr: float, floor: float, total_steps: int, warmup_steps: int = 0):
        assert shape in (EXP, COSINE), f"a per-step schedule is exp or cosine, not {shape!r}"
        assert 0 < floor <= lr, f"the floor {floor} must be in (0, lr={lr}]"
        self.optimizer, self.shape, self.floor = optimizer, shape, floor
        self.steps = 0
        warmup_steps = min(warmup_steps, max(total_steps - 1, 0))
        self.segments = ([Segment("linear", 0, warmup_steps, lr * WARMUP_START, lr)] if warmup_steps else [])
        self.segments.append(Segment(shape, warmup_steps, total_steps, lr, floor))
        self._apply()

    @property
    def total_steps(self) -> int:
        return self.segments[-1].end

    def lr_at(self, step: int) -> float:
        for segment in self.segments:
            if step < segment.end:
                return segment.lr(step)
        return self.segments[-1].lr_end

    def current_lr(self) -> float:
        return self.lr_at(self.steps)

    def _apply(self) -> None:
        lr = self.current_lr()
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def step(self) -> None:
        self.steps += 1
        self._apply()

    @property
    def ended(self) -> bool:
        return self.steps >= self.total_steps

    def replan(self, total_steps: int, *, start_lr: float | None = None) -> None:
        """End at `total_steps` instead: what is left of the plan becomes one segment of the same shape from
        here (this step, this learning rate, or `start_lr`) to the floor, after a warm-up still under way."""
        total_steps = max(total_steps, self.steps)
        if total_steps == self.total_steps and start_lr is None:
            return
        kept = [segment for segment in self.segments if segment.end <= self.steps or segment.shape == "linear"]
        start = max([self.steps, *(segment.end for segment in kept)])
        lr = self.lr_at(start) if start_lr is None else start_lr
        self.segments = [*kept, Segment(self.shape, start, max(total_steps, start), lr, self.floor)]
        self._apply()

    def extend(self, total_steps: int, *, lr: float) -> str:
        """Lengthen the run to `total_steps` (--resume --epochs N). A plan still under way goes on from the
        learning rate where it stands; one that has ended at its floor restarts from the rate a plan of the
        new length from `lr` has at this step (a warm restart: from the floor it could not learn further).
        Returns what was done, for the log."""
        if not self.ended or total_steps <= self.steps:
            self.replan(total_steps)
            return f"from {self.current_lr():.3g} here to {self.floor:g} at step {self.total_steps}"
        warmup_end = max([0, *(segment.end for segment in self.segments if segment.shape == "linear")])
        restart = Segment(self.shape, warmup_end, total_steps, lr, self.floor).lr(self.steps)
        self.replan(total_steps, start_lr=restart)
        return (f"the plan had ended at its floor: restarting at {restart:.3g}, where a plan of the new length "
                f"stands at this step, to {self.floor:g} at step {self.total_steps}")

    def rescale(self, factor: float) -> None:
        """Every learning rate of the plan times `factor` (--resume --lr: a new base rate), the floor included."""
        self.floor *= factor
        self.segments = [Segment(s.shape, s.start, s.end, s.lr_start * factor, s.lr_end * factor) for s in self.segments]
        self._apply()

    def state_dict(self) -> dict:
        return {"kind": "steps", "shape": self.shape, "floor": self.floor, "steps": self.steps,
                "segments": [asdict(segment) for segment in self.segments]}

    def load_state_dict(self, state: dict) -> None:
        self.shape, self.floor, self.steps = state["shape"], float(state["floor"]), int(state["steps"])
        self.segments = [Segment(**segment) for segment in state["segments"]]
        self._apply()


# ---- the time budget -------------------------------------------------------------------------------

_DURATION = re.compile(r"\s*(?:(\d+(?:\.\d+)?)\s*h(?:ours?)?)?\s*(?:(\d+(?:\.\d+)?)\s*m(?:in(?:utes?)?)?)?"
                       r"\s*(?:(\d+(?:\.\d+)?)\s*s(?:ec(?:onds?)?)?)?\s*")
MAX_BUDGET_SECONDS = 366 * 24 * 3600


def parse_duration(text: str) -> float:
    """Seconds in "90m", "1h", "1h30m", "2.5h", "45min", "600s" or a bare number of minutes ("90").
    Raises ValueError with a one-line message naming what it expected."""
    text = str(text).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        seconds = float(text) * 60
    else:
        match = _DURATION.fullmatch(text)
        if not text or not match or not any(match.groups()):
            raise ValueError(f"{text!r} is not a duration (e.g. 90m, 1h, 1h30m, 2.5h)")
        hours, minutes, secs = (float(part or 0) for part in match.groups())
        seconds = hours * 3600 + minutes * 60 + secs
    if not 0 < seconds <= MAX_BUDGET_SECONDS:
        raise ValueError(f"{text!r}: a budget must be more than 0 and at most a year")
    return seconds


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, minutes = divmod(seconds // 60, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds % 60:02d}s"


def epochs_that_fit(*, done: int, seconds_left: float, seconds_per_epoch: float) -> int:
    """The total number of epochs when `done` are finished, `seconds_left` remain before the deadline and
    an epoch (training, evaluation and saving) takes `seconds_per_epoch`: at least `done`, and one more
    than done while none has been timed (seconds_per_epoch 0)."""
    if seconds_per_epoch <= 0:
        return done + 1
    return done + max(0, int(seconds_left // seconds_per_epoch))
