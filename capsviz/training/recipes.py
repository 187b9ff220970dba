"""Training recipes: the paper's formulas (the default) or the authors' published code, which differs from the
paper's text in ways no public port copies (../shared/reference/PAPER.md, "The authors' code against the paper's
text"). A recipe is a name a run records (config.recipe); it decides model and loss options, and the reference
model and losses stay the paper's unless a recipe switches a part on.

    paper                       the paper's text
    authors                     every part of the authors' code below
    authors:PART[,PART...]      some of them, to measure each alone

The parts (AUTHORS_PARTS), each read in Sarasra/models, research/capsules (layers.py, capsule_model.py):

    margin       the margin loss halved and averaged over batch x classes: the paper's value / (2 x classes),
                 so beside it the reconstruction term (unchanged) weighs 2 x classes (20) times the paper's
    primary      PrimaryCaps as a one-iteration routing: u = squash(conv(x) / 32 + b), the conv without a
                 bias, b (32 types x 8) initialised to 0.1
    digit-bias   DigitCaps adds a bias (10 x 16, initialised to 0.1) to s_j in every routing iteration
    init         truncated normal weights (cut at 2 std): conv1 std 0.05, PrimaryCaps 0.1, W_ij 0.1, decoder
                 0.1; biases 0.1

CapsNet only: the baseline CNN refuses any recipe but "paper" (capsviz.model.registry).
"""
from __future__ import annotations

PAPER = "paper"
AUTHORS = "authors"

# The parts of the authors' recipe, each one documented switch.
AUTHORS_PARTS: dict[str, str] = {
    "margin": "margin loss x 0.5, averaged over batch x classes (the paper's / 2K); reconstruction unchanged",
    "primary": "PrimaryCaps u = squash(conv(x) / 32 + b): a one-input routing over 32 types, b [32, 8] = 0.1",
    "digit-bias": "DigitCaps adds a bias [10, 16] = 0.1 to s_j before squash in every routing iteration",
    "init": "truncated normal weights (conv1 std 0.05, the rest 0.1, cut at 2 std), biases 0.1",
}

# The authors' PrimaryCaps routes one input over its 32 output types with zero logits, so the softmax
# scales every vote by 1/32 (conv_slim_capsule with num_routing=1). A number, not 1/primary_types: the
# recipe is the authors' network, whose 32 types it records.
AUTHORS_PRIMARY_TYPES = 32
AUTHORS_BIAS = 0.1  # every bias of theirs starts at 0.1 (variables.bias_variable)


class RecipeError(ValueError):
    """An unknown recipe or part; the message names it and lists what exists."""


def _valid() -> str:
    return f"use {PAPER}, {AUTHORS} or {AUTHORS}:PART[,PART...] with PART in {', '.join(AUTHORS_PARTS)}"


def recipe_parts(recipe: str) -> frozenset[str]:
    """The authors' parts a recipe switches on: none for "paper", all for "authors"."""
    if recipe == PAPER:
        return frozenset()
    if recipe == AUTHORS:
        return frozenset(AUTHORS_PARTS)
    prefix = AUTHORS + ":"
    if isinstance(recipe, str) and recipe.startswith(prefix):
        parts = recipe[len(prefix):].split(",")
        unknown = [part for part in parts if part not in AUTHORS_PARTS]
        if unknown:
            raise RecipeError(f"recipe {recipe!r}: unknown part {unknown[0]!r} ({_valid()})")
        return frozenset(parts)
    raise RecipeError(f"unknown recipe {recipe!r} ({_valid()})")


def recipe_problem(value) -> str | None:
    """What is wrong with a recipe name, in one line (for run.json's config rules and the CLI), or None."""
    if not isinstance(value, str):
        return f"must be a recipe name ({_valid()})"
    try:
        recipe_parts(value)
    except RecipeError as error:
        return str(error)
    return None


def model_options(recipe: str) -> dict:
    """Model config overrides (capsviz.model.capsnet.CapsNetConfig fields) that `recipe` implies."""
    parts = recipe_parts(recipe)
    options = {}
    if "primary" in parts:
        options.update(primary_scale=1.0 / AUTHORS_PRIMARY_TYPES, primary_bias=AUTHORS_BIAS)
    if "digit-bias" in parts:
        options.update(digit_bias=AUTHORS_BIAS)
    if "init" in parts:
        options.update(init="truncated-normal")
    return options


def task_options(recipe: str) -> dict:
    """Keyword arguments of the model's task factory (capsviz.model.registry) that `recipe` implies. Empty for the
    paper; any other recipe names its margin reduction, so that a model without a margin loss (the
    baseline) sees that a recipe was asked for and refuses it."""
    parts = recipe_parts(recipe)
    if not parts:
        return {}
    return {"margin_reduction": "half-mean" if "margin" in parts else "sum"}
