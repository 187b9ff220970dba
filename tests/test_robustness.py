"""The affine-robustness experiment: the pooled CNN, accuracy by transform bins, the one command on tiny
subsets (train, resume, evaluate, real-affNIST reader), the explorer, and the Robustness page."""
import json
import shutil

import numpy as np
import pytest
import torch
from test_affine import write_affnist

from capsviz.analysis.robustness import accuracy_by_bins, pack_correct, paired_comparison, unpack_correct
from capsviz.analysis.robustness_view import evaluation_provenance, explore, explorer_parameters, place_and_transform
from capsviz.data.affine import identity_parameters
from capsviz.model.baseline import BaselineCNN
from capsviz.model.capsnet import CapsNet
from capsviz.store import default_runs_root, load_run, read_evaluation
from trainer import robustness

from dashboard_fixtures import open_app


def test_pooled_baseline_is_the_experiments_cnn():
    """The CNN of the shipped experiment: its saved state_dict (keys and shapes) loads into this model."""
    model = BaselineCNN(input_size=40, **robustness.POOLED_BASELINE)
    assert model.parameter_count() == 13_412_938
    shapes = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    assert shapes == {
        "convs.0.weight": (256, 1, 5, 5), "convs.0.bias": (256,), "convs.1.weight": (256, 256, 5, 5),
        "convs.1.bias": (256,), "convs.2.weight": (256, 256, 5, 5), "convs.2.bias": (256,),
        "fc1.weight": (1536, 6400), "fc1.bias": (1536,), "fc2.weight": (192, 1536), "fc2.bias": (192,),
        "out.weight": (10, 192), "out.bias": (10,)}
    assert model(torch.zeros(2, 1, 40, 40)).logits.shape == (2, 10)


def test_accuracy_by_bins_counts_each_bin():
    record = accuracy_by_bins(np.array([1, 0, 1, 1, 0]), np.array([-20.0, -3.0, 2.0, 19.9, 20.0]), [-20.0, 0.0, 20.0])
    assert record["count"] == [2, 3] and record["accuracy"] == [50.0, pytest.approx(66.667)]
    assert accuracy_by_bins(np.array([1]), np.array([0.5]), [0.0, 1.0, 2.0])["accuracy"] == [100.0, None]


def test_paired_comparison_counts_discordant_images_and_tests_them_exactly():
    a = np.array([1, 1, 1, 1, 0, 0, 1, 0], bool)
    b = np.array([1, 0, 0, 0, 0, 1, 1, 0], bool)
    paired = paired_comparison(a, b)
    assert (paired["both"], paired["only_a"], paired["only_b"], paired["neither"]) == (2, 3, 1, 2)
    assert paired["p_value"] == pytest.approx(2 * (1 + 4) / 16)  # 1 of 4 discordant: P(X <= 1), both tails
    assert paired_comparison(a, a)["p_value"] == 1.0
    assert paired_comparison(np.ones(20, bool), np.zeros(20, bool))["p_value"] == pytest.approx(2 / 2 ** 20)
    correct = np.random.default_rng(0).random(10_001) > 0.3
    assert np.array_equal(unpack_correct(pack_correct(correct), len(correct)), correct)


@pytest.mark.parametrize("size", [28, 40])
def test_explorer_transform_by_zero_is_the_identity(size):
    digit = (np.random.default_rng(0).random((28, 28)) * 255).astype(np.uint8)
    placed = place_and_transform(digit, size, explorer_parameters())
    border = (size - 28) // 2
    assert np.array_equal(placed[border:border + 28, border:border + 28], digit / np.float32(255.0))
    assert placed.sum() == pytest.approx(digit.sum() / 255.0, rel=1e-6), "nothing else on the canvas"
    assert not np.array_equal(place_and_transform(digit, size, explorer_parameters(rotation=10.0)), placed)


def test_explorer_asks_each_kind_of_model():
    torch.manual_seed(0)
    digit = np.zeros((28, 28), np.uint8)
    digit[6:22, 13:15] = 255
    capsnet = CapsNet(input_size=28, conv_channels=16, primary_types=4, decoder_hidden=(32, 64)).eval()
    cnn = BaselineCNN(input_size=40, conv_channels=(8, 8, 8), hidden=(16, 16), pool=True).eval()
    seen = explore(capsnet, digit, identity_parameters(1))
    assert seen.image.shape == seen.reconstruction.shape == (28, 28) and seen.kind == "capsule lengths"
    assert seen.prediction == int(seen.scores.argmax())
    seen = explore(cnn, digit, explorer_parameters(rotation=30.0, translate_x=3.0))
    assert seen.image.shape == (40, 40) and seen.reconstruction is None and seen.scores.sum() == pytest.approx(1.0)


@pytest.mark.slow
def test_the_command_trains_to_the_limit_resumes_and_evaluates(tmp_path, capsys):
    affnist_dir = tmp_path / "affnist"
    affnist_dir.mkdir()
    images = np.zeros((4, 40, 40), np.uint8)
    images[:, 10:30, 18:22] = 255
    write_affnist(affnist_dir / "test.mat", images, np.array([1, 1, 7, 1]))
    out = tmp_path / "experiment"
    argv = ["--out", str(out), "--subset", "10", "--test-subset", "5", "--batch-size", "10", "--max-epochs", "1",
            "--digits", "3", "--versions", "2", "--precision", "fp32", "--affnist-dir", str(affnist_dir)]
    assert robustness.main(argv) == 0
    for name, model in (("capsnet-r3", "capsnet"), ("baseline-pool", "baseline")):
        run = load_run(out / name)
        assert run.model_name == model and run.dataset_name == "mnist-40" and run.info["epochs_done"] == 1
        evaluation = read_evaluation(out / name)
        assert run.evaluation == evaluation
        sets = evaluation["sets"]
        assert sets["affnist-like"]["images"] == 6 and sets["affnist-like"]["versions"] == 2
        assert "NOT the real affNIST" in sets["affnist-like"]["description"]
        assert sets["affnist-like"]["recipe"]["rotation_degrees"] == 20.0
        assert sum(sets["affnist-like"]["by_transform"]["rotation"]["count"]) == 6
        right = unpack_correct(sets["affnist-like"]["correct"], 6)
        assert 100 * right.mean() == pytest.approx(sets["affnist-like"]["accuracy"], abs=0.001)
        assert sets["affnist"]["images"] == 4 and sets["expanded-mnist"]["images"] == 5
        assert evaluation["training"] == {**evaluation["training"], "epochs": 1, "target_accuracy": 99.2,
                                          "reached_target": False}
    assert load_run(out / "baseline-pool").model.config.pool
    # again with a higher limit: each run resumes from its epoch, trains one more, evaluates again
    capsys.readouterr()
    assert robustness.main([*argv[:9], "2", *argv[10:-2]]) == 0
    assert [load_run(out / name).info["epochs_done"] for name in robustness.RUNS] == [2, 2]
    assert "affnist" not in read_evaluation(out / "capsnet-r3")["sets"], "the real set only when given"
    # bad input: one line, nothing lost
    assert robustness.main(["--out", str(out), "--evaluate-only", "--affnist-dir", str(tmp_path / "nowhere")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "no such affNIST folder" in error
    assert [load_run(out / name).info["epochs_done"] for name in robustness.RUNS] == [2, 2]


# ---- what ships, and the page on it --------------------------------------------------------------------

SHIPPED_CAPSNET, SHIPPED_CNN = "mnist40-capsnet-r3", "mnist40-baseline-pool"


def shipped(name):
    path = default_runs_root() / name
    if not (path / "evaluation.json").exists():
        pytest.fail(f"{path} is not shipped with its evaluation")
    return load_run(path)


def test_shipped_experiment_runs_and_their_evaluations():
    capsnet, cnn = shipped(SHIPPED_CAPSNET), shipped(SHIPPED_CNN)
    assert capsnet.has_weights and not cnn.has_weights, "the CapsNet ships int8 weights, the CNN its records only"
    for run in (capsnet, cnn):
        sets = run.evaluation["sets"]
        assert run.dataset_name == "mnist-40" and sets["affnist-like"]["images"] >= 10_000
        assert sets["expanded-mnist"]["accuracy"] == pytest.approx(100 - run.info["final_test_error"], abs=0.03)
        right = unpack_correct(sets["affnist-like"]["correct"], sets["affnist-like"]["images"])
        assert 100 * right.mean() == pytest.approx(sets["affnist-like"]["accuracy"], abs=0.001)
    assert cnn.info["parameters"] == 13_412_938 and cnn.config["model_options"] == robustness.POOLED_BASELINE


def test_evaluation_caption_names_where_the_evaluation_and_the_training_ran():
    run = shipped(SHIPPED_CAPSNET)
    caption = evaluation_provenance(run)
    evaluated, trained = run.evaluation["environment"], run.info["environment"]
    assert f"evaluated on {evaluated['cpu']}" in caption and evaluated["git_commit"][:10] in caption
    assert f"{run.evaluation['training']['epochs']} epochs trained at {trained['git_commit'][:10]}" in caption
    assert caption.startswith(f"{run.name}: ") and run.evaluation["evaluated_at"] in caption


@pytest.mark.slow
def test_shipped_capsnet_predicts_its_recorded_affnist_like_digits():
    """The first recorded predictions, made again: the generator regenerates the same images from the
    seed, and the shipped int8 weights classify them as they did when evaluated."""
    from capsviz import load_mnist
    from capsviz.analysis.robustness import predict
    from capsviz.data.affine import AffineRecipe, affnist_like

    run = shipped(SHIPPED_CAPSNET)
    record = run.evaluation["sets"]["affnist-like"]
    recorded = record["first_predictions"]
    digits, labels = load_mnist("test")
    count = len(recorded) // record["versions"]
    regenerated = affnist_like(digits[:count], labels[:count], versions=record["versions"], seed=record["seed"],
                               recipe=AffineRecipe(**record["recipe"]))
    predictions = predict(run.model, regenerated.images, batch_size=50).argmax(1)
    assert (predictions != np.array(recorded)).sum() <= 1, "at most one digit flips between the fast and plain paths"


def test_robustness_page_compares_and_the_explorer_follows_its_sliders(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    for name in ("mnist-r1", SHIPPED_CAPSNET, SHIPPED_CNN):
        shutil.copytree(default_runs_root() / name, root / name)
    app = open_app(root, monkeypatch, "pages/robustness.py")
    assert not app.exception and not app.error
    table = app.dataframe[0].value.set_index("Source")
    assert table.loc["paper, CapsNet", "affNIST (%)"] == 79 and table.loc["paper, CNN", "affNIST (%)"] == 66
    evaluation = json.loads((root / SHIPPED_CAPSNET / "evaluation.json").read_text())
    assert table.loc[SHIPPED_CAPSNET, "affNIST-like (%)"] == evaluation["sets"]["affnist-like"]["accuracy"]
    paired = app.dataframe[1].value.iloc[0]  # the two shipped runs, image by image
    assert {paired["A"], paired["B"]} == {SHIPPED_CAPSNET, SHIPPED_CNN} and paired["Images"] == 10_000
    assert paired["Both right"] + paired["Only A right"] + paired["Only B right"] + paired["Both wrong"] == 10_000
    assert app.multiselect(key="affine_models").value == [SHIPPED_CAPSNET], "evaluated runs with weights first"
    app.multiselect(key="affine_models").select("mnist-r1").run()  # a 28x28 run beside the 40x40 one
    scores = {name: app.get_by_key(f"affine_scores_{name}").proto.spec for name in ("mnist-r1", SHIPPED_CAPSNET)}
    assert "mnist-r1: predicts 7 (correct)" in scores["mnist-r1"], "test digit 0 is a 7"
    app.slider(key="affine_rotation").set_value(90.0).run()
    assert not app.exception
    turned = {name: app.get_by_key(f"affine_scores_{name}").proto.spec for name in scores}
    assert all(turned[name] != scores[name] for name in scores), "the prediction panels follow the rotation"
    app.button(key="affine_reset").click().run()
    assert {name: app.get_by_key(f"affine_scores_{name}").proto.spec for name in scores} == scores
