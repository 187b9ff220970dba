"""Benchmark the dashboard: how long each page takes to render, and how long a capsule slider
change takes to redraw the reconstruction. Prints figures; asserts nothing.

    python scripts/bench_dashboard.py                      # the runs in checkpoints/ (or $CAPSVIZ_RUNS)
    python scripts/bench_dashboard.py --runs DIR --repeats 5 --no-browser

Three measurements:
  1. Page render, server side (Streamlit's AppTest runs the page script in this process): cold,
     with Streamlit's caches cleared (weights and MNIST loaded, digits encoded), and warm.
  2. Offsets coming back, server side: the capsule sliders are drawn in the browser
     (capsviz/dashboard/live_decoder.js); on release their values come back and rerun the editor's
     fragment. Timed here as the whole-page rerun AppTest does (an upper bound of the fragment).
  3. In headless chromium (when /usr/bin/chromium exists): page load until the script is idle and
     the charts are drawn; then a slider dragged with the mouse: for every input event, the time
     from the event to the new picture drawn on the canvas, and to the next frame painted after it
     (requestAnimationFrame then a task: the pixels are on screen). Recorded by the page itself
     (globalThis.__capsvizLatency), so the driver's own latency is not counted.
"""
from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from capsviz.dashboard.page_table import PAGE_TABLE, page_by_name
from capsviz.store import RUNS_ROOT_ENV, default_runs_root, list_runs

ROOT = Path(__file__).resolve().parent.parent

CHROMIUM = Path("/usr/bin/chromium")


def summary(values: list[float], unit: str, scale: float = 1.0, digits: int = 1) -> str:
    values = [value * scale for value in values]
    return (f"median {statistics.median(values):7.{digits}f} {unit}   min {min(values):7.{digits}f}   "
            f"max {max(values):7.{digits}f}   (n={len(values)})")


def server_side(repeats: int) -> None:
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    def fresh_app():
        return AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=300)

    print("1. Page render, server side (AppTest)")
    fresh_app().run()  # imports and Streamlit's own first-run setup are not the dashboard's cost
    for entry in PAGE_TABLE:  # every page of capsviz/dashboard/page_table.py
        name, app = entry.name, fresh_app()
        if not entry.default:
            app.run().switch_page(entry.path)  # the home page is light: it only lists the runs
        st.cache_data.clear()
        st.cache_resource.clear()
        start = time.perf_counter()
        app.run()
        cold = time.perf_counter() - start
        assert not app.exception, f"{name}: {[exception.value for exception in app.exception]}"
        warm = []
        for _ in range(repeats):
            start = time.perf_counter()
            app.run()
            warm.append(time.perf_counter() - start)
        print(f"   {name:16s} cold {cold:6.2f} s   warm {summary(warm, 's', digits=2)}")

    print("2. Offsets coming back from the browser, server side")
    app = fresh_app().run()
    app.switch_page(page_by_name("dimensions").path).run()
    if not app.get("bidi_component"):
        print("   no run with weights: skipped")
        return
    page_seconds = []
    values = [0.05, 0.1, 0.15, 0.2, 0.25, -0.25, -0.1, 0.0] * max(1, repeats // 4)
    for step, value in enumerate(values):
        offsets = [0.0] * 16
        offsets[step % 16] = value
        app.session_state["live_decoder"] = {"offsets": offsets}
        start = time.perf_counter()
        app.run()
        page_seconds.append(time.perf_counter() - start)
    print(f"   whole page rerun (the fragment's is less)   {summary(page_seconds, 'ms', 1000)}")


ROUTING_DRAWN = re.compile(r"Page traced and drawn in (\d+) ms on the server")


def routing_page(repeats: int) -> None:
    """The Routing page's own server time (it times itself: trace each model, build and send every
    figure), for a new test digit each time, one run alone and two runs side by side."""
    from streamlit.testing.v1 import AppTest

    print("4. Routing page, server side (new digit each time)")
    app = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=300).run()
    app.switch_page(page_by_name("routing").path).run()
    if app.exception or not app.number_input:
        print("   no CapsNet run with weights, or the page failed: skipped")
        return
    compare = app.selectbox(key="routing_compare")
    for label, choice in (("one run", compare.options[0]), ("two runs side by side", compare.options[-1])):
        app.selectbox(key="routing_compare").set_value(choice).run()
        reported, page_seconds, cpu_seconds = [], [], []
        for index in range(1, 2 * repeats + 1):
            app.number_input(key="routing_digit_index").set_value(index)
            start, cpu_start = time.perf_counter(), time.process_time()
            app.run()
            page_seconds.append(time.perf_counter() - start)
            cpu_seconds.append(time.process_time() - cpu_start)
            assert not app.exception, [exception.value for exception in app.exception]
            captions = [caption.value for caption in app.caption if ROUTING_DRAWN.search(caption.value)]
            reported.append(float(ROUTING_DRAWN.search(captions[0]).group(1)))
        runs_shown = app.selectbox(key="routing_run").value + ("" if choice == compare.options[0] else f" + {choice}")
        print(f"   {label} ({runs_shown}): page's own time   {summary(reported, 'ms')}")
        print(f"   {' ' * len(label)}   AppTest rerun, whole        {summary(page_seconds, 'ms', 1000)}")
        # CPU time of the whole process, all threads: what the rerun costs whatever else shares the machine,
        # and a bound on its wall time on an idle one (no I/O waits; at least half of it on 2 cores)
        print(f"   {' ' * len(label)}   AppTest rerun, CPU time     {summary(cpu_seconds, 'ms', 1000)}")
        moved = []
        for step in range(2 * repeats):  # the same digit: its traces come from the cache
            app.slider(key="routing_iteration").set_value(1 + step % 3).run()
            captions = [caption.value for caption in app.caption if ROUTING_DRAWN.search(caption.value)]
            moved.append(float(ROUTING_DRAWN.search(captions[0]).group(1)))
        print(f"   {' ' * len(label)}   iteration slider moved      {summary(moved, 'ms')}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def in_browser(runs_root: Path, repeats: int) -> None:
    from playwright.sync_api import sync_playwright

    print("3. In headless chromium")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "dashboard.py", "--server.headless", "true", "--server.port",
         str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none"],
        cwd=ROOT, env={**os.environ, RUNS_ROOT_ENV: str(runs_root)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
                break
            except OSError:
                time.sleep(0.3)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--no-first-run", "--disable-sync"])
            page = browser.new_page(viewport={"width": 1440, "height": 1800})
            idle = '[data-testid="stApp"][data-test-script-state="notRunning"]'
            for visit in ("first visit (cold caches)", "second visit (warm)"):
                timings = []
                for entry in PAGE_TABLE:
                    name, start = entry.name, time.perf_counter()
                    page.goto(f"{url}/{entry.url_path}")
                    page.wait_for_selector("h1", timeout=300_000)
                    page.wait_for_selector(idle, timeout=300_000)
                    if not entry.default and page.locator(".js-plotly-plot").count():
                        page.locator(".js-plotly-plot").last.wait_for(timeout=300_000)
                    timings.append(f"{name} {time.perf_counter() - start:.2f} s")
                print(f"   page load, {visit}: " + ", ".join(timings))
            page.goto(f"{url}/dimensions")
            page.wait_for_selector(idle, timeout=300_000)
            page.locator('.cv-root[data-ready="true"]').wait_for(timeout=300_000)
            thumb = page.locator(".cv-dim-0 input[type='range']")
            box = thumb.bounding_box()
            middle_y = box["y"] + box["height"] / 2
            page.evaluate("globalThis.__capsvizLatency = []")
            for _ in range(repeats):
                page.mouse.move(box["x"] + box["width"] / 2, middle_y)
                page.mouse.down()
                for step in range(1, 41):  # out to the right end and back, 2 px a move
                    offset = step if step <= 20 else 40 - step
                    page.mouse.move(box["x"] + box["width"] / 2 + offset * box["width"] / 50, middle_y)
                page.mouse.up()
                page.wait_for_selector(idle, timeout=60_000)
            page.wait_for_timeout(200)  # the last frames' callbacks
            latency = page.evaluate("globalThis.__capsvizLatency")
            drawn = [entry["drawn"] for entry in latency]
            painted = [entry["painted"] for entry in latency]
            print(f"   slider drag: input event -> canvas drawn            {summary(drawn, 'ms')}")
            print(f"   slider drag: input event -> next frame painted      {summary(painted, 'ms')}")
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, help="runs directory (default checkpoints/ or $CAPSVIZ_RUNS)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats of each warm measurement (default 5)")
    parser.add_argument("--no-browser", action="store_true", help="skip the headless chromium measurements")
    args = parser.parse_args()
    runs_root = (args.runs or default_runs_root()).resolve()
    os.environ[RUNS_ROOT_ENV] = str(runs_root)
    import torch

    names = ", ".join(path.name for path in list_runs(runs_root)) or "none"
    print(f"runs root {runs_root}: {names}")
    print(f"torch threads {torch.get_num_threads()}, cpus {os.cpu_count()}, load average "
          f"{', '.join(f'{load:.1f}' for load in os.getloadavg())}")
    server_side(args.repeats)
    routing_page(args.repeats)
    if args.no_browser:
        return
    if not CHROMIUM.exists():
        print(f"3. skipped: {CHROMIUM} is missing (apt-get install -y chromium)")
        return
    in_browser(runs_root, args.repeats)


if __name__ == "__main__":
    main()
