"""What the Robustness page shows, computed without Streamlit: the paper's comparison beside the runs'
evaluation.json records, accuracy against each transform, and the affine explorer (one digit under
chosen transforms, through each loaded model)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..data.affine import PARAMETERS, centre_on_canvas, identity_parameters, transform_images
from ..model.registry import find_model_entry
from ..store import Run
from .results import with_numbers
from .robustness import BINS, PAPER, class_scores, paired_comparison, unpack_correct

AFFNIST_LIKE, AFFNIST, EXPANDED = "affnist-like", "affnist", "expanded-mnist"


def display_name(model: str | None) -> str | None:
    """What people read for a registry name (capsviz.model.registry: "CapsNet", "CNN"); an unknown name as it is."""
    entry = find_model_entry(model)
    return entry.display_name if entry is not None else model


COMPARISON_NUMBERS = ("Epochs", "Expanded MNIST (%)", "affNIST-like (%)", "affNIST (%)", "Images (affNIST-like)")


def comparison_table(runs: list[Run]) -> pd.DataFrame:
    """One row per source: the paper's CapsNet and CNN (section 5.2), then each run with an evaluation.
    Accuracies in percent; NaN where a set was not tested (the columns stay numeric)."""
    rows = [{"Source": f"paper, {display_name(model)}", "Model": display_name(model), "Epochs": None,
             "Expanded MNIST (%)": values["expanded_mnist"], "affNIST-like (%)": None,
             "affNIST (%)": values["affnist"], "Images (affNIST-like)": None}
            for model, values in PAPER.items()]
    for run in runs:
        evaluation = run.evaluation or {}
        sets, training = evaluation.get("sets", {}), evaluation.get("training", {})
        expanded = sets.get(EXPANDED, {}).get("accuracy")
        if expanded is None and run.info.get("final_test_error") is not None:
            expanded = round(100.0 - run.info["final_test_error"], 3)
        rows.append({"Source": run.name, "Model": display_name(run.model_name),
                     "Epochs": training.get("epochs", run.info.get("epochs_done")),
                     "Expanded MNIST (%)": expanded,
                     "affNIST-like (%)": sets.get(AFFNIST_LIKE, {}).get("accuracy"),
                     "affNIST (%)": sets.get(AFFNIST, {}).get("accuracy"),
                     "Images (affNIST-like)": sets.get(AFFNIST_LIKE, {}).get("images")})
    return with_numbers(pd.DataFrame(rows), COMPARISON_NUMBERS)


def by_transform(runs: list[Run], transform: str) -> dict[str, pd.DataFrame]:
    """Each run's accuracy by bins of one transform (BINS): {run name: DataFrame of centre, low, high,
    accuracy, count}; runs whose evaluation lacks the affNIST-like set are left out."""
    assert transform in BINS, f"unknown transform {transform!r}: use {', '.join(BINS)}"
    out = {}
    for run in runs:
        record = ((run.evaluation or {}).get("sets", {}).get(AFFNIST_LIKE) or {}).get("by_transform", {}).get(transform)
        if not record:
            continue
        edges = np.asarray(record["edges"], dtype=float)
        out[run.name] = pd.DataFrame({"low": edges[:-1], "high": edges[1:], "centre": (edges[:-1] + edges[1:]) / 2,
                                      "accuracy": pd.to_numeric(pd.Series(record["accuracy"]), errors="coerce"),
                                      "count": record["count"]})
    return out


def paired_table(runs: list[Run]) -> pd.DataFrame:
    """Each pair of runs tested on the same affNIST-like images (same recipe, seed, digits and versions):
    the images only one of them got right, and the exact McNemar p-value of that split."""
    records = {}
    for run in runs:
        record = (run.evaluation or {}).get("sets", {}).get(AFFNIST_LIKE) or {}
        if record.get("correct"):
            key = (json_key(record.get("recipe")), record.get("seed"), record.get("digits"), record.get("versions"))
            records.setdefault(key, []).append((run.name, unpack_correct(record["correct"], record["images"])))
    rows = []
    for group in records.values():
        for i, (name_a, a) in enumerate(group):
            for name_b, b in group[i + 1:]:
                paired = paired_comparison(a, b)
                rows.append({"A": name_a, "B": name_b, "Images": paired["images"], "Both right": paired["both"],
                             "Only A right": paired["only_a"], "Only B right": paired["only_b"],
                             "Both wrong": paired["neither"], "McNemar p": paired["p_value"]})
    return with_numbers(pd.DataFrame(rows), ["Images", "Both right", "Only A right", "Only B right", "Both wrong",
                                             "McNemar p"])


def json_key(value) -> str:
    return repr(sorted(value.items())) if isinstance(value, dict) else repr(value)


def evaluation_provenance(run: Run) -> str:
    """Machine, epochs and code version behind a run's evaluation, for the captions."""
    evaluation = run.evaluation or {}
    environment = evaluation.get("environment", {})
    training = evaluation.get("training", {})
    commit = str(environment.get("git_commit") or "unknown")[:10]
    trained_commit = str(run.info.get("environment", {}).get("git_commit") or "unknown")[:10]
    return (f"{run.name}: {training.get('epochs', run.info.get('epochs_done'))} epochs trained at {trained_commit}; "
            f"evaluated on {environment.get('cpu') or environment.get('processor') or 'unknown CPU'} "
            f"({environment.get('device', 'cpu')}) at {commit}, {evaluation.get('evaluated_at', '?')}")


# ---- the affine explorer -----------------------------------------------------------------------------

def explorer_parameters(*, rotation: float = 0.0, shear: float = 0.0, scale_x: float = 1.0, scale_y: float = 1.0,
                        translate_x: float = 0.0, translate_y: float = 0.0) -> dict[str, torch.Tensor]:
    values = {"rotation": rotation, "shear": shear, "scale_x": scale_x, "scale_y": scale_y,
              "translate_x": translate_x, "translate_y": translate_y}
    return {name: torch.tensor([float(values[name])], dtype=torch.float64) for name in PARAMETERS}


def place_and_transform(digit_u8: np.ndarray, size: int, parameters: dict[str, torch.Tensor] | None = None) -> np.ndarray:
    """A (h, w) uint8 digit on a size x size black canvas (centred; cut to the centre when larger), under
    the transform: float (size, size) in [0, 1]. Pixel units, so one setting means the same at 28 and 40."""
    digit = torch.from_numpy(np.asarray(digit_u8, dtype=np.uint8).copy()).float().div(255.0)[None, None]
    if digit.shape[-1] > size:  # a 40x40 test digit for a 28x28 model: its centre
        border = (digit.shape[-1] - size) // 2
        digit = digit[..., border:border + size, border:border + size]
    placed = centre_on_canvas(digit, size)  # (1, 1, size, size)
    moved = transform_images(placed, parameters or identity_parameters(1))
    return moved[0, 0].clamp(0, 1).numpy()


@dataclass(frozen=True)
class ExplorerResult:
    """One model's view of the transformed digit."""

    image: np.ndarray  # (S, S) in [0, 1]: what the model sees
    scores: np.ndarray  # (classes,) capsule lengths or softmax probabilities
    prediction: int
    reconstruction: np.ndarray | None  # (S, S) in [0, 1], the CapsNet decoder's, from the predicted capsule
    kind: str  # "capsule lengths" or "softmax"


@torch.inference_mode()
def explore(model: nn.Module, digit_u8: np.ndarray, parameters: dict[str, torch.Tensor]) -> ExplorerResult:
    """The digit placed on the model's canvas, transformed, and classified (and reconstructed by a CapsNet)."""
    size = model.config.input_size
    image = place_and_transform(digit_u8, size, parameters)
    output = model(torch.from_numpy(image)[None, None].float())
    scores = class_scores(output)[0].float().numpy()
    prediction = int(scores.argmax())
    reconstruction = None
    if getattr(output, "reconstruction", None) is not None:  # decoded from the longest capsule (test time)
        reconstruction = output.reconstruction[0, 0].float().clamp(0, 1).numpy()
    kind = "capsule lengths" if hasattr(output, "lengths") else "softmax"
    return ExplorerResult(image=image, scores=scores, prediction=prediction, reconstruction=reconstruction, kind=kind)
