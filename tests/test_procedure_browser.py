"""Procedure 1, step by step, in a real browser (tests/test_browser.py's way: `streamlit run dashboard.py`
on a free localhost port, Playwright with Debian's chromium) on the shipped runs in checkpoints/: the
Routing page opens on mnist-r3, the section renders its equations without an exception, a click on a
cell of the PrimaryCaps grid picks that capsule, and the iteration slider steps the equations.
Screenshots go to test-artifacts/ (gitignored)."""
import pytest
from test_browser import (  # noqa: F401  (browser: the module's fixture, used here by name)
    ARTIFACTS,
    TIMEOUT_MS,
    assert_no_exception,
    browser,
    serve_dashboard,
    wait_until_idle,
)

from capsviz.store import default_runs_root

pytestmark = pytest.mark.slow  # a streamlit server and chromium, as tests/test_browser.py: `make test` runs it
FIRST_LOAD_MS = 5 * TIMEOUT_MS  # a cold server imports torch and loads the weights and MNIST, on cores other jobs share;
# also the wait for a rerun after a click or a key, which traces the digit again on a busy machine


@pytest.fixture(scope="module")
def shipped_url() -> str:
    if not (default_runs_root() / "mnist-r3" / "model.pt").exists():
        pytest.skip("the shipped mnist-r3 run has no weights here")
    with serve_dashboard([default_runs_root()], "streamlit-procedure.log") as url:
        yield url


def number_value(page, key: str) -> int:
    return int(page.locator(f".st-key-{key} input").input_value())


def coupling_equation(page) -> str:
    equation = page.locator(".st-key-procedure_eq_coupling .katex").last
    equation.wait_for(timeout=TIMEOUT_MS)
    return equation.inner_text()


def test_procedure_1_in_a_browser_a_click_picks_a_capsule_and_the_slider_steps(shipped_url, browser):  # noqa: F811
    page = browser.new_page(viewport={"width": 1440, "height": 2400})
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{shipped_url}/routing")
    page.get_by_role("heading", name="Routing", exact=True).wait_for(timeout=FIRST_LOAD_MS)
    page.locator(".st-key-procedure_grid .js-plotly-plot").first.wait_for(timeout=FIRST_LOAD_MS)
    wait_until_idle(page)
    assert_no_exception(page, "routing with Procedure 1")
    run = page.locator(".st-key-routing_run [data-testid='stSelectbox']").get_by_role("combobox").input_value()
    assert run == "mnist-r3", f"the page opens on a run that routes, not {run!r}"
    assert page.locator("[class*='st-key-procedure_eq_'] .katex").count() == 5, "the five equations are rendered"
    before = coupling_equation(page)
    assert "0.1000" in before, "iteration 1 couples uniformly"
    page.locator(".st-key-procedure_picker").scroll_into_view_if_needed()
    page.screenshot(path=ARTIFACTS / "browser-procedure.png", full_page=True)

    # a click on a cell of the 6x6 grid: that capsule, in "Chosen" mode
    row, column = number_value(page, "procedure_row"), number_value(page, "procedure_column")
    target = ((row + 3) % 6, (column + 2) % 6)
    cell = page.locator(".st-key-procedure_grid .scatterlayer path.point").nth(target[0] * 6 + target[1])
    box = cell.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_function(
        "target => { const value = key => Number(document.querySelector(`.st-key-${key} input`)?.value);"
        " return value('procedure_row') === target[0] && value('procedure_column') === target[1]; }",
        arg=list(target), timeout=FIRST_LOAD_MS)
    wait_until_idle(page)
    assert_no_exception(page, "routing after a click on the grid")
    chosen = page.locator(".st-key-procedure_mode").get_by_role("radio", name="Chosen")
    assert chosen.is_checked(), "a click makes the capsule the chosen one"
    clicked = coupling_equation(page)
    assert clicked != before, "the equations follow the clicked capsule"

    # the iteration slider, by keyboard: iteration 3's coupling is no longer uniform
    thumb = page.locator(".st-key-procedure_iteration input[type='range']")  # as test_browser moves the page's other slider
    thumb.focus()
    thumb.press("End")
    page.wait_for_function(
        "before => { const equations = document.querySelectorAll('.st-key-procedure_eq_coupling .katex');"
        " return equations.length && equations[equations.length - 1].innerText !== before; }",
        arg=clicked, timeout=FIRST_LOAD_MS)
    wait_until_idle(page)
    assert_no_exception(page, "routing at iteration 3")
    page.locator(".st-key-procedure_picker").scroll_into_view_if_needed()
    page.screenshot(path=ARTIFACTS / "browser-procedure-iteration-3.png", full_page=True)
    assert not errors, f"JavaScript errors in the page: {errors}"
    page.close()
