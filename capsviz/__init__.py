"""CapsViz: Sabour, Frosst & Hinton's CapsNet (NIPS 2017) in PyTorch: the model, the data and the runs.

Nothing here imports Streamlit or Plotly: the dashboard's own code is capsviz.dashboard, imported only by
dashboard.py and its pages."""
from .data.mnist import DataError, load_mnist
from .model.capsnet import CapsNet, CapsNetConfig, CapsNetOutput, dynamic_routing, squash
from .model.losses import capsule_loss, margin_loss, reconstruction_loss
from .store import Run, RunError, list_runs, load_run

__all__ = [
    "CapsNet", "CapsNetConfig", "CapsNetOutput", "DataError", "Run", "RunError", "capsule_loss",
    "dynamic_routing", "list_runs", "load_mnist", "load_run", "margin_loss", "reconstruction_loss", "squash",
]
