"""The dashboard's pages, in one table: the file under pages/, the title and icon in the navigation,
the URL path, a line saying what the page shows, and which page opens first.

Everything else reads this table: dashboard.py builds st.navigation from it, the home page's guide
links every page but itself from it, and the tests and scripts/bench_dashboard.py open the pages it
names. Adding a page is one entry here plus its file in pages/.

Plain Python: importable without Streamlit (a test or a script can list the pages without it).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the checkout: dashboard.py and pages/ are here
PAGES_DIR = ROOT / "pages"


@dataclass(frozen=True)
class DashboardPage:
    path: str  # the page's file, relative to the checkout: "pages/NAME.py"
    title: str  # in the navigation, the home page's guide and the README
    icon: str  # a Material icon, ":material/NAME:"
    url_path: str  # after the server's address; "" for the default page
    shows: str  # what the page shows, one line: the home page's guide says it under the link
    default: bool = False  # the page "/" opens
    heading: str | None = None  # the page's st.title, where it is not its title (the home page's "CapsViz")

    @property
    def name(self) -> str:
        """The file's stem: "curves" for pages/curves.py."""
        return Path(self.path).stem

    @property
    def page_heading(self) -> str:
        """The text of the page's top heading (st.title)."""
        return self.heading or self.title


PAGE_TABLE: tuple[DashboardPage, ...] = (
    DashboardPage("pages/home.py", "Home", ":material/home:", "",
                  "Every run at a glance beside the paper's Table 1, Table 1 measured over seeds, and this guide.",
                  default=True, heading="CapsViz"),
    DashboardPage("pages/curves.py", "Routing curves", ":material/show_chart:", "curves",
                  "Overlay runs' losses, accuracy, test error, learning rate and epoch time; seeds of one setting "
                  "as a band; smooth, log scale, epoch or wall-time axis; import Keras CSVLogger histories; "
                  "download the combined CSV."),
    DashboardPage("pages/routing.py", "Routing", ":material/call_split:", "routing",
                  "Routing by agreement iteration by iteration for a test digit or one you draw: coupling maps, "
                  "agreement, two runs side by side, Procedure 1 step by step, the softmax-over-inputs bug on the "
                  "same digit, routing over training (Figure A.1), and runs of 1 to 10 iterations compared."),
    DashboardPage("pages/dimensions.py", "Capsule dimensions", ":material/tune:", "dimensions",
                  "Pick or draw a digit, see its 10 capsule lengths, drag the 16 dimensions of a capsule and watch "
                  "the decoder redraw it; each dimension named by what it was measured to do; Figure 4's grid."),
    DashboardPage("pages/capsule-space.py", "Capsule space", ":material/scatter_plot:", "capsule-space",
                  "The digit capsules of all 10,000 test digits as a map (PCA or t-SNE), coloured by class, "
                  "correctness or capsule length; open a chosen digit on the dimensions and Routing pages; two "
                  "runs side by side."),
    DashboardPage("pages/reconstructions.py", "Reconstructions", ":material/grid_view:", "reconstructions",
                  "Test digits beside their reconstructions as in Figure 3, labelled (l, p, r); misclassified "
                  "digits only; reconstruct from the label's or the prediction's capsule."),
    DashboardPage("pages/robustness.py", "Robustness", ":material/transform:", "robustness",
                  "The paper's affNIST comparison (section 5.2) beside ours, accuracy against each affine "
                  "transform, and an explorer that turns, shears and moves a digit under each model's eyes."),
    DashboardPage("pages/multimnist.py", "MultiMNIST", ":material/join_inner:", "multimnist",
                  "Figure 5: a pair of overlapping test digits, both named by the two longest capsules, and each "
                  "redrawn from its own capsule in red and green over the input."),
)


def page_by_path(path: str) -> DashboardPage:
    """The table's entry of a page file ("pages/curves.py")."""
    for page in PAGE_TABLE:
        if page.path == path:
            return page
    raise KeyError(f"{path} is not in capsviz.dashboard.page_table.PAGE_TABLE")


def page_by_name(name: str) -> DashboardPage:
    """The table's entry of a page by its file's stem ("curves")."""
    return page_by_path(f"pages/{name}.py")


def default_page() -> DashboardPage:
    [page] = [page for page in PAGE_TABLE if page.default]
    return page
