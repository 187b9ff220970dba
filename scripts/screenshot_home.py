"""Take the README's screenshot: the dashboard's home page over the shipped runs, in headless chromium.

    python scripts/screenshot_home.py                       # writes docs/images/dashboard.png
    python scripts/screenshot_home.py --out /tmp/home.png --width 1600

Starts `streamlit run dashboard.py` on a free localhost port (capsviz.dashboard.server), waits until the
page has finished running, saves a PNG and stops the server; a page that shows an exception is not saved.
Needs Debian's chromium (`make chromium`): Playwright cannot download browsers here. Rerun it when the
shipped runs or the home page change.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from capsviz.dashboard.server import CHROMIUM, CHROMIUM_ARGS, READY, ServerError, serve_dashboard

ROOT = Path(__file__).resolve().parent.parent


def screenshot(out: Path, *, width: int, height: int) -> None:
    from playwright.sync_api import sync_playwright

    # the shipped runs as a relative root, so that the picture reads "checkpoints", not this machine's path
    with serve_dashboard([Path("checkpoints")]) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": width, "height": height})
        page.goto(url)
        page.wait_for_selector(READY, timeout=120_000)
        if page.locator('[data-testid="stException"]').count():
            raise ServerError("the home page shows an exception: no screenshot taken")
        page.locator('[data-testid="stDataFrame"]').first.wait_for(timeout=120_000)
        page.wait_for_timeout(1500)  # the data grid draws its cells a moment after it appears
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out))
        browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="screenshot the dashboard's home page for the README")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "dashboard.png")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=900)
    args = parser.parse_args(argv)
    if args.width < 400 or args.height < 300:
        print(f"error: --width {args.width} --height {args.height}: at least 400 x 300", file=sys.stderr)
        return 2
    if not CHROMIUM.exists():
        print(f"error: {CHROMIUM} is missing: install it with `make chromium`", file=sys.stderr)
        return 1
    try:
        screenshot(args.out, width=args.width, height=args.height)
    except ServerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"{args.out}: the home page at {args.width}x{args.height}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
