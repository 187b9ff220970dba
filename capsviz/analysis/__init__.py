"""What the pages, the scripts and the trainer's experiments compute from models and runs: plain modules,
no Streamlit or Plotly (capsviz.dashboard draws them).

    results.py, groups.py, curves.py, time_to_accuracy.py   run tables, seed groups, curves, time to accuracy
    digits.py                                                 test sets, encoding and decoding digits
    reconstructions.py, perturbations.py                      Figures 3 and 4
    procedure.py                                              Procedure 1 step by step, for one digit
    image_properties.py, dimension_meanings.py               what each capsule dimension does to a digit
    capsule_space.py                                          where a run's test digits lie in capsule space
    segmentation.py                                           MultiMNIST's Figure 5
    robustness.py, robustness_view.py                         accuracy by affine transform, and its tables

Imports the run store, the model and the data below it; only the dashboard imports
it from inside capsviz. docs/layout.md draws the whole map.
"""
