"""Evaluation memory: larger inputs are evaluated in smaller batches, so that a 40x40 CapsNet's
routing tensors stay the size of a 28x28 one's (the fast path's allocator keeps its peak)."""
import torch

from capsviz.data.datasets import get_dataset
from capsviz.model.registry import build_model
from trainer import loop
from trainer.loop import EVAL_BATCH_SIZE, TrainConfig, eval_batch_size, validate

TINY = {"conv_channels": 8, "primary_types": 2, "decoder_hidden": [8, 8]}


def primary_positions(image_size: int) -> int:
    return ((image_size - 8 - 8) // 2) ** 2  # 9x9 conv, then 9x9 stride 2: the PrimaryCaps grid


def test_evaluation_batch_keeps_the_routing_tensor_near_28x28s():
    assert eval_batch_size(28) == EVAL_BATCH_SIZE
    reference = EVAL_BATCH_SIZE * primary_positions(28)
    for size in (36, 40):
        assert eval_batch_size(size) * primary_positions(size) <= 1.05 * reference, size


def test_validate_uses_it(monkeypatch):
    sizes = []
    real_batches = loop.batches

    def recording(count, batch_size, order=None):
        sizes.append(batch_size)
        return real_batches(count, batch_size, order)

    monkeypatch.setattr(loop, "batches", recording)
    dataset = get_dataset("mnist-40")
    model = build_model("capsnet", dataset, routings=1, overrides=TINY)
    config = TrainConfig(dataset="mnist-40", routings=1, fast=False)
    images = torch.zeros(130, 1, 40, 40)
    labels = torch.zeros(130, dtype=torch.long)
    stats = validate(model, config.task(), images, labels, config, torch.device("cpu"))
    assert sizes == [eval_batch_size(40)] and stats.images == 130


def test_a_training_steps_routing_tensors_are_freed_without_waiting_for_the_garbage_collector():
    # A reference cycle (output -> grad_fn -> ctx -> output) kept every batch's routing tensors alive
    # until Python's cycle collector happened to run: trainers grew by gigabytes.
    import gc
    import weakref

    from capsviz.model.fast.routing import routed_with_fused_backward
    weight = torch.randn(32, 8, 160, requires_grad=True)
    poses = torch.randn(4, 32, 8, requires_grad=True)
    collecting = gc.isenabled()
    gc.disable()
    try:
        v = routed_with_fused_backward(poses, weight, out_capsules=10, iterations=3, detach_inner=True)
        v.sum().backward()
        coupling = weakref.ref(v.grad_fn.steps[0].coupling)  # (4, 10, 32), kept for the backward
        del v
        assert coupling() is None, "freed as soon as the output is dropped"
    finally:
        if collecting:
            gc.enable()
