"""The models and what trains them, built on capsviz.data.

    capsnet.py        the reference CapsNet (Sabour, Frosst & Hinton 2017)
    baseline.py       the paper's baseline CNN
    losses.py         the margin and reconstruction losses
    tasks.py          what a training step computes for each model (loss parts, which examples are right)
    registry.py       the models behind one interface: each family's class, config, task and capabilities
    routing_view.py   routing by agreement traced iteration by iteration, for one digit or a batch
    routing_probe.py  Figure A.1 over training: the probe the registry names as CapsNet's
    fast/             the speed work, swapped into a built CapsNet (never imported by capsnet.py)
    variants/         the bugs of public ports, swapped in the same way when a run asks for one

Imports capsviz.data and capsviz.machine below it, never the training settings, the run store or anything
above: the store imports the registry to rebuild a run's model. docs/layout.md draws the whole map.
"""
