"""capsviz.store.keras: Keras CSVLogger histories read into our history columns, or one line naming the file."""
import numpy as np
import pandas as pd
import pytest

from capsviz.store import HISTORY_COLUMNS
from capsviz.store.keras import KerasCsvError, read_keras_history

from dashboard_fixtures import KERAS_HISTORIES


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
