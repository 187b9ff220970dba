"""Training recipes: the paper's formulas (the default) or the authors' published code, which differs from the
paper's text in ways no public port copies (../shared/reference/PAPER.md, "The authors' code against the paper's
text"). A recipe is a name a run records (config.recipe); it decides model options and loss options, and the
reference model and losses stay the paper's unless a recipe switches a part on.

    paper                       the paper's text
    authors                     every part of the authors' code below
    authors:PART[,PART...]      some of them, to measure each alone
"""
from __future__ import annotations

PAPER = "paper"
AUTHORS = "authors"
# The parts of the authors' recipe, each one documented switch (filled in by the recipe's implementation).
AUTHORS_PARTS: dict[str, str] = {}


class RecipeError(ValueError):
    """An unknown recipe or part; the message names it and lists what exists."""


def recipe_parts(recipe: str) -> frozenset[str]:
    """The authors' parts a recipe switches on: none for "paper", all for "authors"."""
    if recipe == PAPER:
        return frozenset()
    raise RecipeError(f"unknown recipe {recipe!r} (use {PAPER})")


def model_options(recipe: str) -> dict:
    """Model config overrides (capsviz.capsnet.CapsNetConfig fields) that `recipe` implies."""
    recipe_parts(recipe)
    return {}


def task_options(recipe: str) -> dict:
    """Keyword arguments of the model's task (capsviz.tasks) that `recipe` implies."""
    recipe_parts(recipe)
    return {}
