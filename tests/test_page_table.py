"""The dashboard's one table of pages (capsviz.dashboard.page_table): it lists exactly the files in
pages/, its entries are usable as st.Page arguments, the README names every page, and the home
page's guide links every other page from it."""
import re

from capsviz.dashboard.page_table import PAGE_TABLE, PAGES_DIR, default_page, page_by_name, page_by_path

from conftest import ROOT
from dashboard_fixtures import open_app


def test_every_file_in_pages_is_in_the_table_and_every_entry_is_a_file():
    files = {path.relative_to(ROOT).as_posix() for path in PAGES_DIR.glob("*.py")}
    listed = [page.path for page in PAGE_TABLE]
    assert len(listed) == len(set(listed)), f"a page listed twice: {listed}"
    assert not files - set(listed), f"pages/ files missing from capsviz/dashboard/page_table.py: {sorted(files - set(listed))}"
    assert not set(listed) - files, f"the page table names files pages/ does not have: {sorted(set(listed) - files)}"


def test_entries_are_valid_navigation_entries():
    assert [page.path for page in PAGE_TABLE if page.default] == ["pages/home.py"], "one default page: home"
    assert default_page().url_path == "" and all(page.url_path for page in PAGE_TABLE if not page.default)
    for field in ("title", "url_path"):
        values = [getattr(page, field) for page in PAGE_TABLE]
        assert len(values) == len(set(values)), f"{field} repeats: {values}"
    for page in PAGE_TABLE:
        assert re.fullmatch(r"[a-z0-9_-]*", page.url_path), page.url_path  # st.Page: no "/", a URL's path
        assert re.fullmatch(r":material/[a-z0-9_]+:", page.icon), page.icon
        assert page.shows and "\n" not in page.shows, f"{page.path}: one line saying what it shows"
        assert page_by_path(page.path) is page and page_by_name(page.name) is page
    assert default_page().page_heading == "CapsViz" and page_by_name("curves").page_heading == "Routing curves"


def test_the_readme_names_every_page():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [page.title for page in PAGE_TABLE if page.title not in readme]
    assert not missing, f"README.md does not name these pages: {missing}"


def test_the_home_page_links_every_other_page_with_its_line(empty_root, monkeypatch):
    app = open_app(empty_root, monkeypatch)
    links = [(link.proto.page, link.proto.label, link.proto.icon) for link in app.get("page_link")]
    others = [page for page in PAGE_TABLE if not page.default]
    assert [label for _, label, _ in links] == [page.title for page in others]
    assert [icon for _, _, icon in links] == [page.icon for page in others]
    captions = [caption.value for caption in app.caption]
    assert all(page.shows in captions for page in others)


def test_every_page_starts_the_same_way_and_takes_its_heading_from_the_table():
    """Each page's top is page_helpers.start_page(__file__, caption): the entry-script check, the heading its
    table entry names (the page writes no st.title of its own), its caption, the runs and their errors."""
    for page in PAGE_TABLE:
        source = (ROOT / page.path).read_text()
        assert source.count("start_page(__file__, ") == 1, page.path
        assert "st.title(" not in source, f"{page.path}: its heading belongs in the page table"
        assert "show_run_errors(" not in source and "load_runs()\n" not in source.split("start_page(")[0], page.path
