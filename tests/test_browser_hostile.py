"""No text from a run directory reaches the browser as HTML (issue 26): a runs root whose run names,
run.json fields, CSV headers and evaluation captions are script-bearing HTML, opened page by page in
a real browser (test_browser's chromium and Playwright). Fails if any script ran (window.__xss in the
page or any of its frames, a dialog) or if the hostile markup became elements."""
import json
import shutil
from pathlib import Path

import pytest
from test_browser import ARTIFACTS, TIMEOUT_MS, browser, require_chromium, serve_dashboard, wait_until_idle  # noqa: F401

from capsviz.store import EVALUATION, HISTORY_CSV, ROUTING_CSV, RUN_JSON, default_runs_root

PAGE_FILES = sorted(path.stem for path in (Path(__file__).resolve().parent.parent / "pages").glob("*.py"))
# each sets window.__xss (in the page, or its parent from an iframe) if it runs; no "/" so that it can
# name a folder
HOSTILE = [
    "<img src=x onerror=window.__xss=1>",
    "<iframe srcdoc='<img src=x onerror=parent.__xss=2>'>",
    "<svg onload=window.__xss=3>",
    "[link](javascript:window.__xss=4)",
]


def hostile_text(number: int) -> str:
    return HOSTILE[number % len(HOSTILE)]


def make_hostile_root(root: Path) -> None:
    """The shipped runs (every model page has a run with weights) under hostile names, their text fields
    and CSV headers replaced with hostile markup."""
    shipped = default_runs_root()
    sources = ["mnist-r1", "mnist40-capsnet-r3", "mnist40-baseline-pool", "multimnist-r3"]
    for number, source in enumerate(sources):
        run = Path(shutil.copytree(shipped / source, root / hostile_text(number)))
        info = json.loads((run / RUN_JSON).read_text())
        info["name"] = hostile_text(number + 1)
        info["config"]["device"] = hostile_text(number + 2)
        info["environment"] = {**info.get("environment", {}), "cpu": hostile_text(number + 3),
                               "git_commit": hostile_text(number), "processor": hostile_text(number + 1)}
        (run / RUN_JSON).write_text(json.dumps(info))
        for name in (HISTORY_CSV, ROUTING_CSV):  # an extra column with a hostile header
            path = run / name
            if path.exists():
                lines = path.read_text().splitlines()
                header = '"' + hostile_text(number).replace('"', '""') + '"'
                path.write_text("\n".join([lines[0] + "," + header] + [line + ",1" for line in lines[1:]]) + "\n")
        if (run / EVALUATION).exists():
            evaluation = json.loads((run / EVALUATION).read_text())
            evaluation["evaluated_at"] = hostile_text(number + 1)
            evaluation["environment"] = {"cpu": hostile_text(number + 2), "git_commit": hostile_text(number + 3),
                                         "device": hostile_text(number)}
            evaluation["training"]["note"] = hostile_text(number + 1)
            for record in evaluation["sets"].values():
                record["description"] = hostile_text(number + 2)
            (run / EVALUATION).write_text(json.dumps(evaluation))
    nested = root / hostile_text(1) / "inner"  # a nested run: its name is a path under the root
    shutil.copytree(shipped / "mnist-baseline", nested)


@pytest.mark.slow
def test_no_page_runs_a_script_from_hostile_run_names(browser, tmp_path):  # noqa: F811
    require_chromium()
    root = tmp_path / "hostile-runs"
    make_hostile_root(root)
    dialogs = []
    with serve_dashboard([root], "streamlit-hostile.log") as url:
        page = browser.new_page(viewport={"width": 1440, "height": 1800})
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        for name in PAGE_FILES:
            page.goto(f"{url}/{'' if name == 'home' else name}")
            page.locator('[data-testid="stSidebarNav"]').wait_for(timeout=TIMEOUT_MS)
            wait_until_idle(page)
            page.wait_for_timeout(1500)  # plots and components draw after the script run
            ran = [frame.evaluate("() => window.__xss || null") for frame in page.frames]
            assert not any(ran) and not dialogs, f"{name}: a script from a run's text ran ({ran}, {dialogs})"
            injected = page.evaluate("""() => document.querySelectorAll(
                'img[src="x"], iframe[srcdoc], svg[onload], a[href^="javascript"]').length""")
            assert injected == 0, f"{name}: hostile markup became {injected} element(s)"
            page.screenshot(path=ARTIFACTS / f"browser-hostile-{name}.png", full_page=True)
        page.close()
