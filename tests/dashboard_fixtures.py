"""Fixtures of the dashboard tests: runs roots built once per test session around conftest's
tiny real runs (a history-only run, a run still training, broken variants beside it, and runs of
the baseline CNN and of mnist-40); and the one way the tests open the dashboard in Streamlit's
AppTest (DASHBOARD, new_app, open_app).

conftest.py registers this module as a plugin, so every test module can ask for its fixtures; the
roots are cached in this module so that modules sharing them build them once. Test modules import
the helpers: `from dashboard_fixtures import open_app`.
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from capsviz import store
from capsviz.store import RUNS_ROOT_ENV

from conftest import ROOT

KERAS_HISTORIES = Path(__file__).resolve().parent / "keras_histories"  # the seed project's two CSVLogger files
DASHBOARD = ROOT / "dashboard.py"  # the entry script: its navigation opens every page
OLD_R2 = "mnist-x0.9/mnist-r2"  # a shipped run with no Table 1 row: the 7-epoch x0.9 trio's 2 routings
APP_TIMEOUT = 120  # seconds per AppTest run: a cold page loads a model and MNIST on 2 busy cores
_built: dict[str, Path] = {}


# ---- opening the dashboard in AppTest -----------------------------------------------------------------

def new_app(timeout: float = APP_TIMEOUT):
    """The dashboard in Streamlit's AppTest, not run yet (to set session state or argv first); `timeout`:
    seconds each run may take."""
    from streamlit.testing.v1 import AppTest  # here, not at the top: most test modules never open the app

    return AppTest.from_file(str(DASHBOARD), default_timeout=timeout)


def open_app(root: Path, monkeypatch, page: str | None = None, *, timeout: float = APP_TIMEOUT):
    """The dashboard on the runs root `root` ($CAPSVIZ_RUNS), run once, then switched to `page`
    ("pages/NAME.py", as capsviz.dashboard.page_table names it) when given. Fails if the page raised,
    or if one of its tables would show a missing value as anything but an empty cell."""
    monkeypatch.setenv(RUNS_ROOT_ENV, str(root))
    app = new_app(timeout).run()
    if page:
        app.switch_page(page).run()
    assert_no_exception(app)
    assert_tables_leave_missing_values_empty(app)
    return app


def assert_no_exception(app) -> None:
    assert not app.exception, f"the page raised: {[exception.value for exception in app.exception]}"


def assert_tables_leave_missing_values_empty(app) -> None:
    """Every st.dataframe of the page shows a missing value as an empty cell (placeholder "";
    Streamlit writes a grey "None" otherwise): capsviz.dashboard.page_helpers.show_table."""
    for table in app.dataframe:
        assert table.proto.HasField("placeholder") and table.proto.placeholder == "", (
            f"a table without placeholder='' (use show_table): columns {list(table.value.columns)}")



def synthetic_rows(epochs: int, *, routings: int, recon: bool = True) -> list[dict]:
    """A plausible history: test error falling from ~2% towards 0.3%, with its best before the end."""
    rows, wall = [], 0.0
    for epoch in range(1, epochs + 1):
        error = 0.3 + 1.7 * math.exp(-epoch / 2) + (0.05 if epoch == epochs else 0.0)
        seconds = 100.0 + 20 * routings
        wall += seconds + 5
        rows.append({
            "epoch": epoch, "train_loss": 0.05 * math.exp(-epoch / 3) + 0.004, "train_margin_loss": 0.04 * math.exp(-epoch / 3),
            "train_recon_loss": 30 * math.exp(-epoch / 4) + 10 if recon else math.nan, "train_acc": 1 - 0.02 * math.exp(-epoch / 3),
            "test_loss": 0.04 * math.exp(-epoch / 3) + 0.005, "test_margin_loss": 0.035 * math.exp(-epoch / 3),
            "test_recon_loss": 28 * math.exp(-epoch / 4) + 11 if recon else math.nan, "test_acc": 1 - error / 100,
            "test_error": error, "lr": 0.001 * 0.9 ** (epoch - 1), "epoch_seconds": seconds,
            "images_per_second": 60000 / seconds, "eval_seconds": 5.0, "wall_seconds": wall,
            "timestamp": "2026-01-01T00:00:00+00:00",
        })
    return rows


def write_synthetic_run(run_dir: Path, template: Path, *, epochs: int, routings: int, status: str,
                        weights: bool) -> Path:
    """A run directory like the trainer's, with a made-up history (and the template's weights)."""
    run_dir.mkdir(parents=True)
    info = json.loads((template / store.RUN_JSON).read_text())
    info.pop("format", None)
    rows = synthetic_rows(epochs, routings=routings)
    info.update(name=run_dir.name, status=status, **store.summarize(rows))
    if status == "running":  # a live trainer: this test process stands in for it (its pid, its host, now)
        info.update(store.trainer_identity())
    info["config"] = {**info["config"], "routings": routings, "epochs": epochs + (2 if status == "running" else 0)}
    store.write_history(run_dir, rows)
    store.write_run_json(run_dir, info)
    if weights:
        shutil.copy(template / store.WEIGHTS, run_dir / store.WEIGHTS)
    return run_dir


@pytest.fixture(scope="session")
def runs_root(tiny_run: Path, tmp_path_factory) -> Path:
    """A healthy runs root: tiny-r1 (real, with weights), r3-curves (history only) and r3-live
    (a synthetic run still training, with weights)."""
    if "healthy" not in _built:
        root = tmp_path_factory.mktemp("dashboard-runs")
        shutil.copytree(tiny_run, root / "tiny-r1", ignore=shutil.ignore_patterns(store.STATE))
        write_synthetic_run(root / "r3-curves", tiny_run, epochs=6, routings=3, status="finished", weights=False)
        write_synthetic_run(root / "r3-live", tiny_run, epochs=4, routings=3, status="running", weights=True)
        _built["healthy"] = root
    return _built["healthy"]


@pytest.fixture(scope="session")
def broken_root(tiny_run: Path, tmp_path_factory) -> Path:
    """A runs root of damaged runs beside one good one: invalid run.json, a truncated history.csv,
    corrupt weights (listed, but its model cannot load), and a run that has written only run.json."""
    if "broken" not in _built:
        root = tmp_path_factory.mktemp("dashboard-broken")
        shutil.copytree(tiny_run, root / "good", ignore=shutil.ignore_patterns(store.STATE))
        bad_json = shutil.copytree(root / "good", root / "bad-json")
        (bad_json / store.RUN_JSON).write_text('{"name": "bad-json", "config": {', encoding="utf-8")
        truncated = write_synthetic_run(root / "truncated-csv", tiny_run, epochs=3, routings=1, status="finished",
                                        weights=False)
        text = (truncated / store.HISTORY_CSV).read_text()
        (truncated / store.HISTORY_CSV).write_text(text[: len(text) - 40])  # the last row cut off mid-line
        corrupt = shutil.copytree(root / "good", root / "corrupt-weights")
        (corrupt / store.WEIGHTS).write_bytes((corrupt / store.WEIGHTS).read_bytes()[:1000])
        started = root / "just-started"
        started.mkdir()
        shutil.copy(root / "good" / store.RUN_JSON, started / store.RUN_JSON)  # no history.csv, no model.pt yet
        _built["broken"] = root
    return _built["broken"]


@pytest.fixture(scope="session")
def mixed_root(tiny_run: Path, baseline_run: Path, mnist40_run: Path, tmp_path_factory) -> Path:
    """Runs of every model and dataset side by side: tiny-r1 (CapsNet, mnist), baseline (the CNN,
    mnist) and capsnet-40 (CapsNet, mnist-40), each with weights."""
    if "mixed" not in _built:
        root = tmp_path_factory.mktemp("dashboard-mixed")
        for run_dir in (tiny_run, baseline_run, mnist40_run):
            shutil.copytree(run_dir, root / run_dir.name, ignore=shutil.ignore_patterns(store.STATE))
        _built["mixed"] = root
    return _built["mixed"]


@pytest.fixture()
def baseline_only_root(baseline_run: Path, tmp_path) -> Path:
    """A runs root whose only run with weights is the baseline CNN's."""
    root = tmp_path / "baseline-only"
    shutil.copytree(baseline_run, root / baseline_run.name, ignore=shutil.ignore_patterns(store.STATE))
    return root


@pytest.fixture()
def empty_root(tmp_path) -> Path:
    root = tmp_path / "no-runs-yet"
    root.mkdir()
    return root
