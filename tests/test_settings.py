"""The training settings are declared once (capsviz.training.settings) and TrainConfig, the trainer's flags, run.json's
checks and the resume rules are derived from them; bad values are refused in every mode, `python -O` too."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

from capsviz import store
from capsviz.training import settings
from trainer.loop import RESUMABLE_CHANGES, TrainConfig
from trainer.run import parser

ROOT = Path(__file__).resolve().parent.parent


def test_train_config_has_one_field_per_setting_with_its_default():
    assert [f.name for f in fields(TrainConfig)] == [setting.name for setting in settings.SETTINGS]
    config = TrainConfig(dataset="mnist-40")
    assert config.to_dict() == {**settings.default_values(), "dataset": "mnist-40", "shift": 6}
    assert TrainConfig().model_options is not TrainConfig().model_options, "each config its own dict"


def test_the_flags_the_resume_rules_and_the_legacy_values_come_from_the_schema():
    actions = {action.dest: action for action in parser()._actions}
    for setting in settings.SETTINGS:
        if setting.flag is None:
            assert setting.name not in actions
            continue
        assert setting.flag in actions[setting.name].option_strings and actions[setting.name].default is None
    assert set(RESUMABLE_CHANGES) == {"epochs", "device", "fast", "precision", "data_dir", "lr"}
    assert store.LEGACY_SETTINGS == {"schedule": "exp-epoch", "lr_floor": 1e-5, "warmup": 0.0, "recipe": "paper",
                                     "variant": "none"}
    assert store.config_problems is settings.config_problems and set(store.CONFIG_RULES) == set(settings.SETTINGS_BY_NAME)
    args = parser().parse_args(["--no-recon", "--inner-routing-grad", "--lr", "0.01", "--subset", "5"])
    assert settings.given_settings(args) == {"recon": False, "inner_routing_grad": True, "lr": 0.01, "subset": 5}


def test_bad_values_are_refused_under_python_dash_o(tmp_path):
    """Asserts vanish under -O: the checks of user input and of files must not be asserts."""
    (tmp_path / "run.json").write_text(json.dumps({"status": "finished", "config": {"routings": 0}}))
    code = f"""
import sys, torch
from capsviz import store
from capsviz.model.registry import build_model
from capsviz.data.datasets import get_dataset
from trainer.run import main
print("exit", main(["--routings", "0", "--out", {str(tmp_path / "new")!r}]))  # no assert here: -O drops them
try:
    store.read_run_json({str(tmp_path)!r})
except store.RunError as error:
    print("run.json:", error)
model = build_model("capsnet", get_dataset("mnist"), routings=1)
store.write_weights({str(tmp_path)!r}, model)
weights = torch.load({str(tmp_path / "model.pt")!r}, weights_only=True)
weights["model_config"]["routings"] = 0
torch.save(weights, {str(tmp_path / "model.pt")!r})
try:
    store.load_weights({str(tmp_path / "model.pt")!r})
except store.RunError as error:
    print("model.pt:", error)
"""
    result = subprocess.run([sys.executable, "-O", "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "exit 2" in result.stdout and "--routings 0: must be between 1 and 10" in result.stderr
    assert "run.json: config.routings 0: must be between 1 and 10" in result.stdout
    assert "model.pt: weights do not fit the model (routings must be in 1..10, got 0)" in result.stdout
