"""How a run is trained, as the trainer (trainer/) and run.json's checks read it.

    settings.py   the training settings, each declared once (TrainConfig, the flags, run.json's checks)
    recipes.py    the paper's formulas or the authors' code's, as named recipes
    schedules.py  learning-rate schedules and the time budget

Imports capsviz.model and capsviz.data below it; the run store imports settings for run.json's config rules.
docs/layout.md draws the whole map.
"""
