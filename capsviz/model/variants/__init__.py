"""The bugs most reported in public CapsNet ports, each as a named variant the trainer can train
(`python -m trainer.run --variant softmax-over-inputs`), kept outside the reference model the way the fast
path is (capsviz.model.fast): capsviz.model.capsnet's CapsNet stays the paper's, and a variant changes a built model
in place by swapping a module's class for a subclass that computes the bug (same parameters, same
state_dict keys), or wraps the task whose loss it changes.

    softmax-over-inputs  routing.SoftmaxOverInputsDigitCaps   c_ij normalised over the inputs i, not the classes j
    recon-mean           losses.MeanReconstructionTask        0.0005 x the mean squared error, not the sum
    unmasked-decoder     decoder.UnmaskedDecoderCapsNet       the decoder reads all ten digit capsules
    shared-logits        routing.SharedLogitsDigitCaps        one b_ij for the batch, summed over its examples

A run records its variant in run.json's config (`variant`, "none" for the paper's model; runs older than
the setting lack it and mean none), and model.pt records the variant whose modules it needs (weights_entry),
so that capsviz.store.load_weights, and with it capsviz.load_run and the dashboard, rebuild them. What each
bug looks like in a port and what it costs: docs/bugs.md.
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from ..capsnet import CapsNet, DigitCaps
from ..tasks import CapsulePairTask, CapsuleTask, Task
from .decoder import UnmaskedDecoderCapsNet
from .losses import MeanReconstructionTask
from .routing import SharedLogitsDigitCaps, SoftmaxOverInputsDigitCaps, VariantDigitCaps

NONE = "none"  # the paper's model and losses


@dataclass(frozen=True)
class Variant:
    name: str
    changes: str  # what the variant computes differently
    paper: str  # the line of the paper it contradicts
    symptom: str  # what a user sees in their own port
    digit_caps: type[VariantDigitCaps] | None = None  # swapped in for the model's DigitCaps
    capsnet: type[CapsNet] | None = None  # swapped in for the model's own class
    task: Callable[[Task], Task] | None = None  # wraps the task that trains the model
    needs_reconstruction: bool = False  # a variant of the decoder or its loss changes nothing without them


VARIANTS: dict[str, Variant] = {variant.name: variant for variant in (
    Variant(NONE, "nothing: the paper's model and losses", "", ""),
    Variant(
        "softmax-over-inputs",
        "the routing softmax normalises b_ij over the 1152 primary capsules i instead of the 10 classes j",
        "Procedure 1 and eq. 3: c_ij = exp(b_ij) / sum_k exp(b_ik), the softmax over the capsules j of the layer "
        "above; \"the coupling coefficients between capsule i and all the capsules in the layer above sum to 1\"",
        "c_ij starts at 1/1152 instead of 1/10, so s_j is about 115 times smaller and the digit capsules start "
        "far shorter (a short capsule's length goes as |s_j|^2); a primary capsule's c_i no longer sums to 1 over "
        "the classes, so the coupling maps show each class picking primary capsules, not each capsule picking a "
        "class; training still works, a little worse (reported: the fix took one port from 99.51% to 99.67%)",
        digit_caps=SoftmaxOverInputsDigitCaps),
    Variant(
        "recon-mean",
        "the reconstruction term is 0.0005 x the mean squared pixel error instead of 0.0005 x the sum",
        "section 4.1: \"we minimize the sum of squared differences ... we scale down this reconstruction loss "
        "by 0.0005\"",
        "the reconstruction term is 784x too weak on MNIST: reconstructions stay blurry, the error curve barely "
        "moves, and the run is in effect one without reconstruction (Table 1: 0.35% against 0.25% with it)",
        task=MeanReconstructionTask, needs_reconstruction=True),
    Variant(
        "unmasked-decoder",
        "the decoder reads all ten digit capsules, none masked",
        "section 4.1: \"we mask out all but the activity vector of the correct digit capsule\"",
        "reconstructions look fine, but are the same whichever class is asked for; the wrong classes' "
        "capsules are pushed to carry the image, and the dimension sliders of one capsule move less",
        capsnet=UnmaskedDecoderCapsNet, needs_reconstruction=True),
    Variant(
        "shared-logits",
        "the routing logits b_ij are one tensor for the batch: each iteration adds the agreement summed over "
        "the batch's examples",
        "Procedure 1: b_ij <- 0 for every input, updated by that input's own agreement u_hat_{j|i} . v_j",
        "a digit's prediction depends on the other digits in its batch and on the batch size (the test error "
        "changes with the evaluation batch; a digit alone routes as in the paper); the summed agreements make "
        "b_ij about batch-size times larger, so the coupling tends to saturate, the same for every digit",
        digit_caps=SharedLogitsDigitCaps),
)}


class VariantError(ValueError):
    """A variant that is unknown or does not apply to a model or task; one line for the user."""


def get_variant(name: str) -> Variant:
    try:
        return VARIANTS[name]
    except KeyError:
        raise VariantError(f"--variant {name}: unknown variant (use {', '.join(VARIANTS)})") from None


def apply_to_model(name: str, model: nn.Module) -> nn.Module:
    """Make `model` (a reference CapsNet, fast path on or off) compute variant `name`, in place; returns
    it. The parameters stay the same objects under the same names, as with the fast path."""
    variant = get_variant(name)
    if variant.name == NONE:
        return model
    if not isinstance(model, CapsNet):
        raise VariantError(f"--variant {name}: a bug of CapsNet ports; {type(model).__name__} has no capsules")
    if variant.capsnet is not None:
        assert type(model) is CapsNet, f"{type(model).__name__}: a variant is applied once, to the reference"
        model.__class__ = variant.capsnet
    if variant.digit_caps is not None:
        for module in model.modules():
            if isinstance(module, DigitCaps):
                # the reference or its fast version; a variant already there would be silently replaced
                # (by name: importing capsviz.model.fast here would pull speed code into every `import capsviz`)
                assert type(module) is DigitCaps or type(module).__name__ == "FastDigitCaps", (
                    f"{type(module).__name__}: already a variant")
                module.__class__ = variant.digit_caps
    return model


def routing_bugs() -> list[str]:
    """The variants that change the routing itself (their DigitCaps), in VARIANTS' order."""
    return [variant.name for variant in VARIANTS.values() if variant.digit_caps is not None]


def routed_with_bug(name: str, model: nn.Module) -> nn.Module:
    """A copy of the reference `model` whose DigitCaps routes as variant `name` does, `model` untouched:
    the same trained weights with one rule of Procedure 1 broken, so that the Routing page shows what the
    bug alone does to c_ij on a digit (a model trained with the bug learns other weights besides)."""
    if name not in routing_bugs():
        raise VariantError(f"{name}: not a routing bug (use {', '.join(routing_bugs())})")
    if variant_of(model) != NONE:
        raise VariantError(f"{type(model).__name__}: already routes as {variant_of(model)}")
    return apply_to_model(name, copy.deepcopy(model))


def apply_to_task(name: str, task: Task) -> Task:
    """The task that trains variant `name`: `task` itself, or a wrapper that computes its loss."""
    variant = get_variant(name)
    if variant.name == NONE:
        return task
    if not isinstance(task, (CapsuleTask, CapsulePairTask)):
        raise VariantError(f"--variant {name}: a bug of CapsNet ports; the {type(task).__name__} has no capsules")
    if variant.needs_reconstruction and not (task.reconstruct and task.recon_weight > 0):
        raise VariantError(f"--variant {name}: changes the reconstruction, so it needs one "
                           f"(drop --no-recon, or give --recon-weight above 0)")
    return variant.task(task) if variant.task is not None else task


def variant_of(model: nn.Module) -> str:
    """The name of the variant whose modules `model` holds, NONE for the reference (or its fast path).
    A variant that changes only the loss (recon-mean) leaves the model the reference: NONE."""
    model = getattr(model, "module", model)  # under DistributedDataParallel
    classes = {type(module) for module in model.modules()}
    found = [variant.name for variant in VARIANTS.values()
             if variant.digit_caps in classes or variant.capsnet in classes]
    assert len(found) <= 1, f"a model holds the modules of several variants: {found}"
    return found[0] if found else NONE


def weights_entry(model: nn.Module) -> dict:
    """What model.pt records of the model's variant: {"variant": name}, or nothing for the reference, whose
    weights files stay as they were."""
    name = variant_of(model)
    return {} if name == NONE else {"variant": name}


__all__ = ["NONE", "VARIANTS", "Variant", "VariantError", "apply_to_model", "apply_to_task", "get_variant",
           "routed_with_bug", "routing_bugs", "variant_of", "weights_entry"]
