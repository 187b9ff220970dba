"""Run names and other text from run directories never become markup (issue: stored XSS in the curves key)."""
import re
from types import SimpleNamespace

import pytest

from capsviz.dashboard.safe_html import color, curves_legend, text

HOSTILE = '<iframe srcdoc="<img src=x onerror=alert(parent.document.domain)>">'


def test_text_leaves_no_character_that_html_or_markdown_read():
    for hostile in (HOSTILE, "[x](javascript:alert(1))", "**bold** `code` :red[x] <script>1</script> & \\"):
        escaped = text(hostile)
        assert not re.search(r"[<>\"'\[\]()`*:\\]", escaped), escaped
        assert "&" not in escaped.replace("&#", "")  # every ampersand starts an entity of ours


def test_the_curves_key_shows_a_hostile_run_name_as_text():
    run = SimpleNamespace(name=HOSTILE, is_running=False, config={"seed": 0})
    seeds = [SimpleNamespace(name=f"{HOSTILE}-seed{seed}", is_running=seed == 1) for seed in (0, 1)]
    group = SimpleNamespace(name=HOSTILE + "group", runs=seeds, seeds=[0, "<b>1</b>"])
    key = curves_legend([group], [run, *seeds], {HOSTILE: "#1F77B4", HOSTILE + "group": "#FF7F0E"})
    assert "<iframe" not in key and "<img" not in key and "<b>" not in key
    assert key.count("&#60;iframe") == 2  # the group and the lone run, both shown
    assert "(training)" not in key and ", training" in key  # the group's running seed, said once


def test_only_palette_colours_reach_a_style_attribute():
    assert color("#1F77B4") == "#1F77B4"
    with pytest.raises(ValueError):
        color("red; background:url(javascript:alert(1))")
