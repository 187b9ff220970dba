"""The package's layout: the plain modules (model, data, runs, what the dashboard computes) import
neither Streamlit nor Plotly, so a notebook gets them without the dashboard's dependencies."""
import subprocess
import sys

from conftest import ROOT

PLAIN_MODULES = ["capsviz", "capsviz.store", "capsviz.store.keras", "capsviz.data.datasets", "capsviz.data.drawing",
                 "capsviz.model.registry", "capsviz.model.tasks", "capsviz.model.routing_view", "capsviz.analysis.results",
                 "capsviz.analysis.curves", "capsviz.analysis.digits", "capsviz.analysis.perturbations",
                 "capsviz.analysis.reconstructions", "capsviz.analysis.image_properties", "capsviz.analysis.dimension_meanings",
                 "capsviz.dashboard.page_table"]


def test_plain_modules_import_neither_streamlit_nor_plotly():
    # a fresh interpreter: this test process has imported the dashboard's modules already
    code = (f"import sys, {', '.join(PLAIN_MODULES)}; "
            "print(sorted({name.split('.')[0] for name in sys.modules} & {'streamlit', 'plotly'}))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_dashboard_package_is_where_streamlit_and_plotly_come_in():
    code = "import sys, capsviz.dashboard.state, capsviz.dashboard.figures; print('streamlit' in sys.modules, 'plotly' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["True", "True"], result.stderr
