"""Compact int8 weights (capsviz.store.compact_weights): what ships in checkpoints/."""
import pytest
import torch

from capsviz.model.baseline import BaselineCNN
from capsviz.model.capsnet import CapsNet
from capsviz.store import RunError, compact_weights, load_weights, write_weights


def small_capsnet():
    torch.manual_seed(0)
    return CapsNet(input_size=28, conv_channels=16, primary_types=4, decoder_hidden=(32, 64)).eval()


def test_compact_weights_round_trip_within_half_a_step(tmp_path):
    model = small_capsnet()
    write_weights(tmp_path, model, dtype=torch.float32)
    before, after = compact_weights(tmp_path)
    assert after < before / 3, "int8 is about a quarter of float32"
    saved = torch.load(tmp_path / "model.pt", weights_only=True)
    assert saved["compact"] and saved["dtype"] == "int8"
    entry = saved["state_dict"]["digits.weight"]  # W_ij (n_in, 8, 10 * 16): a scale per (i, j)
    n_in = model.digits.weight.shape[0]
    assert entry["q"].dtype == torch.int8 and entry["q"].shape == (n_in, 8, 10, 16)
    assert entry["scale"].shape == (n_in, 1, 10, 1) and entry["scale"].dtype == torch.float32
    assert saved["state_dict"]["primary.conv.weight"]["scale"].shape == (32, 1, 1, 1), "a scale per output channel"
    assert saved["state_dict"]["conv1.weight"].dtype == torch.float32, "small tensors stay float32"
    assert saved["state_dict"]["conv1.bias"].dtype == torch.float32, "biases stay float32"
    loaded = load_weights(tmp_path / "model.pt")
    for name, original in model.state_dict().items():
        restored = loaded.state_dict()[name]
        stored = saved["state_dict"][name]
        if isinstance(stored, dict):  # rounding moves each weight by at most half its group's step
            step = stored["scale"].expand_as(stored["q"]).reshape(original.shape)
            assert ((restored - original).abs() <= step / 2 + 1e-7).all(), name
            assert not torch.equal(restored, original), f"{name} was quantised"
        else:
            assert torch.equal(restored, original), name
    images = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(model(images).predictions, loaded(images).predictions)
    assert compact_weights(tmp_path)[1] == after, "compacting twice changes nothing"


def test_compact_baseline_and_broken_file(tmp_path):
    torch.manual_seed(0)
    model = BaselineCNN(input_size=40, conv_channels=(8, 8, 8), hidden=(32, 16), pool=True).eval()
    write_weights(tmp_path, model)
    compact_weights(tmp_path)
    loaded = load_weights(tmp_path / "model.pt")
    assert (loaded.fc1.weight - model.fc1.weight).abs().max() <= model.fc1.weight.abs().max() / 127
    (tmp_path / "model.pt").write_bytes((tmp_path / "model.pt").read_bytes()[:500])
    with pytest.raises(RunError, match="model.pt: corrupt weights"):
        compact_weights(tmp_path)
    with pytest.raises(RunError, match="missing"):
        compact_weights(tmp_path / "nowhere")


def test_the_script_names_a_bad_run_and_still_compacts_the_others(tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "scripts" / "compact_weights.py"
    spec = importlib.util.spec_from_file_location("compact_weights_script", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    broken, good = tmp_path / "broken", tmp_path / "good"
    broken.mkdir()
    (broken / "model.pt").write_bytes(b"not a checkpoint")
    write_weights(good, small_capsnet(), dtype=torch.float32)
    assert module.main([str(broken), str(good)]) == 1
    output = capsys.readouterr()
    assert "broken/model.pt: corrupt weights" in output.err and len(output.err.strip().splitlines()) == 1
    assert torch.load(good / "model.pt", weights_only=True)["compact"], "the run after the bad one was compacted"
    assert (broken / "model.pt").read_bytes() == b"not a checkpoint", "the bad file is left as it was"
