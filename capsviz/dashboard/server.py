"""`streamlit run dashboard.py` as a child process on a free localhost port: what the browser tests and
scripts/screenshot_home.py open in chromium. No Streamlit import here: the server is another process."""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..store import PROJECT_ROOT, RUNS_ROOT_ENV

CHROMIUM = Path("/usr/bin/chromium")  # Debian's (make chromium): Playwright cannot download browsers here
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync"]
READY = '[data-testid="stApp"][data-test-script-state="notRunning"]'  # Streamlit's own "the script has finished"


class ServerError(RuntimeError):
    """The server exited or did not answer; the message says which and where its log is."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def serve_dashboard(roots: Sequence[Path] | None = None, *, log: Path | None = None,
                    answer_seconds: float = 60) -> Iterator[str]:
    """The dashboard over these runs roots (None: its default, checkpoints/), until the block ends; yields its
    URL. Its output goes to `log` (None: discarded)."""
    env = dict(os.environ)
    if roots is not None:
        env[RUNS_ROOT_ENV] = os.pathsep.join(str(root) for root in roots)
    port = free_port()
    with open(log, "w") if log else open(os.devnull, "w") as output:
        server = subprocess.Popen(
            # no --server.address: .streamlit/config.toml's 127.0.0.1 is what the browser tests check
            [sys.executable, "-m", "streamlit", "run", "dashboard.py", "--server.headless", "true",
             "--server.port", str(port), "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
            cwd=PROJECT_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
    where = f": see {log}" if log else ""
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + answer_seconds
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None:
                raise ServerError(f"streamlit exited with {server.returncode}{where}")
            if time.monotonic() > deadline:
                raise ServerError(f"streamlit did not answer on {url} within {answer_seconds:.0f} s{where}")
            time.sleep(0.3)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
