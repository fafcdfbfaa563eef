"""Figures a journal would take: every figure kind, drawn with 1, 2 and 3 encodings and six models
(SNN, three DP-SNNs, ANN, classical), keeps every drawn text inside its canvas, uses 6.5-9.5 pt
type, and gives each legend key the colour of what it names; the ROC axes reach down to where
each DP ceiling bites. The checks are shown to fail on figures that break them."""

from __future__ import annotations

import math
from unittest import mock

import matplotlib
import pytest

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.collections import LineCollection, PathCollection, PolyCollection  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.markers import MarkerStyle  # noqa: E402
from matplotlib.patches import FancyBboxPatch, Patch  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from biospike import figures, report  # noqa: E402
from biospike.plan import plan_from_json  # noqa: E402
from tests.unit.test_report import build_fake_results, build_plan  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:More than 20 figures")  # 24 kept until the module ends

ENCODING_SETS = {1: ("delta",), 2: ("delta", "population"), 3: ("delta", "population", "rate")}
KINDS = report.FIGURES.names()
TOLERANCE_PX = 1.0


# ---------------------------------------------------------------------------------------------
# checks


def drawn_texts(fig) -> list[tuple[Text, object]]:
    """Every text the renderer actually draws (tick labels of ticks out of view are not), with its
    window extent after the layout ran."""
    seen = []
    original = Text.draw

    def draw(self, renderer):
        original(self, renderer)
        if self.get_visible() and self.get_text().strip():
            seen.append((self, self.get_window_extent(renderer)))

    with mock.patch.object(Text, "draw", draw):
        fig.canvas.draw()
    return seen


def clipped(fig, texts: list | None = None) -> list[str]:
    """Texts and legends that reach outside the figure canvas (``texts``: :func:`drawn_texts`,
    drawn anew when not given)."""
    box = fig.bbox
    out = []
    for text, ext in drawn_texts(fig) if texts is None else texts:
        if ext.x0 < box.x0 - TOLERANCE_PX or ext.x1 > box.x1 + TOLERANCE_PX or \
                ext.y0 < box.y0 - TOLERANCE_PX or ext.y1 > box.y1 + TOLERANCE_PX:
            out.append(f"text {text.get_text()!r} at x {ext.x0:.0f}..{ext.x1:.0f}, y {ext.y0:.0f}..{ext.y1:.0f} "
                       f"outside {box.width:.0f} x {box.height:.0f}")
    renderer = fig.canvas.get_renderer()
    for leg in legends(fig):
        ext = leg.get_window_extent(renderer)
        if ext.x0 < -TOLERANCE_PX or ext.x1 > box.x1 + TOLERANCE_PX or ext.y0 < -TOLERANCE_PX or ext.y1 > box.y1 + TOLERANCE_PX:
            out.append(f"legend {[t.get_text() for t in leg.get_texts()][:3]} outside the canvas")
    return out


def legends(fig) -> list:
    out = list(fig.legends)
    for ax in fig.axes:
        if ax.get_legend() is not None:
            out.append(ax.get_legend())
    return out


def _hex(c) -> str | None:
    try:
        rgba = matplotlib.colors.to_rgba(c)
    except ValueError:
        return None
    return None if rgba[3] == 0 else to_hex(rgba)


def _line_visible(line: Line2D) -> bool:
    return line.get_linestyle() not in ("None", "none", "", " ") and line.get_linewidth() > 0


def _marker(line: Line2D) -> str | None:
    m = line.get_marker()
    return None if m in (None, "None", "none", "", " ") else m


def plotted(fig) -> dict[str, set]:
    """Colours (and line styles) of what the axes draw: lines, marker faces, patches."""
    out = {"line": set(), "marker": set(), "patch": set(), "linestyle": set(), "marker_shape": set()}
    for ax in fig.axes:
        for line in ax.get_lines():
            if not line.get_visible():
                continue
            if _line_visible(line):
                out["line"].add(_hex(line.get_color()))
                out["linestyle"].add(str(line.get_linestyle()))
            if _marker(line):
                out["marker_shape"].add(str(_marker(line)))
                filled = MarkerStyle(_marker(line)).is_filled() and line.get_markerfacecolor() not in ("none", "None")
                out["marker"].add(_hex(line.get_markerfacecolor() if filled else line.get_color()))
        for coll in ax.collections:
            if isinstance(coll, LineCollection):
                out["line"] |= {_hex(c) for c in coll.get_colors()}
            elif isinstance(coll, PathCollection):
                out["marker"] |= {_hex(c) for c in coll.get_facecolors()}
                out["marker_shape"].add("scatter")
            elif isinstance(coll, PolyCollection):
                out["patch"] |= {_hex(c) for c in coll.get_facecolors()}
        for patch in ax.patches:
            out["patch"].add(_hex(patch.get_facecolor()))
    return out


def legend_colour_mismatches(fig) -> list[str]:
    """Legend keys whose colour no plotted element of the same kind has. A key in
    ``figures.KEY_COLOR`` stands for a line style or marker shape only: its line style must be
    drawn somewhere and its marker must be hollow."""
    drawn = plotted(fig)
    key = _hex(figures.KEY_COLOR)
    bad = []
    for leg in legends(fig):
        names = [t.get_text() for t in leg.get_texts()]
        for art in leg.findobj(lambda a: isinstance(a, Line2D | Patch | PathCollection)):
            if isinstance(art, FancyBboxPatch) or not art.get_visible() or art is leg.get_frame():
                continue
            if isinstance(art, Line2D):
                if _line_visible(art) and art.get_xydata().size:
                    c = _hex(art.get_color())
                    ok = c in drawn["line"] or (c == key and str(art.get_linestyle()) in drawn["linestyle"])
                    if not ok:
                        bad.append(f"line key {c} ({names})")
                if _marker(art):
                    filled = MarkerStyle(_marker(art)).is_filled() and art.get_markerfacecolor() not in ("none", "None")
                    c = _hex(art.get_markerfacecolor() if filled else art.get_color())
                    if filled and c not in drawn["marker"]:
                        bad.append(f"filled marker key {c} not among the plotted markers {drawn['marker']} ({names})")
                    if not filled and c not in drawn["line"] | drawn["marker"] | {key}:
                        bad.append(f"marker key {c} ({names})")
            elif isinstance(art, PathCollection):
                for c in {_hex(x) for x in art.get_facecolors()}:
                    if c not in drawn["marker"]:
                        bad.append(f"scatter key {c} ({names})")
            elif isinstance(art, Patch):
                c = _hex(art.get_facecolor())
                if c is not None and c not in drawn["patch"]:
                    bad.append(f"patch key {c} ({names})")
    return bad


# ---------------------------------------------------------------------------------------------
# figures of every kind at 1, 2 and 3 encodings


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    """One fake results tree per number of encodings: {n: (dataset plan, results)}."""
    out = {}
    for n, encs in ENCODING_SETS.items():
        raw = build_plan(encodings=encs, epsilons=("1", "3", "8"))
        raw = {"ds_a": raw["ds_a"]}
        results = build_fake_results(tmp_path_factory.mktemp(f"enc{n}"), raw)
        out[n] = (plan_from_json(raw)["ds_a"], results)
    return out


_CACHE: dict = {}


def draw(trees, n: int, kind: str):
    """(figure, its data, its drawn texts) of ``kind`` for the tree with ``n`` encodings, made
    once per module (drawing is the slow part)."""
    if (n, kind) not in _CACHE:
        dp, results = trees[n]
        data = report.FIGURES[kind].data("ds_a", dp, results, dict(report.DEFAULT_CFG))
        fig = getattr(figures, f"plot_{kind}")(data)
        _CACHE[(n, kind)] = (fig, data, drawn_texts(fig))
    return _CACHE[(n, kind)]


def teardown_module(module):  # noqa: ARG001
    for fig, _, _ in _CACHE.values():
        plt.close(fig)
    _CACHE.clear()


@pytest.mark.parametrize("n", sorted(ENCODING_SETS))
@pytest.mark.parametrize("kind", KINDS)
def test_nothing_is_clipped(trees, kind, n):
    fig, _, texts = draw(trees, n, kind)
    problems = clipped(fig, texts)
    assert not problems, f"{kind} with {n} encoding(s): " + "; ".join(problems[:5])


@pytest.mark.parametrize("n", sorted(ENCODING_SETS))
@pytest.mark.parametrize("kind", KINDS)
def test_legend_keys_have_the_colours_they_name(trees, kind, n):
    fig, _, _ = draw(trees, n, kind)
    bad = legend_colour_mismatches(fig)
    assert not bad, f"{kind} with {n} encoding(s): " + "; ".join(bad[:5])


@pytest.mark.parametrize("kind", KINDS)
def test_consistent_type_and_widths(trees, kind):
    """7-9 pt type (a little margin either side) in one family; one or two column widths
    (figures grow only in height, except the energy bars, which are sized by their count)."""
    for n in sorted(ENCODING_SETS):
        fig, _, texts = draw(trees, n, kind)
        sizes = {round(t.get_fontsize(), 1) for t, _ in texts}
        assert min(sizes) >= 6.5 and max(sizes) <= 9.5, (kind, n, sorted(sizes))
        families = {t.get_fontfamily()[0] for t, _ in texts}
        assert families == {"DejaVu Sans"}, (kind, families)
        width = fig.get_size_inches()[0]
        assert figures.SINGLE_COLUMN_IN - 0.01 <= width <= figures.DOUBLE_COLUMN_IN + 0.15, (kind, n, width)


def test_roc_shows_each_dp_ceiling_where_it_bites(trees):
    """At epsilon 8 the ceiling e^eps FPR + delta is below 1 only for FPR < ~3e-4: the axis goes
    that low, and each DP model's dotted ceiling is drawn there below TPR 1."""
    fig, data, _ = draw(trees, 2, "roc")
    for ax, enc in zip(fig.axes, data["encodings"], strict=True):
        ceilings = [c["ceiling"] for c in data["encodings"][enc].values() if c.get("ceiling")]
        assert {round(e) for e, _ in ceilings} == {1, 3, 8}
        lo = ax.get_xlim()[0]
        assert ax.get_xscale() == "log"
        dotted = [line for line in ax.get_lines() if line.get_linestyle() == ":"]
        assert len(dotted) == len(ceilings)
        for line, (eps, delta) in zip(dotted, ceilings, strict=True):
            bite = (1 - delta) / math.exp(eps)
            assert lo < bite / 2, (eps, lo)
            x, y = line.get_xdata(), line.get_ydata()
            assert ((x >= lo) & (x < bite) & (y < 0.99)).sum() > 10, f"ceiling at ε={eps} not visible where it bites"


def test_roc_draws_the_attack_the_summary_names(trees):
    """One rule: the ROC figure's attack per model is the summary table's strongest attack."""
    dp, results = trees[2]
    summary = report.build_summary({"ds_a": dp}, results)
    _, data, _ = draw(trees, 2, "roc")
    named = {(r["encoding"], r["model"]): r["attack"] for r in summary["rows"] if r["attack"]}
    drawn = {(enc, t): c["attack"] for enc, e in data["encodings"].items() for t, c in e.items()}
    assert drawn == named
    for (enc, t), attack in drawn.items():  # and it is the maximum the permutation test is about
        att = report.Doc.load(results / "ds_a" / enc / t / "attack" / "summary.json")
        assert attack == att.data["strongest_window"]["attack"]


# ---------------------------------------------------------------------------------------------
# the checks can fail


def test_checks_fail_on_a_clipped_figure_and_fit_to_canvas_fixes_it():
    with plt.rc_context(figures.RC):
        fig = plt.figure(figsize=(3.5, 2.5))
        ax = fig.subplots()
        ax.plot([0, 1], [0, 1], color="#0072B2", label="a model with a rather long legend entry")
        ax.plot([0, 1], [1, 0], color="#D55E00", label="another model with an equally long entry")
        fig.suptitle("a suptitle far too long to fit a single column figure of three and a half inches", x=0.02,
                     ha="left")
        figures.legend(fig, *ax.get_legend_handles_labels(), loc="outside lower center", ncol=2)
        assert clipped(fig), "the check must see the overflowing suptitle and legend"
        figures.fit_to_canvas(fig)
        assert not clipped(fig)
        plt.close(fig)


def test_colour_check_fails_on_a_wrong_key():
    """A filled grey marker keying coloured points (the old privacy-utility legend) is caught."""
    fig = plt.figure()
    ax = fig.subplots()
    ax.scatter([1], [0.5], color="#D55E00")
    ax.plot([1, 2], [0.5, 0.6], color="#444444")
    ax.legend([Line2D([], [], color="#444444", marker="o")], ["delta encoding"])
    assert legend_colour_mismatches(fig)
    ax.legend([Line2D([], [], ls="", marker="o", mfc="#D55E00")], ["DP-SNN ε=8"])
    assert not legend_colour_mismatches(fig)
    plt.close(fig)
