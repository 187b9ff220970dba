"""capsviz.analysis and capsviz.keras: what the dashboard computes, tested without Streamlit."""
import io

import numpy as np
import pandas as pd
import pytest
import torch
from dashboard_fixtures import KERAS_HISTORIES, synthetic_rows

from capsviz import CapsNet, RunError
from capsviz.analysis import (PICK_CLASS, PICK_INDEX, PICK_RANDOM, TARGET_LABEL, TARGET_PREDICTION, DigitCodes,
                              best_test_error, combined_csv, combined_history, curve_summary_table, decode_poses,
                              decode_with_offsets, ema, encode_digits, misclassified, paper_error, paper_table1,
                              perturbation_grid, perturbation_offsets, pick_digit, read_run_record,
                              reconstruct_digits, reconstruction_table, run_summary_row, run_summary_table,
                              wall_time_unit)
from capsviz.keras import KerasCsvError, read_keras_history
from capsviz.runs import HISTORY_COLUMNS


@pytest.fixture(scope="module")
def model() -> CapsNet:
    torch.manual_seed(0)
    return CapsNet(routings=1).eval()


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """Eight made-up 'digits' (blobs at different places) with labels, as uint8 like MNIST."""
    generator = np.random.default_rng(0)
    images = np.zeros((8, 28, 28), np.uint8)
    for k in range(8):
        top, left = generator.integers(2, 14, size=2)
        images[k, top:top + 12, left:left + 8] = generator.integers(120, 256, size=(12, 8))
    return images, np.array([3, 1, 4, 1, 5, 9, 2, 6])


# ---- EMA smoothing ------------------------------------------------------------------------------

def test_ema_of_a_constant_series_is_constant():
    np.testing.assert_allclose(ema(np.full(20, 0.37), weight=0.9), np.full(20, 0.37))


def test_ema_weight_zero_is_the_identity():
    values = np.array([3.0, -1.0, 7.5, 0.25, 2.0])
    np.testing.assert_array_equal(ema(values, weight=0.0), values)


def test_ema_is_debiased_and_lags_a_step():
    smoothed = ema([0.0, 0.0, 1.0, 1.0], weight=0.5)
    # debiased EMA: sum w^k x_{t-k} / sum w^k; at t=2: (1 + 0.5*0 + 0.25*0) / 1.75
    np.testing.assert_allclose(smoothed, [0.0, 0.0, 1 / 1.75, (1 + 0.5) / 1.875])
    assert smoothed[0] == 0.0, "the first value is kept, not pulled towards zero"


def test_ema_keeps_gaps_as_gaps():
    smoothed = ema([1.0, np.nan, 3.0], weight=0.5)
    assert np.isnan(smoothed[1]) and smoothed[0] == 1.0 and 1.0 < smoothed[2] < 3.0


def test_ema_rejects_weight_one():
    with pytest.raises(AssertionError, match="EMA weight"):
        ema([1.0, 2.0], weight=1.0)


# ---- Figure 4: perturbations ---------------------------------------------------------------------

def test_perturbation_offsets_are_the_papers():
    offsets = perturbation_offsets()
    assert len(offsets) == 11
    np.testing.assert_allclose(offsets, np.arange(-5, 6) * 0.05, atol=1e-12)
    assert offsets[5] == 0.0, "the middle offset must be exactly 0"
    assert len(perturbation_offsets(limit=1.0, step=0.2)) == 11
    with pytest.raises(AssertionError, match="multiple of step"):
        perturbation_offsets(limit=0.25, step=0.15)


def test_perturbation_grid_shape_and_middle_column_is_the_unperturbed_reconstruction(model, digits):
    images, labels = digits
    codes = encode_digits(model, images[:1])
    label = int(labels[0])
    grid = perturbation_grid(model, codes.poses[0], label, offsets=perturbation_offsets())
    assert grid.shape == (16, 11, 28, 28)
    unperturbed = decode_poses(model, codes.poses[:1], label)[0]
    for dimension in range(16):
        np.testing.assert_allclose(grid[dimension, 5], unperturbed, atol=1e-6)
    assert not np.allclose(grid[0, 0], grid[0, 10]), "offsets of -0.25 and +0.25 should draw different images"
    assert not np.allclose(grid[0, 0], grid[1, 0]), "different dimensions should draw different images"


def test_perturbation_grid_adds_the_offset_to_one_dimension(model, digits):
    images, labels = digits
    poses = encode_digits(model, images[:1]).poses[0]
    label = int(labels[0])
    grid = perturbation_grid(model, poses, label, offsets=perturbation_offsets())
    edited = torch.from_numpy(poses.copy())[None]
    edited[0, label, 6] += 0.15  # offset column 8 is +0.15
    with torch.no_grad():
        expected = model.decode(edited, label)[0, 0].numpy()
    np.testing.assert_allclose(grid[6, 8], expected, atol=1e-6)


def test_decode_with_zero_offsets_matches_the_models_own_masked_reconstruction(model, digits):
    images, labels = digits
    inputs = torch.from_numpy(images[:2].copy()).float().div(255).unsqueeze(1)
    with torch.no_grad():
        output = model(inputs, torch.from_numpy(labels[:2]))
    codes = encode_digits(model, images[:2])
    for k in range(2):
        mine = decode_with_offsets(model, codes.poses[k], int(labels[k]), np.zeros(16))
        np.testing.assert_allclose(mine, output.reconstruction[k, 0].numpy(), atol=1e-5)


def test_decode_with_offsets_changes_the_image(model, digits):
    images, labels = digits
    poses = encode_digits(model, images[:1]).poses[0]
    base = decode_with_offsets(model, poses, int(labels[0]), np.zeros(16))
    moved = decode_with_offsets(model, poses, int(labels[0]), np.eye(16)[3] * 0.25)
    assert np.abs(moved - base).max() > 1e-4
    with pytest.raises(AssertionError, match="one offset per dimension"):
        decode_with_offsets(model, poses, 0, np.zeros(15))


# ---- Figure 3: reconstructions -------------------------------------------------------------------

def test_reconstruct_digits_from_label_and_prediction(model, digits):
    images, labels = digits
    codes = encode_digits(model, images)
    assert codes.lengths.shape == (8, 10) and codes.poses.shape == (8, 10, 16)
    indices = np.arange(100, 108)
    from_label = reconstruct_digits(model, images, labels, codes, target=TARGET_LABEL, indices=indices)
    from_prediction = reconstruct_digits(model, images, labels, codes, target=TARGET_PREDICTION, indices=indices)
    table = from_label.table
    assert list(table.columns) == ["index", "label", "prediction", "target", "correct", "length", "error"]
    assert table["index"].tolist() == indices.tolist()
    assert (table["target"] == table["label"]).all() and (from_prediction.table["target"] == codes.predictions).all()
    assert (table["correct"] == (table["label"] == table["prediction"])).all()
    expected_error = ((from_label.reconstructions - images / 255.0) ** 2).sum(axis=(1, 2))
    np.testing.assert_allclose(table["error"], expected_error, rtol=1e-5)
    np.testing.assert_allclose(from_label.reconstructions[0], decode_poses(model, codes.poses[:1], int(labels[0]))[0],
                               atol=1e-6)
    both = reconstruction_table([from_label, from_prediction])
    assert list(both.columns) == ["index", "label", "prediction", "correct", "length", "target (label)", "error (label)",
                                  "target (prediction)", "error (prediction)"]
    np.testing.assert_array_equal(both["error (prediction)"], from_prediction.table["error"])
    wrong = ~table["correct"].to_numpy()
    assert wrong.any(), "an untrained model should get some of these wrong"
    # decoding another capsule draws another image (an untrained decoder draws nearly the same grey)
    assert np.abs(from_label.reconstructions[wrong] - from_prediction.reconstructions[wrong]).max() > 0
    np.testing.assert_array_equal(from_label.reconstructions[~wrong], from_prediction.reconstructions[~wrong])


def test_misclassified_positions():
    lengths = np.eye(10)[[3, 1, 4, 2]] * 0.9  # predictions 3, 1, 4, 2
    codes = DigitCodes(lengths, np.zeros((4, 10, 16)))
    np.testing.assert_array_equal(misclassified(np.array([3, 1, 5, 2, 7, 7]), codes), [2])
    np.testing.assert_array_equal(codes.take([2, 0]).predictions, [4, 3])


# ---- picking digits ------------------------------------------------------------------------------

def test_pick_digit_by_index_class_and_random():
    labels = np.array([7, 2, 1, 0, 4, 1, 4, 9, 5, 9])
    assert pick_digit(labels, mode=PICK_INDEX, index=6) == 6
    assert pick_digit(labels, mode=PICK_CLASS, digit_class=4) == 4
    assert pick_digit(labels, mode=PICK_CLASS, digit_class=4, occurrence=1) == 6
    assert pick_digit(labels, mode=PICK_CLASS, digit_class=4, occurrence=2) == 4, "occurrences wrap around"
    drawn = {pick_digit(labels, mode=PICK_RANDOM, seed=seed) for seed in range(40)}
    assert drawn <= set(range(10)) and len(drawn) > 3
    assert pick_digit(labels, mode=PICK_RANDOM, seed=5) == pick_digit(labels, mode=PICK_RANDOM, seed=5)
    with pytest.raises(AssertionError, match="index must be in"):
        pick_digit(labels, mode=PICK_INDEX, index=10)
    with pytest.raises(AssertionError, match="no digit of class 3"):
        pick_digit(labels, mode=PICK_CLASS, digit_class=3)
    with pytest.raises(ValueError, match="unknown pick mode"):
        pick_digit(labels, mode="nearest")


# ---- runs: tables and CSV ------------------------------------------------------------------------

def test_best_test_error_is_at_the_argmin_epoch():
    history = pd.DataFrame({"epoch": [1, 2, 3, 4, 5], "test_error": [1.2, 0.5, 0.4, 0.4, 0.6]})
    assert best_test_error(history) == (3, 0.4), "the first of equal minima"
    assert best_test_error(history.iloc[:0]) is None


def test_run_summary_row_of_a_real_run(runs_root):
    record = read_run_record(runs_root / "tiny-r1", root=runs_root)
    row = run_summary_row(record)
    assert row["Run"] == "tiny-r1" and row["Routings"] == 1 and row["Reconstruction"] == "on"
    assert row["Epochs"] == "1 / 1" and row["Status"] == "finished" and row["Best epoch"] == 1
    assert row["Final test error (%)"] == pytest.approx(record.history["test_error"].iloc[-1])
    assert row["Parameters"] == 8_215_568
    assert row["Paper (%)"] == 0.29, "routing 1 with reconstruction is Table 1's 0.29%"
    assert row["Weights"] is True and row["Seconds / epoch"] > 0


def test_run_summary_table_of_synthetic_runs(runs_root):
    records = [read_run_record(path, root=runs_root) for path in sorted(runs_root.iterdir())]
    table = run_summary_table(records)
    assert table["Run"].tolist() == ["r3-curves", "r3-live", "tiny-r1"]
    curves = table.set_index("Run").loc["r3-curves"]
    rows = synthetic_rows(6, routings=3)
    best = min(rows, key=lambda row: row["test_error"])
    assert curves["Best epoch"] == best["epoch"] and curves["Best test error (%)"] == pytest.approx(best["test_error"])
    assert curves["Epochs"] == "6 / 6" and not curves["Weights"] and curves["Paper (%)"] == 0.25
    assert table.set_index("Run").loc["r3-live", "Status"] == "running"
    summary = curve_summary_table(records)
    assert summary.set_index("Run").loc["r3-curves", "Epochs"] == 6


def test_read_run_record_raises_run_error_for_a_broken_run(tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "run.json").write_text("[]")
    with pytest.raises(RunError, match="run.json"):
        read_run_record(broken)


def test_combined_history_and_csv():
    first = pd.DataFrame(synthetic_rows(3, routings=1))
    second = pd.DataFrame(synthetic_rows(2, routings=3)).drop(columns=["lr"])
    combined = combined_history({"a": first, "b": second})
    assert list(combined.columns) == ["run", *HISTORY_COLUMNS]
    assert combined["run"].tolist() == ["a", "a", "a", "b", "b"]
    assert combined.loc[combined["run"] == "b", "lr"].isna().all()
    back = pd.read_csv(io.StringIO(combined_csv({"a": first, "b": second})))
    assert len(back) == 5
    np.testing.assert_allclose(back["test_error"], combined["test_error"])
    assert list(combined_history({}).columns) == ["run", *HISTORY_COLUMNS]


def test_paper_table1_and_lookup():
    table = paper_table1()
    assert len(table) == 5 and table["MNIST (%)"].iloc[-1] == "0.25 ± 0.005"
    assert paper_error(routings=3, reconstruction=True) == 0.25
    assert paper_error(routings=1, reconstruction=False) == 0.34
    assert paper_error(routings=2, reconstruction=True) is None


def test_wall_time_unit():
    assert wall_time_unit(90) == (1.0, "s")
    assert wall_time_unit(3600) == (60.0, "min")
    assert wall_time_unit(5 * 3600) == (3600.0, "h")


# ---- Keras CSVLogger import ----------------------------------------------------------------------

@pytest.mark.parametrize("name, final_error, best_error", [("CSV_Num2.csv", 0.65, 0.58), ("CSV_Num3.csv", 0.54, 0.50)])
def test_keras_import_of_the_seed_histories(name, final_error, best_error):
    path = KERAS_HISTORIES / name
    keras = pd.read_csv(path)
    history = read_keras_history(path)
    assert len(history) == 50 and list(history.columns) == HISTORY_COLUMNS
    assert history["epoch"].tolist() == list(range(1, 51)), "Keras counts epochs from 0, we count from 1"
    np.testing.assert_allclose(history["test_error"], 100 * (1 - keras["val_encoder_acc"]))
    assert history["test_error"].iloc[-1] == pytest.approx(final_error)
    assert history["test_error"].min() == pytest.approx(best_error)
    np.testing.assert_allclose(history["train_acc"], keras["encoder_acc"])
    np.testing.assert_allclose(history["train_margin_loss"], keras["encoder_loss"])
    np.testing.assert_allclose(history["test_loss"], keras["val_loss"])
    np.testing.assert_allclose(history["train_recon_loss"], keras["decoder_loss"])
    assert history["wall_seconds"].isna().all(), "CSVLogger records no timings"


def test_keras_import_reads_the_rounded_scientific_format():
    history = read_keras_history(KERAS_HISTORIES / "CSV_Num2.csv")
    assert history["train_recon_loss"].iloc[0] == pytest.approx(7.10e-05)  # written as 7.10E-05
    assert history["train_acc"].iloc[0] == pytest.approx(0.7477)


def test_keras_import_from_bytes_with_seconds_per_epoch():
    data = (KERAS_HISTORIES / "CSV_Num3.csv").read_bytes()
    history = read_keras_history(data, name="upload.csv", seconds_per_epoch=448)
    assert history["wall_seconds"].iloc[-1] == pytest.approx(50 * 448)


def test_keras_import_of_a_plain_model_history():
    text = "epoch,accuracy,loss,val_accuracy,val_loss,lr\n0,0.9,0.3,0.95,0.2,0.001\n1,0.97,0.1,0.98,0.07,0.0009\n"
    history = read_keras_history(text.encode(), name="plain.csv")
    np.testing.assert_allclose(history["test_error"], [5.0, 2.0])
    np.testing.assert_allclose(history["lr"], [0.001, 0.0009])
    assert history["train_margin_loss"].isna().all()


@pytest.mark.parametrize("content, problem", [
    (b"", "empty"),
    (b"epoch,encoder_acc,val_encoder_acc\n", "no epochs"),
    (b"step,loss\n1,0.2\n", "no 'epoch' column"),
    (b"epoch,loss,val_loss\n0,0.2,0.3\n", "no validation accuracy column"),
    (b"epoch,encoder_acc,val_encoder_acc\n0,0.9,0.95\n1,0.93,oops\n", "row 3, column val_encoder_acc: 'oops' is not a number"),
    (b"epoch,encoder_acc,val_encoder_acc\n0,0.9,0.95\n1,0.93\n", "row 3: val_encoder_acc is empty"),
    (b"epoch,encoder_acc,val_encoder_acc\n1,0.9,0.95\n0,0.93,0.96\n", "not strictly increasing"),
    (b"\xff\xfe\x00binary", "not a readable CSV"),
])
def test_keras_import_rejects_bad_files_with_one_line_naming_the_file(content, problem):
    with pytest.raises(KerasCsvError) as caught:
        read_keras_history(content, name="my-history.csv")
    message = str(caught.value)
    assert message.startswith("my-history.csv: ") and problem in message and "\n" not in message
