"""evaluation.json: a finished model's tests beyond its training set's (capsviz.analysis.robustness), written by
trainer.robustness: {"format", "evaluated_at", "environment", "weights", "training", "sets": {name: record}}.
Optional: runs without it load as before (Run.evaluation is None).

Checked whole on read (evaluation_problem): every field the Robustness page uses has its type, its
range and its length, so that a damaged or forged file is one RunError naming the file and the field,
never a crash on the page."""
from __future__ import annotations

import base64
import binascii
from pathlib import Path

from .checks import _finite, _integer, _optional, show_value
from .files import read_json, write_json
from .format import EVALUATION, FORMAT_VERSION, RunError

# More images than any test set here (the real affNIST's 32 versions are 320,000); and the most that
# evaluation.json's size limit can hold one bit each of.
MAX_IMAGES = 100_000_000
MAX_EPOCHS = 1_000_000


def _count(limit: int):
    return lambda value: _integer(value) and 0 <= value <= limit


def _percentage(value) -> bool:
    return _finite(value) and 0 <= value <= 100


def _dict(value) -> bool:
    return isinstance(value, dict)


def _string(value) -> bool:
    return isinstance(value, str)


# field: (what it must be, its test), for the fields present; "sets" and each set's accuracy are required
EVALUATION_RULES = {
    "evaluated_at": ("must be a string", _string),
    "environment": ("must be an object", _dict),
    "weights": ("must be an object", _dict),
    "training": ("must be an object", _dict),
}
TRAINING_RULES = {
    "dataset": ("must be a string", _string),
    "model": ("must be a string", _string),
    "epochs": ("must be a count of epochs", _optional(_count(MAX_EPOCHS))),
    "final_test_error": ("must be a percentage or null", _optional(_percentage)),
    "target_accuracy": ("must be a percentage or null", _optional(_percentage)),
    "reached_target": ("must be true or false", lambda v: isinstance(v, bool)),
    "note": ("must be a string", _string),
}
SET_RULES = {
    "name": ("must be a string", _string),
    "description": ("must be a string", _string),
    "accuracy": ("must be a percentage", _percentage),
    "images": (f"must be a count of images up to {MAX_IMAGES:,}", _count(MAX_IMAGES)),
    "recipe": ("must be an object", _dict),
    "seed": ("must be an integer", _integer),
    "digits": ("must be a count of digits", _count(MAX_IMAGES)),
    "versions": ("must be a count of versions", _count(MAX_IMAGES)),
    "correct": ("must be a base64 string", _string),
    "by_transform": ("must be an object of transforms", _dict),
    "first_predictions": ("must be a list of classes", lambda v: isinstance(v, list) and all(_count(10_000)(x) for x in v)),
}


def _rule_problem(record: dict, rules: dict, where: str) -> str | None:
    for name, (rule, ok) in rules.items():
        if name in record and not ok(record[name]):
            return f"{where}{name} {show_value(record[name])}: {rule}"
    return None


def _bins_problem(bins, where: str) -> str | None:
    """One transform's accuracy by bins: edges (n + 1 increasing numbers), count and accuracy (n each)."""
    if not isinstance(bins, dict):
        return f"{where} {show_value(bins)}: must be an object"
    edges, count, accuracy = bins.get("edges"), bins.get("count"), bins.get("accuracy")
    if not (isinstance(edges, list) and len(edges) >= 2 and all(_finite(edge) for edge in edges)
            and all(low < high for low, high in zip(edges, edges[1:]))):
        return f"{where}.edges {show_value(edges)}: must be 2 or more increasing numbers"
    bins_count = len(edges) - 1
    if not (isinstance(count, list) and len(count) == bins_count and all(_count(MAX_IMAGES)(n) for n in count)):
        return f"{where}.count {show_value(count)}: must be {bins_count} counts of images, one per bin"
    if not (isinstance(accuracy, list) and len(accuracy) == bins_count and all(_optional(_percentage)(a) for a in accuracy)):
        return f"{where}.accuracy {show_value(accuracy)}: must be {bins_count} percentages or nulls, one per bin"
    if "label" in bins and not isinstance(bins["label"], str):
        return f"{where}.label {show_value(bins['label'])}: must be a string"
    return None


def _correct_problem(record: dict, where: str) -> str | None:
    """The per-image correctness: base64 of exactly one bit per image (pack_correct)."""
    if "images" not in record:
        return f"{where}correct: recorded without 'images'"
    try:
        packed = base64.b64decode(record["correct"], validate=True)
    except (binascii.Error, ValueError):
        return f"{where}correct: not base64"
    expected = (record["images"] + 7) // 8
    if len(packed) != expected:
        return f"{where}correct: {len(packed):,} bytes for {record['images']:,} images (needs {expected:,})"
    return None


def evaluation_problem(evaluation) -> str | None:
    """The first problem of an evaluation.json's content, as "field value: what it must be", or None."""
    if not isinstance(evaluation, dict) or not isinstance(evaluation.get("sets"), dict):
        return "no 'sets' object; not a CapsViz evaluation"
    if evaluation.get("format") != FORMAT_VERSION or not _integer(evaluation.get("format")):
        return f"format {show_value(evaluation.get('format'))}: must be {FORMAT_VERSION}"
    problem = _rule_problem(evaluation, EVALUATION_RULES, "")
    if problem or (problem := _rule_problem(evaluation.get("training", {}), TRAINING_RULES, "training.")):
        return problem
    for name, record in evaluation["sets"].items():
        where = f"sets.{name}."
        if not isinstance(record, dict):
            return f"sets.{name} {show_value(record)}: must be an object"
        if "accuracy" not in record:
            return f"{where}accuracy: missing"
        if problem := _rule_problem(record, SET_RULES, where):
            return problem
        if "correct" in record and (problem := _correct_problem(record, where)):
            return problem
        for transform, bins in record.get("by_transform", {}).items():
            if problem := _bins_problem(bins, f"{where}by_transform.{transform}"):
                return problem
    return None


def write_evaluation(run_dir: Path, evaluation: dict) -> None:
    assert isinstance(evaluation.get("sets"), dict), "an evaluation holds its sets' records under 'sets'"
    write_json(Path(run_dir) / EVALUATION, evaluation)


def read_evaluation(run_dir: Path, *, root: Path | None = None) -> dict | None:
    """evaluation.json, or None where the run has none. Raises RunError naming the file and the problem."""
    path = Path(run_dir) / EVALUATION
    evaluation = read_json(path, root=root, missing_ok=True)
    if evaluation is None:
        return None
    problem = evaluation_problem(evaluation)
    if problem:
        raise RunError(f"{path}: {problem}")
    return evaluation
