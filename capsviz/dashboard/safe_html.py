"""Text from run directories (names, paths, config values, CSV headers) made safe to place in HTML.

Anyone who can put a folder in a runs root chooses run names: a name such as
`<iframe srcdoc="<img src=x onerror=...>">` must show as those characters, never become markup. Streamlit's
`st.markdown(..., unsafe_allow_html=True)` also reads Markdown, so a name like `[x](javascript:...)` must not
become a link either: every character that HTML or Markdown give a meaning to is written as an entity."""
from __future__ import annotations

import re

# HTML's five (& < > " ') and Markdown's punctuation (links, emphasis, code, headings, tables, escapes,
# streamlit's :colour[...] and :material/...: directives)
_MARKDOWN = re.compile(r"[\\`*_{}\[\]()#+\-.!|~:$<>&\"']")
_COLOR = re.compile(r"#[0-9a-fA-F]{6}|rgb\(\d{1,3}, ?\d{1,3}, ?\d{1,3}\)")


def text(value: object) -> str:
    """`value` as text that HTML and Markdown show literally: each meaningful character an entity."""
    return _MARKDOWN.sub(lambda match: f"&#{ord(match.group())};", str(value))


def color(value: str) -> str:
    """A CSS colour of our own palettes (#rrggbb or rgb(r, g, b)); anything else is refused."""
    if not _COLOR.fullmatch(value):
        raise ValueError(f"not a colour of the palette: {value!r}")
    return value


def curves_legend(groups, runs, colors: dict[str, str]) -> str:
    """The curves page's one colour key (its charts have no legends of their own): a diamond per group of
    seeds, a dot per run outside a group, train dashed and test solid. `groups`: capsviz.analysis.groups.Group with
    is_group; `runs`: the runs shown; `colors`: name -> colour. Every name is escaped (text)."""
    grouped = {run.name for group in groups for run in group.runs}
    entries = [f"<span style='color:{color(colors[group.name])}; font-size:1.3em'>◆</span> {text(group.name)} "
               f"<small>(mean of seeds {', '.join(text(seed) for seed in group.seeds)}"
               f"{', training' if any(run.is_running for run in group.runs) else ''})</small>" for group in groups]
    entries += [f"<span style='color:{color(colors[run.name])}; font-size:1.3em'>●</span> {text(run.name)}"
                + (" <small>(training)</small>" if run.is_running else "") for run in runs if run.name not in grouped]
    return " &nbsp;&nbsp; ".join(entries + ["<small>— dashed: train, solid: test</small>"])
