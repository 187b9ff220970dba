"""evaluation.json: a finished model's tests beyond its training set's (capsviz.robustness), written by
trainer.robustness: {"format", "evaluated_at", "environment", "weights", "training", "sets": {name: record}}.
Optional: runs without it load as before (Run.evaluation is None)."""
from __future__ import annotations

from pathlib import Path

from .checks import _finite, show_value
from .files import read_json, write_json
from .format import EVALUATION, FORMAT_VERSION, RunError


def write_evaluation(run_dir: Path, evaluation: dict) -> None:
    assert isinstance(evaluation.get("sets"), dict), "an evaluation holds its sets' records under 'sets'"
    write_json(Path(run_dir) / EVALUATION, evaluation)


def read_evaluation(run_dir: Path, *, root: Path | None = None) -> dict | None:
    """evaluation.json, or None where the run has none. Raises RunError naming the file and the problem."""
    path = Path(run_dir) / EVALUATION
    evaluation = read_json(path, root=root, missing_ok=True)
    if evaluation is None:
        return None
    if not isinstance(evaluation, dict) or not isinstance(evaluation.get("sets"), dict):
        raise RunError(f"{path}: no 'sets' object; not a CapsViz evaluation")
    if evaluation.get("format") != FORMAT_VERSION:
        raise RunError(f"{path}: format {show_value(evaluation.get('format'))}: must be {FORMAT_VERSION}")
    for name, record in evaluation["sets"].items():
        accuracy = record.get("accuracy") if isinstance(record, dict) else None
        if not (_finite(accuracy) and 0 <= accuracy <= 100):
            raise RunError(f"{path}: sets.{name}.accuracy {show_value(accuracy)}: must be a percentage")
    return evaluation
