"""Time to accuracy from training histories (capsviz.time_to_accuracy)."""
import math

import pandas as pd
import pytest

from capsviz.time_to_accuracy import at_time, scaled_history, time_to_error

HISTORY = pd.DataFrame({"epoch": [1, 2, 3, 4, 5], "test_error": [0.9, 0.55, 0.48, 0.52, 0.39],
                        "wall_seconds": [100.0, 210.0, 330.0, 440.0, 560.0], "epoch_seconds": [90.0] * 5,
                        "images_per_second": [600.0] * 5})


def test_the_first_epoch_at_or_below_the_threshold_and_its_time():
    crossing = time_to_error(HISTORY, 0.5)
    assert (crossing.epoch, crossing.seconds, crossing.error) == (3, 330.0, 0.48)
    assert time_to_error(HISTORY, 0.4).epoch == 5
    assert time_to_error(HISTORY, 0.3) is None
    assert time_to_error(HISTORY, 0.55).epoch == 2  # "at or below"


def test_an_idle_machine_clock_counts_epochs_times_one_epoch_time():
    assert time_to_error(HISTORY, 0.5, seconds_per_epoch=200.0).seconds == 600.0
    with pytest.raises(ValueError):
        time_to_error(HISTORY, 0.5, seconds_per_epoch=0.0)


def test_the_error_reached_by_a_time_is_the_last_ended_epochs():
    assert at_time(HISTORY, 50.0) is None
    assert at_time(HISTORY, 330.0) == 0.48 and at_time(HISTORY, 439.0) == 0.48 and at_time(HISTORY, 1e9) == 0.39


def test_a_slower_recipe_is_the_same_epochs_at_a_scaled_time():
    slow = scaled_history(HISTORY, 3.85)
    assert slow["wall_seconds"].tolist() == pytest.approx([385.0, 808.5, 1270.5, 1694.0, 2156.0])
    assert slow["images_per_second"].iloc[0] == pytest.approx(600 / 3.85)
    assert time_to_error(slow, 0.5).seconds == pytest.approx(3.85 * 330.0)
    assert math.isclose(at_time(slow, 1000.0), 0.55)
    with pytest.raises(ValueError):
        scaled_history(HISTORY, float("nan"))
