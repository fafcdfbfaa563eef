"""Paper-style figures for the report (matplotlib, Agg backend; PNG and SVG).

Each ``plot_<kind>(data) -> Figure`` takes the plain data gathered by
:mod:`biospike.report` and draws it; no file reading here. Colours are fixed per model across
every figure (Okabe-Ito palette, colour-blind safe), line styles per encoding.

House style, so a journal can take the files as they are: one or two column widths
(:data:`SINGLE_COLUMN_IN`, :data:`DOUBLE_COLUMN_IN`), one font family at 7-9 pt (:data:`RC`;
in-plot annotations :data:`ANNOTATION_PT`), and after drawing, :func:`fit_to_canvas` wraps titles
and legend labels, narrows legends and, only if that is not enough, grows the figure until every
text lies inside the canvas. Legend keys carry the colour of what they name; keys of a line style
or marker shape alone are drawn in :data:`KEY_COLOR` (markers hollow), which colours no data point
or model curve (only the neutral connecting lines such a key stands for).
"""

from __future__ import annotations

import functools
import math
import textwrap
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from biospike.registry import OKABE_ITO  # noqa: E402
from biospike.store import atomic_path  # noqa: E402
from biospike.targets import color, label, sort_targets  # noqa: E402

__all__ = [
    "ANNOTATION_PT", "ATTACK_COLORS", "DOUBLE_COLUMN_IN", "ENCODING_STYLES", "HARDWARE_STYLES", "KEY_COLOR", "RC",
    "SINGLE_COLUMN_IN", "encoding_style", "fit_to_canvas", "hardware_label", "legend", "model_color", "model_label",
    "new_figure", "roc_floor",
    "plot_attack_vs_T", "plot_confusion", "plot_energy", "plot_latency_accuracy", "plot_leakage_utility",
    "plot_privacy_utility", "plot_roc",
    "plot_signals", "plot_training", "save", "styled",
]

SINGLE_COLUMN_IN = 3.5  # figure widths of a one- and a two-column journal layout (inches)
DOUBLE_COLUMN_IN = 7.0
ANNOTATION_PT = 7  # numbers written inside plots (cell counts, bar values)
KEY_COLOR = "#555555"  # legend keys of a line style or marker shape alone (and neutral connecting lines)
CHANCE_COLOR = "#999999"

ENCODING_STYLES = {"delta": ("-", "o"), "population": ("--", "s"), "rate": (":", "^"), "ttfs": ("-.", "D"),
                   "poisson_burst": ((0, (1, 1)), "v"), "delayed_burst": ((0, (5, 1, 1, 1)), "P")}
_EXTRA_STYLES = (("-.", "D"), ((0, (1, 1)), "v"), ((0, (5, 1, 1, 1)), "P"))
HARDWARE_STYLES = ("-", "--", ":", "-.", (0, (5, 1)), (0, (1, 1)), (0, (3, 1, 1, 1, 1, 1)))

RC = {
    "font.family": "DejaVu Sans", "font.size": 8, "axes.titlesize": 8.5, "axes.labelsize": 8,
    "figure.titlesize": 9, "legend.fontsize": 7.5, "legend.title_fontsize": 7.5,
    "xtick.labelsize": 7.5, "ytick.labelsize": 7.5, "axes.spines.top": False, "axes.spines.right": False,
    "axes.grid": True, "grid.alpha": 0.25, "grid.linewidth": 0.6, "lines.linewidth": 1.3,
    "legend.frameon": False, "figure.dpi": 100, "svg.hashsalt": "biospike", "svg.fonttype": "none",
    "figure.constrained_layout.use": True,
}


def model_color(target: str, all_targets: Sequence[str] = ()) -> str:
    """Fixed colour per model kind; lever variants (DP-SNNs) by their value's rank (biospike.targets)."""
    return color(target, all_targets)


def encoding_style(encoding: str, encodings: Sequence[str] = ()) -> tuple[Any, str]:
    """(line style, marker) of an encoding: fixed for the known ones, then by position."""
    if encoding in ENCODING_STYLES:
        return ENCODING_STYLES[encoding]
    others = [e for e in encodings if e not in ENCODING_STYLES]
    i = others.index(encoding) if encoding in others else 0
    return _EXTRA_STYLES[i % len(_EXTRA_STYLES)]


def model_label(target: str) -> str:
    """The model's display name (biospike.targets.label: "SNN", "DP-SNN ε=8", ...)."""
    return label(target)


def hardware_label(hw: str) -> str:
    """Display name of an edge target profile."""
    names = {"loihi": "Loihi", "loihi2": "Loihi 2", "spinnaker2": "SpiNNaker 2", "spinnaker": "SpiNNaker",
             "xylo": "Xylo", "xylo_audio2": "Xylo Audio 2", "speck": "Speck", "truenorth": "TrueNorth",
             "mcu": "MCU", "cortex_m4": "Cortex-M4\n(MCU, ANN)"}
    return names.get(hw.lower(), hw)


def styled(plot: Callable[[Mapping[str, Any]], Figure]) -> Callable[[Mapping[str, Any]], Figure]:
    """Run a plot function inside the house style (rc values are read when artists are made),
    then fit its texts into the canvas (:func:`fit_to_canvas`)."""

    @functools.wraps(plot)
    def wrapper(data: Mapping[str, Any]) -> Figure:
        with plt.rc_context(RC):
            fig = plot(data)
            fit_to_canvas(fig)
            return fig

    return wrapper


def new_figure(width_in: float, height_in: float) -> Figure:
    """An empty figure of the house style."""
    with plt.rc_context(RC):
        return plt.figure(figsize=(width_in, height_in))


def _all_axes(fig: Figure) -> list:
    """The figure's axes with their child axes (secondary axes)."""
    out = []
    for ax in fig.axes:
        out.append(ax)
        out += list(getattr(ax, "child_axes", []))
    return out


def _wrap(text: Any, limit_px: float, width_px: float) -> bool:
    """Re-wrap a text artist so it is at most ``limit_px`` wide (its current width ``width_px``);
    False when it cannot get narrower (one long word)."""
    old = text.get_text()
    lines = old.split("\n")
    longest = max(len(line) for line in lines)
    chars = max(6, int(longest * limit_px / max(width_px, 1.0) * 0.95))
    if chars >= longest:
        chars = longest - 1
    new = "\n".join(textwrap.fill(line, chars, break_long_words=False, break_on_hyphens=False) or line
                    for line in lines)
    if new == old:
        return False
    text.set_text(new)
    return True


def _cell_px(fig: Figure, ax: Any) -> tuple[float, float]:
    """Width and height of the grid cell an axes was given (its share of the figure), in pixels;
    the axes' own size for axes outside a grid (colour bars). Texts and keys that belong to one
    panel are fitted to this share, which does not shrink as the layout squeezes the axes."""
    spec = ax.get_subplotspec() if hasattr(ax, "get_subplotspec") else None
    if spec is None and getattr(ax, "_parent_axes", None) is not None:  # secondary axes
        spec = ax._parent_axes.get_subplotspec()
    if spec is None:
        return ax.bbox.width, ax.bbox.height
    grid = spec.get_gridspec()
    rows, cols = spec.rowspan, spec.colspan
    return (fig.bbox.width * len(cols) / grid.ncols, fig.bbox.height * len(rows) / grid.nrows)


def _titles(ax: Any) -> list:
    return [t for t in (ax.title, getattr(ax, "_left_title", None), getattr(ax, "_right_title", None)) if t is not None]


def fit_to_canvas(fig: Figure, pad_px: float = 2.0, max_rounds: int = 12) -> Figure:
    """Make every text of ``fig`` lie inside its canvas, at any number of panels and legend
    entries: draw (constrained layout), then wrap a title wider than its axes (a suptitle wider
    than the figure), use fewer legend columns (then wrap legend labels) where a legend is wider
    than the figure or a legend under one panel wider than that panel, and grow the figure where
    its content still overflows. Repeats until nothing changes."""
    for _ in range(max_rounds):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        width = fig.bbox.width
        changed = False
        legends = [(leg, None) for leg in fig.legends]
        legends += [(ax.get_legend(), ax) for ax in _all_axes(fig) if ax.get_legend() is not None]
        for leg, ax in legends:
            box = leg.get_window_extent(renderer)
            limit = width - 2 * pad_px
            if ax is not None and not _inside(box, ax.bbox):  # a key outside its panel: within the panel's share
                limit = min(limit, _cell_px(fig, ax)[0] - 4 * pad_px)
            if box.width <= limit:
                continue
            if leg._ncols > 1 and hasattr(leg, "_fit_args"):  # a legend cannot re-flow: make it anew
                _rebuild_legend(leg, leg._ncols - 1)
                changed = True
            else:
                for text in leg.get_texts():
                    tb = text.get_window_extent(renderer)
                    room = limit - (box.width - tb.width)
                    if tb.width > room > 0:
                        changed |= _wrap(text, room, tb.width)
        texts = []
        if fig._suptitle is not None:
            texts.append((fig._suptitle, width - 2 * pad_px))
        texts += [(t, width - 2 * pad_px) for t in fig.texts]
        for ax in _all_axes(fig):
            if not ax.get_visible():
                continue
            cell_w, cell_h = _cell_px(fig, ax)
            texts += [(t, cell_w - 4 * pad_px) for t in _titles(ax)]
            texts += [(ax.xaxis.label, cell_w - 4 * pad_px), (ax.yaxis.label, cell_h - 4 * pad_px)]
        for text, limit in texts:
            if not text.get_visible() or not text.get_text():
                continue
            tb = text.get_window_extent(renderer)
            extent = tb.height if abs(text.get_rotation() % 180 - 90) < 1 else tb.width  # rotated: its height
            if extent > limit + pad_px:
                changed |= _wrap(text, limit, extent)
        if changed:
            continue
        tight = fig.get_tightbbox(renderer)  # inches: everything drawn
        w_in, h_in = fig.get_size_inches()
        pad_in = pad_px / fig.dpi
        grow_w = max(0.0, -tight.x0 + pad_in) + max(0.0, tight.x1 - w_in + pad_in)
        grow_h = max(0.0, -tight.y0 + pad_in) + max(0.0, tight.y1 - h_in + pad_in)
        if grow_w > 1e-3 or grow_h > 1e-3:
            fig.set_size_inches(w_in + grow_w * 1.05, h_in + grow_h * 1.05)
            continue
        break
    return fig


def _inside(box: Any, outer: Any) -> bool:
    return box.x0 >= outer.x0 - 1 and box.x1 <= outer.x1 + 1 and box.y0 >= outer.y0 - 1 and box.y1 <= outer.y1 + 1


def save(fig: Figure, paths: Sequence[str | Path], dpi: int = 200) -> None:
    """Write the figure to each path (format from the suffix), atomically, then close it.
    Metadata that changes between runs (dates) is left out so reruns give the same files."""
    with plt.rc_context(RC):
        for path in paths:
            path = Path(path)
            fmt = path.suffix.lstrip(".").lower()
            meta = {"Date": None} if fmt == "svg" else {"Software": None} if fmt == "png" else {}
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format=fmt, dpi=dpi, metadata=meta)
    plt.close(fig)


def legend(parent: Any, handles: list, labels: list[str], **kwargs: Any) -> Any:
    """``parent.legend(handles, labels, **kwargs)`` (a figure or an axes), remembering its
    arguments so :func:`fit_to_canvas` can make it again with fewer columns."""
    leg = parent.legend(handles, labels, **kwargs)
    leg._fit_args = (parent, list(handles), list(labels), dict(kwargs))
    return leg


def _rebuild_legend(leg: Any, ncol: int) -> Any:
    parent, handles, labels, kwargs = leg._fit_args
    leg.remove()
    return legend(parent, handles, labels, **{**kwargs, "ncol": ncol})


def _legend_below(fig: Figure, handles: list, labels: list[str], ncol: int | None = None) -> None:
    """A figure legend under the panels (fewer columns later if it does not fit the width)."""
    if handles:
        legend(fig, handles, labels, loc="outside lower center", ncol=ncol or min(len(handles), 5),
               handlelength=1.6, columnspacing=1.2, handletextpad=0.5)


# ---------------------------------------------------------------------------------------------
# signal + spike rasters
# ---------------------------------------------------------------------------------------------


def _spike_channel_groups(spike_names: Sequence[str], input_names: Sequence[str]) -> dict[str, list[int]]:
    """Spike channel indices per input channel, by name prefix ("C3+", "C3/p04" -> "C3")."""
    groups: dict[str, list[int]] = {c: [] for c in input_names}
    by_length = sorted(input_names, key=len, reverse=True)
    for i, name in enumerate(spike_names):
        for ch in by_length:
            if name == ch or (name.startswith(ch) and not name[len(ch)].isalnum()):
                groups[ch].append(i)
                break
    return groups


def _polarity(name: str) -> int:
    low = name.lower()
    if name.endswith("+") or low.endswith("up") or "/up" in low or "_up" in low:
        return 1
    if name.endswith("-") or low.endswith("down") or "/down" in low or "_down" in low or low.endswith("dn"):
        return -1
    return 0


@styled
def plot_signals(data: Mapping[str, Any]) -> Figure:
    """Raw (preprocessed) signal of one window above its spike rasters, one per encoding."""
    signal = np.asarray(data["signal"], dtype=float)
    names = list(data["channel_names"])
    encs = data["encodings"]
    n_rows = 1 + len(encs)
    # raster panels grow with the rows they show (population codes have many neurons per channel)
    shown_rows = [max(1, sum(len(v) for v in _spike_channel_groups(e["channel_names"], names).values())
                      or min(np.asarray(e["spikes"]).shape[1], 48)) for e in encs.values()]
    ratios = [1.3] + [min(2.2, max(1.0, n / 14)) for n in shown_rows]
    fig = new_figure(DOUBLE_COLUMN_IN, 0.5 + 1.1 * ratios[0] + 1.3 * sum(ratios[1:]))
    with plt.rc_context(RC):
        axes = fig.subplots(n_rows, 1, sharex=True, gridspec_kw={"height_ratios": ratios})
    axes = np.atleast_1d(axes)
    t_sig = np.arange(signal.shape[1]) / float(data["fs_hz"])
    ax = axes[0]
    # stack channels, each scaled to its own robust range, so shapes are comparable
    offsets = []
    for k, x in enumerate(signal):
        scale = np.percentile(np.abs(x - np.median(x)), 99) or 1.0
        off = -2.2 * k
        offsets.append(off)
        ax.plot(t_sig, (x - np.median(x)) / scale + off, color="#333333", lw=0.8)
    ax.set_yticks(offsets, names)
    ax.set_ylabel("channel\n(scaled)")
    ax.grid(False, axis="y")
    modality = str(data.get("modality", "")).upper()
    ax.set_title(f"{data['dataset']}: {modality} window {data['window_index']} (class '{data['label']}')",
                 loc="left")
    t_max = t_sig[-1] if len(t_sig) else 0.0
    for ax, (enc, e) in zip(axes[1:], encs.items(), strict=True):
        spikes = np.asarray(e["spikes"])  # (T, C')
        dt_s = float(e["dt_s"])
        groups = _spike_channel_groups(e["channel_names"], names)
        shown = [i for ch in names for i in groups[ch]]
        if not shown:  # names do not follow the "<channel><sep>..." convention: show the first ones
            shown = list(range(min(spikes.shape[1], 48)))
            group_ticks = []
        else:
            group_ticks, row = [], 0
            for ch in names:
                n = len(groups[ch])
                if n:
                    group_ticks.append((row + (n - 1) / 2, ch))
                    if row:
                        ax.axhline(row - 0.5, color="#bbbbbb", lw=0.6)
                    row += n
        sub = spikes[:, shown]
        t_idx, c_idx = np.nonzero(sub)
        pol = np.array([_polarity(e["channel_names"][shown[c]]) for c in c_idx]) if len(c_idx) else np.zeros(0)
        colors = np.where(pol > 0, OKABE_ITO["blue"], np.where(pol < 0, OKABE_ITO["vermillion"], "#222222"))
        # ticks 0.8 of a row high in data units, so rows stay apart however many neurons are shown
        ax.vlines(t_idx * dt_s + dt_s / 2, c_idx - 0.4, c_idx + 0.4, colors=colors,
                  linewidth=1.0 if spikes.shape[0] <= 300 else 0.6)
        ax.set_ylim(len(shown) - 0.5, -0.5)
        if group_ticks:
            ax.set_yticks([p for p, _ in group_ticks], [c for _, c in group_ticks])
        ax.grid(False, axis="y")
        rate_hz = sub.sum() / max(len(shown), 1) / max(spikes.shape[0] * dt_s, 1e-12)
        ax.set_ylabel(f"{enc}\ninput neuron")
        legend = [Line2D([], [], color=OKABE_ITO["blue"], marker="|", ls="", label="UP"),
                  Line2D([], [], color=OKABE_ITO["vermillion"], marker="|", ls="", label="DOWN")] \
            if (pol != 0).any() else []
        ax.set_title(f"{enc}: {int(sub.sum())} spikes from {len(shown)} of {spikes.shape[1]} input neurons, "
                     f"mean {rate_hz:.3g} Hz each; T = {spikes.shape[0]} steps × {dt_s * 1e3:.3g} ms",
                     loc="left")
        if legend:
            ax.legend(handles=legend, loc="upper left", bbox_to_anchor=(1.0, 1.0), ncol=1,
                      handletextpad=0.2, borderaxespad=0.2, frameon=False)
        t_max = max(t_max, spikes.shape[0] * dt_s)
    axes[-1].set_xlim(0, t_max)
    axes[-1].set_xlabel("time (s)")
    return fig


# ---------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------


def _curve_x(cols: Mapping[str, list[float]]) -> tuple[np.ndarray, str]:
    for key in ("epoch", "step"):
        if key in cols:
            return np.asarray(cols[key]), key
    n = len(next(iter(cols.values()))) if cols else 0
    return np.arange(1, n + 1), "epoch"


def _pick(cols: Mapping[str, Any], prefer: Sequence[str], contains: str) -> list[str]:
    found = [c for c in prefer if c in cols]
    return found or [c for c in cols if contains in c.lower()][:2]


@styled
def plot_training(data: Mapping[str, Any]) -> Figure:
    """Loss (train solid, validation dashed) and validation metric per epoch, per encoding."""
    curves = data["curves"]
    encs = list(curves)
    all_targets = sorted({t for c in curves.values() for t in c})
    fig = new_figure(DOUBLE_COLUMN_IN, 0.6 + 2.1 * len(encs))
    with plt.rc_context(RC):
        axes = np.atleast_2d(fig.subplots(len(encs), 2, squeeze=False))
    handles: dict[str, Any] = {}
    metric_label = "validation score"
    for r, enc in enumerate(encs):
        ax_loss, ax_acc = axes[r]
        for t, cols in curves[enc].items():
            if not cols or len(next(iter(cols.values()))) < 2:
                continue  # e.g. the classical baseline: no epochs
            x, xname = _curve_x(cols)
            color = model_color(t, all_targets)
            for name in _pick(cols, ("train_loss", "val_loss"), "loss"):
                ls = "--" if name.startswith("val") else "-"
                line, = ax_loss.plot(x, cols[name], color=color, ls=ls, lw=1.2)
                handles.setdefault(t, line)
            metric = _pick(cols, ("val_balanced_accuracy", "val_bal_acc", "val_accuracy", "val_acc"), "acc")
            for name in metric[:1]:
                metric_label = name.replace("val_", "validation ").replace("_", " ")
                ax_acc.plot(x, cols[name], color=color, lw=1.2)
        ax_loss.set_yscale("log")  # a diverging DP validation loss must not flatten the others
        ax_loss.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax_loss.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax_loss.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax_loss.set_ylabel(f"{enc}\nloss (cross-entropy, log)")
        ax_acc.set_ylabel(metric_label)
        for ax in (ax_loss, ax_acc):
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        if r == len(encs) - 1:
            ax_loss.set_xlabel("epoch")
            ax_acc.set_xlabel("epoch")
        if r == 0:
            ax_loss.set_title(f"{data['dataset']}: training loss", loc="left")
            ax_acc.set_title("validation score", loc="left")
    labels = [model_label(t) for t in handles]
    style = [Line2D([], [], color=KEY_COLOR, ls="-", label="train"),
             Line2D([], [], color=KEY_COLOR, ls="--", label="validation")]
    _legend_below(fig, [Line2D([], [], color=h.get_color()) for h in handles.values()] + style,
                  labels + ["train", "validation"], ncol=min(len(labels) + 2, 4))
    return fig


# ---------------------------------------------------------------------------------------------
# confusion matrices
# ---------------------------------------------------------------------------------------------


@styled
def plot_confusion(data: Mapping[str, Any]) -> Figure:
    """Row-normalised test confusion matrices (recall per true class), counts annotated."""
    encs, targets = list(data["encodings"]), list(data["targets"])
    names = list(data["class_names"])
    k = len(names)
    cell_in = 0.35 if k <= 5 else 0.22
    panel = max(1.45, cell_in * k + 0.55)
    rotate = k > 3
    tick_in = 0.06 * max(len(n) for n in names) if rotate else 0.15  # room for rotated class names
    width_in = min(0.9 + panel * len(targets), DOUBLE_COLUMN_IN)
    side_in = min(panel, (width_in - 1.5) / len(targets))  # square panels: the width decides their size
    fig = new_figure(width_in, 0.45 + (side_in + 0.45) * len(encs) + tick_in)
    with plt.rc_context(RC):
        axes = np.atleast_2d(fig.subplots(len(encs), len(targets), squeeze=False))
    image = None
    for r, enc in enumerate(encs):
        for c, t in enumerate(targets):
            ax = axes[r, c]
            ax.grid(False)
            entry = data["matrices"].get((enc, t))
            if entry is None:
                ax.set_axis_off()
                continue
            mat = np.asarray(entry["confusion"], dtype=float)
            rows = mat.sum(axis=1, keepdims=True)
            norm = np.divide(mat, rows, out=np.zeros_like(mat), where=rows > 0)
            image = ax.imshow(norm, cmap="cividis", vmin=0, vmax=1)
            if k <= 6:
                for i in range(k):
                    for j in range(k):
                        ax.text(j, i, f"{int(mat[i, j])}", ha="center", va="center", fontsize=ANNOTATION_PT,
                                color="black" if norm[i, j] > 0.55 else "white")
            ticks = names if k <= 8 else [n if i % max(1, k // 8) == 0 else "" for i, n in enumerate(names)]
            ax.set_xticks(range(k), ticks if r == len(encs) - 1 else [""] * k, rotation=45 if rotate else 0,
                          ha="right" if rotate else "center", rotation_mode="anchor")
            ax.set_yticks(range(k), ticks if c == 0 else [""] * k)
            for spine in ax.spines.values():
                spine.set_visible(False)
            bal = entry.get("balanced_accuracy")
            title = model_label(t) + (f"\nbal. acc. {bal:.2f}" if bal is not None else "")
            ax.set_title(title, color=model_color(t, targets))
            if c == 0:
                ax.set_ylabel(f"{enc}\ntrue class")
            if r == len(encs) - 1:
                ax.set_xlabel("predicted")
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label="fraction of true class")
    fig.suptitle(f"{data['dataset']}: test confusion matrices", x=0.02, ha="left")
    return fig


# ---------------------------------------------------------------------------------------------
# privacy-utility
# ---------------------------------------------------------------------------------------------


def _energy_axis(ax: Any, energies_j: Sequence[float]) -> None:
    """An energy axis with SI-prefixed ticks: logarithmic (1-2-5 steps) when the values span a
    factor of 10 or more, else linear (a log axis over a narrow range crowds its labels)."""
    from matplotlib.ticker import EngFormatter, LogLocator, MaxNLocator, NullFormatter

    lo, hi = min(energies_j), max(energies_j)
    if hi >= 10 * lo:
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0), numticks=5))
        ax.xaxis.set_minor_formatter(NullFormatter())
    else:
        pad = 0.1 * (hi - lo) if hi > lo else 0.05 * hi
        ax.set_xlim(lo - pad, hi + pad)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4, min_n_ticks=2))
    ax.xaxis.set_major_formatter(EngFormatter(unit="J", places=None, sep=" "))


@styled
def plot_leakage_utility(data: Mapping[str, Any]) -> Figure:
    """The privacy-utility-cost view, three panels, one point per attacked model in its colour,
    one marker per encoding, 95% CIs as bars: (a) the strongest attack's AUC against test balanced
    accuracy, the models of one kind (early-stopped, trained to convergence, DP, a defense) joined
    in order of accuracy, so families can be compared at matched accuracy; (b) its TPR at 1% FPR
    against the same accuracy; (c) its AUC against the dynamic energy per inference on one edge
    target (log axis; spiking models the target runs, a query-time defense at its base network's
    energy, hollow). AUC 0.5 (no leakage) dashed, chance accuracy and TPR = FPR dotted."""
    from biospike.targets import parse

    hw = data.get("hardware")

    def has_energy(p: Mapping[str, Any]) -> bool:
        return p.get("energy_j") is not None and p["energy_j"] > 0

    with_energy = bool(hw) and any(has_energy(p) for pts in data["encodings"].values() for p in pts)
    n_panels = 3 if with_energy else 2
    fig = new_figure(DOUBLE_COLUMN_IN, 2.9)
    with plt.rc_context(RC):
        axes = fig.subplots(1, n_panels)
    ax_auc, ax_tpr = axes[0], axes[1]
    encs = list(data["encodings"])
    all_targets = sorted({p["target"] for pts in data["encodings"].values() for p in pts})
    handles, labels = [], []
    shown: dict[str, str] = {}
    hollow_drawn = False

    def draw(ax: Any, p: Mapping[str, Any], x: float, x_ci: Any, y: float, y_ci: Any, marker: str,
             hollow: bool = False) -> None:
        c = model_color(p["target"], all_targets)
        xerr = yerr = None
        if x_ci:
            xerr = [[max(0.0, x - x_ci[0])], [max(0.0, x_ci[1] - x)]]
        if y_ci:
            yerr = [[max(0.0, y - y_ci[0])], [max(0.0, y_ci[1] - y)]]
        ax.errorbar(x, y, xerr=xerr, yerr=yerr, color=c, lw=0.7, capsize=1.5, ls="", zorder=2)
        # a hollow marker (a defense at its base network's energy) must not hide the base's point
        ax.scatter(x, y, marker=marker, s=30, zorder=3 if hollow else 4, facecolor="none" if hollow else c,
                   edgecolor=c if hollow else "white", linewidth=0.9 if hollow else 0.6)

    for enc in encs:
        pts = data["encodings"][enc]
        ls, marker = encoding_style(enc, encs)
        for kind in sorted({parse(p["target"]).kind.name for p in pts}):
            fam = sorted((p for p in pts if parse(p["target"]).kind.name == kind), key=lambda p: p["balanced_accuracy"])
            if len(fam) > 1:
                ax_auc.plot([p["balanced_accuracy"] for p in fam], [p["auc"] for p in fam], color=model_color(kind),
                            ls=ls, lw=0.8, alpha=0.6, zorder=1)
        for p in pts:
            acc, acc_ci = p["balanced_accuracy"], p.get("balanced_accuracy_ci")
            draw(ax_auc, p, acc, acc_ci, p["auc"], p.get("auc_ci"), marker)
            if p.get("tpr_at_1pct_fpr") is not None:
                draw(ax_tpr, p, acc, acc_ci, p["tpr_at_1pct_fpr"], p.get("tpr_ci"), marker)
            if with_energy and has_energy(p):
                draw(axes[2], p, p["energy_j"], None, p["auc"], p.get("auc_ci"), marker, hollow=p.get("energy_of_base"))
                hollow_drawn |= bool(p.get("energy_of_base"))
            shown.setdefault(p["target"], model_color(p["target"], all_targets))
        if len(encs) > 1:
            handles.append(Line2D([], [], color=KEY_COLOR, ls=ls, marker=marker, mfc="none", mec=KEY_COLOR, ms=5))
            labels.append(f"{enc} encoding")
    for t in sort_targets(shown):
        handles.append(Line2D([], [], ls="", marker="o", mfc=shown[t], mec="white", ms=6))
        labels.append(model_label(t))
    for ax in (ax_auc, *(axes[2:] if with_energy else ())):
        ax.axhline(0.5, color=CHANCE_COLOR, lw=0.8, ls="--")
    handles.append(Line2D([], [], color=CHANCE_COLOR, lw=0.8, ls="--"))
    labels.append("AUC 0.5 (no leakage)")
    ax_tpr.axhline(0.01, color=CHANCE_COLOR, lw=0.8, ls=":")
    if data.get("n_classes"):
        for ax in (ax_auc, ax_tpr):
            ax.axvline(1.0 / data["n_classes"], color=CHANCE_COLOR, lw=0.8, ls=":")
        handles.append(Line2D([], [], color=CHANCE_COLOR, lw=0.8, ls=":"))
        labels.append(f"chance: accuracy 1/{data['n_classes']}, TPR = FPR")
    ax_auc.set_xlabel("balanced accuracy (test)")
    ax_auc.set_ylabel(f"attack AUC ({data['level']}, strongest)")
    ax_auc.set_title("(a) leakage vs utility", loc="left")
    ax_tpr.set_xlabel("balanced accuracy (test)")
    ax_tpr.set_ylabel("TPR at 1% FPR")
    ax_tpr.set_title("(b) low-FPR leakage vs utility", loc="left")
    if with_energy:
        _energy_axis(axes[2], [p["energy_j"] for pts in data["encodings"].values() for p in pts if has_energy(p)])
        axes[2].set_xlabel("dynamic energy / inference")
        axes[2].set_ylabel("attack AUC (strongest)")
        axes[2].set_title(f"(c) leakage vs cost on {hardware_label(hw)}", loc="left")
        if hollow_drawn:
            handles.append(Line2D([], [], ls="", marker="o", mfc="white", mec=KEY_COLOR, ms=5))
            labels.append("query-time defense: its base network's energy")
    fig.suptitle(f"{data['dataset']}: privacy, utility and cost per model")
    _legend_below(fig, handles, labels, ncol=3)
    return fig


@styled
def plot_privacy_utility(data: Mapping[str, Any]) -> Figure:
    """Balanced accuracy of each DP-SNN against its accounted epsilon (one colour per DP model,
    one marker shape and connecting line style per encoding); non-private SNN and ANN as
    horizontal lines in their colours (line style per encoding), chance dotted."""
    fig = new_figure(SINGLE_COLUMN_IN, 3.3)
    with plt.rc_context(RC):
        ax = fig.subplots()
    encs = list(data["encodings"])
    all_targets = sorted({p["target"] for e in data["encodings"].values() for p in e["points"]})
    eps_all = [p["epsilon"] for e in data["encodings"].values() for p in e["points"] if p["epsilon"]]
    handles, labels = [], []
    units = set()
    shown_targets: dict[str, str] = {}
    for enc in encs:
        e = data["encodings"][enc]
        ls, marker = encoding_style(enc, encs)
        pts = [p for p in e["points"] if p["epsilon"] is not None and p["balanced_accuracy"] is not None]
        if e.get("unit"):
            units.add(e["unit"])
        if pts:
            ax.plot([p["epsilon"] for p in pts], [p["balanced_accuracy"] for p in pts], color=KEY_COLOR,
                    ls=ls, lw=1.0, zorder=1)
            for p in pts:
                c = model_color(p["target"], all_targets)
                ax.scatter(p["epsilon"], p["balanced_accuracy"], color=c, marker=marker, s=30, zorder=3,
                           edgecolor="white", linewidth=0.6)
                shown_targets.setdefault(p["target"], c)
        for t, value in e["lines"].items():
            if value is not None:
                ax.axhline(value, color=model_color(t), ls=ls, lw=1.2, zorder=2)
        if len(encs) > 1 or pts:  # the encoding's key: line style and (hollow) marker shape
            handles.append(Line2D([], [], color=KEY_COLOR, ls=ls, marker=marker, mfc="none", mec=KEY_COLOR, ms=5))
            labels.append(f"{enc} encoding")
    for t in sort_targets(shown_targets):
        handles.append(Line2D([], [], ls="", marker="o", mfc=shown_targets[t], mec="white", ms=6))
        labels.append(model_label(t))
    for t in ("snn", "ann"):
        if any(t in e["lines"] for e in data["encodings"].values()):
            handles.append(Line2D([], [], color=model_color(t), lw=1.2))
            labels.append(f"{model_label(t)} (no DP)")
    if data.get("n_classes"):
        ax.axhline(1.0 / data["n_classes"], color=CHANCE_COLOR, lw=0.8, ls=":")
        handles.append(Line2D([], [], color=CHANCE_COLOR, lw=0.8, ls=":"))
        labels.append(f"chance (1/{data['n_classes']})")
    if eps_all:
        lo, hi = min(eps_all), max(eps_all)
        ax.set_xlim(lo / 1.6, hi * 1.6)
    ax.set_xscale("log")
    if eps_all:  # ticks at the accounted epsilons (one per cluster: encodings give nearly equal ones)
        ax.set_xticks(_epsilon_ticks(eps_all))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:.3g}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    unit = "/".join(sorted(units)) or "record"
    ax.set_xlabel(f"privacy budget ε ({unit}-level, log scale)")
    ax.set_ylabel("balanced accuracy (test)")
    ax.set_title(f"{data['dataset']}: privacy-utility trade-off", loc="left")
    _legend_below(fig, handles, labels, ncol=2)
    return fig


# ---------------------------------------------------------------------------------------------
# membership inference
# ---------------------------------------------------------------------------------------------

def _epsilon_ticks(values: Sequence[float], ratio: float = 1.25) -> list[float]:
    """One tick per cluster of epsilons within a factor ``ratio`` of each other (their median)."""
    groups: list[list[float]] = []
    for v in sorted(set(values)):
        if groups and v / groups[-1][0] < ratio:
            groups[-1].append(v)
        else:
            groups.append([v])
    return [float(np.median(g)) for g in groups]


ROC_MIN_FPR = 1e-3  # the log-FPR axis starts here, or lower where a DP ceiling bites below it


def roc_floor(ceilings: Sequence[tuple[float, float]], positives: Sequence[float] = ()) -> float:
    """Lower end of the ROC axes: 1e-3, or a decade below a third of the lowest FPR at which a
    DP ceiling e^eps FPR + delta falls under 1 (so each ceiling is seen where it bites), and not
    above the smallest measured positive FPR."""
    floor = ROC_MIN_FPR
    bites = [(1.0 - delta) / math.exp(eps) for eps, delta in ceilings if eps is not None and delta is not None]
    if bites:
        floor = min(floor, 10 ** math.floor(math.log10(max(min(bites) / 3, 1e-12))))
    if positives:
        floor = min(floor, 10 ** math.floor(math.log10(min(positives))))
    return max(floor, 1e-6)


@styled
def plot_roc(data: Mapping[str, Any]) -> Figure:
    """ROC of each model's strongest attack (the report's rule, the attack its table names) on
    log-log axes, one panel per encoding, with each DP model's ceiling TPR <= e^eps FPR + delta
    (dotted, same colour) drawn down to where it bites; FPRs below 1/n non-members (shaded) cannot
    be measured with this many non-members."""
    encs = list(data["encodings"])
    width = SINGLE_COLUMN_IN if len(encs) == 1 else DOUBLE_COLUMN_IN
    panel = min(2.4, (width - 0.6) / len(encs))
    fig = new_figure(width, panel + 1.5)
    with plt.rc_context(RC):
        axes = np.atleast_1d(fig.subplots(1, len(encs), sharey=True, squeeze=False)[0])
    all_targets = sorted({t for e in data["encodings"].values() for t in e})
    curves = [c for e in data["encodings"].values() for c in e.values()]
    floor = roc_floor([c["ceiling"] for c in curves if c.get("ceiling") is not None],
                      [f for c in curves for f in c["fpr"] if f > 0])
    shaded = False
    for ax, enc in zip(axes, encs, strict=True):
        grid = np.logspace(math.log10(floor), 0, 400)
        ax.plot(grid, grid, color=CHANCE_COLOR, lw=0.8, ls="-", zorder=1)
        n_non = [c.get("n_nonmembers") for c in data["encodings"][enc].values() if c.get("n_nonmembers")]
        if n_non and 1.0 / max(n_non) > floor:
            ax.axvspan(floor, 1.0 / max(n_non), color="#eeeeee", lw=0, zorder=0)
            shaded = True
        for t in sort_targets(data["encodings"][enc]):
            c = data["encodings"][enc][t]
            col = model_color(t, all_targets)
            fpr = np.clip(np.asarray(c["fpr"], dtype=float), floor, 1)
            tpr = np.clip(np.asarray(c["tpr"], dtype=float), floor, 1)
            auc = "" if c.get("auc") is None else f" {c['auc']:.2f}"
            ax.plot(fpr, tpr, color=col, lw=1.3, drawstyle="steps-post", zorder=3,
                    label=f"{c['attack'].replace('_', ' ')}{auc}")
            if c.get("ceiling") is not None:
                eps, delta = c["ceiling"]
                ax.plot(grid, np.minimum(1.0, np.exp(eps) * grid + delta), color=col, ls=":", lw=1.2, zorder=2)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(floor, 1)
        ax.set_ylim(floor, 1.05)
        ax.set_aspect("equal", adjustable="box")
        ax.set_xlabel("false positive rate")
        ax.set_title(f"{enc} encoding", loc="left")
        # each model's attack and AUC, in the model's colour, where ROC curves rarely run (under the
        # diagonal), lifted off the floor so a curve with no true positives yet stays visible there
        handles, labels = ax.get_legend_handles_labels()
        legend(ax, handles, labels, loc="lower right", bbox_to_anchor=(1.0, 0.05), fontsize=ANNOTATION_PT,
               title="attack, AUC", title_fontsize=ANNOTATION_PT, handlelength=1.2, handletextpad=0.4,
               labelspacing=0.25, borderpad=0.3, borderaxespad=0.2, frameon=True, framealpha=0.85, edgecolor="none")
    axes[0].set_ylabel("true positive rate")
    by = "AUC" if data.get("by", "auc") == "auc" else "TPR at 1% FPR"
    fig.suptitle(f"{data['dataset']}: membership-inference ROC of each model's strongest attack "
                 f"(highest {data['level']}-level {by})", x=0.02, ha="left")
    shown = sort_targets({t for e in data["encodings"].values() for t in e})
    handles = [Line2D([], [], color=model_color(t, all_targets), lw=1.3) for t in shown]
    labels = [model_label(t) for t in shown]
    handles.append(Line2D([], [], color=CHANCE_COLOR, lw=0.8))
    labels.append("chance")
    if any(c.get("ceiling") is not None for c in curves):
        handles.append(Line2D([], [], color=KEY_COLOR, ls=":", lw=1.2))
        labels.append("DP ceiling e^ε·FPR + δ (dotted)")
    if shaded:
        handles.append(matplotlib.patches.Patch(color="#eeeeee"))
        labels.append("unmeasurable: FPR < 1/n non-members")
    _legend_below(fig, handles, labels, ncol=4)
    return fig


ATTACK_COLORS = (OKABE_ITO["black"], OKABE_ITO["sky"], OKABE_ITO["green"], OKABE_ITO["purple"],
                 OKABE_ITO["vermillion"], OKABE_ITO["yellow"], OKABE_ITO["blue"], OKABE_ITO["orange"])


@styled
def plot_attack_vs_T(data: Mapping[str, Any]) -> Figure:  # noqa: N802
    """Membership leakage of the non-private SNN against the number of time steps T: TPR at 1%
    FPR and AUC (with its bootstrap CI band), one colour per attack, line style per encoding."""
    sweeps = data["sweeps"]
    encs = list(sweeps)
    attacks = sorted({a for s in sweeps.values() for a in s})
    fig = new_figure(DOUBLE_COLUMN_IN, 3.1)
    with plt.rc_context(RC):
        ax_tpr, ax_auc = fig.subplots(1, 2)
    series = [(enc, name) for enc in encs for name in sweeps[enc]]
    for k, (enc, name) in enumerate(series):
        s = sweeps[enc][name]
        ls, marker = encoding_style(enc, encs)
        color = ATTACK_COLORS[attacks.index(name) % len(ATTACK_COLORS)]
        # dodge series sideways (multiplicatively, a few %) so equal T values do not hide each other
        t = np.asarray(s["T"], dtype=float) * (1 + 0.03 * (k - (len(series) - 1) / 2))
        auc = np.asarray(s["auc"], dtype=float)
        ax_tpr.plot(t, s["tpr_at_1pct_fpr"], color=color, ls=ls, marker=marker, ms=3.5)
        err = np.abs(np.vstack([auc - np.asarray(s["auc_ci_low"]), np.asarray(s["auc_ci_high"]) - auc]))
        ax_auc.errorbar(t, auc, yerr=err, color=color, ls=ls, marker=marker, ms=3.5, capsize=2, elinewidth=0.8)
    ax_tpr.axhline(0.01, color=CHANCE_COLOR, lw=0.8)
    ax_auc.axhline(0.5, color=CHANCE_COLOR, lw=0.8)
    ax_tpr.set_ylabel("TPR at 1% FPR")
    ax_auc.set_ylabel("attack AUC (bars: bootstrap CI)")
    ts = sorted({t for s in sweeps.values() for c in s.values() for t in c["T"]})
    for ax in (ax_tpr, ax_auc):
        ax.set_xlabel("time steps T")
        if ts:
            ax.set_xticks(ts, [f"{t:g}" for t in ts])
            pad = 0.25 * (ts[-1] - ts[0]) if len(ts) > 1 else 0.3 * ts[0]
            ax.set_xlim(ts[0] - pad, ts[-1] + pad)
    fig.suptitle(f"{data['dataset']}: non-private SNN leakage vs time steps ({data.get('level', 'window')} level)",
                 x=0.02, ha="left")
    handles = [Line2D([], [], color=ATTACK_COLORS[i % len(ATTACK_COLORS)]) for i in range(len(attacks))]
    labels = [a.replace("_", " ") for a in attacks]
    if len(encs) > 1:
        handles += [Line2D([], [], color=KEY_COLOR, ls=encoding_style(e, encs)[0], marker=encoding_style(e, encs)[1],
                           mfc="none", mec=KEY_COLOR, ms=4) for e in encs]
        labels += [f"{e} encoding" for e in encs]
    handles.append(Line2D([], [], color=CHANCE_COLOR, lw=0.8))
    labels.append("chance")
    _legend_below(fig, handles, labels, ncol=min(len(handles), 4))
    return fig


# ---------------------------------------------------------------------------------------------
# deployment
# ---------------------------------------------------------------------------------------------


@styled
def plot_energy(data: Mapping[str, Any]) -> Figure:
    """Total energy per inference (dynamic + chip static) per edge target (log scale), one bar per
    model; a model that does not fit a target gets a marked empty slot (×), a total with a term no
    source publishes (``energy_j`` None for a model that fits) reads "unknown" and gets no bar, so
    the bars drawn side by side all contain the same terms."""
    encs = list(data["encodings"])
    hardware = list(data["hardware"])
    bars = data["bars"]
    from biospike.units import fmt_si

    targets = sort_targets({b["target"] for b in bars})
    fig = new_figure(min(DOUBLE_COLUMN_IN, max(SINGLE_COLUMN_IN, 0.9 + 0.3 * len(targets) * len(hardware))),
                     0.9 + 2.0 * len(encs))
    with plt.rc_context(RC):
        axes = np.atleast_1d(fig.subplots(len(encs), 1, sharex=True, sharey=True, squeeze=False)[:, 0])
    width = 0.8 / max(len(targets), 1)
    energies = [b["energy_j"] for b in bars if b["energy_j"]]
    lo = min(energies) / 5 if energies else 1e-9
    for ax, enc in zip(axes, encs, strict=True):
        for h, hw in enumerate(hardware):
            present = [t for t in targets if any(b["target"] == t and b["hardware"] == hw and b["encoding"] == enc for b in bars)]
            for k, t in enumerate(present):
                b = next(b for b in bars if b["target"] == t and b["hardware"] == hw and b["encoding"] == enc)
                x = h - 0.4 + width * (k + 0.5) + width * (len(targets) - len(present)) / 2
                if b["fits"] and b["energy_j"]:
                    # height E - lo from bottom lo: the bar top is exactly E on the log axis
                    ax.bar(x, b["energy_j"] - lo, width * 0.92, bottom=lo, color=model_color(t, targets))
                    ax.text(x, b["energy_j"] * 1.12, fmt_si(b["energy_j"], "J").replace(" ", "\u2009"), ha="center",
                            va="bottom", fontsize=ANNOTATION_PT, rotation=90 if len(present) > 2 else 0)
                elif b["fits"]:
                    ax.text(x, lo * 1.15, "unknown", ha="center", va="bottom", color=model_color(t, targets),
                            fontsize=ANNOTATION_PT, rotation=90)
                else:
                    ax.text(x, lo * 1.15, "×", ha="center", va="bottom", color=model_color(t, targets), fontsize=9,
                            fontweight="bold")
        ax.set_yscale("log")
        ax.set_ylim(lo, (max(energies) if energies else lo) * (30 if len(targets) > 2 else 5))  # room for the labels
        ax.set_ylabel("total energy / inference (J)")
        ax.set_title(f"{enc} encoding", loc="left")
        ax.grid(False, axis="x")
    axes[-1].set_xticks(range(len(hardware)), [hardware_label(h) for h in hardware])
    fig.suptitle(f"{data['dataset']}: energy per inference, dynamic + chip static (log scale; × = does not fit; "
                 "unknown = a term not published)", x=0.02, ha="left")
    handles = [matplotlib.patches.Patch(color=model_color(t, targets)) for t in targets]
    _legend_below(fig, handles, [model_label(t) for t in targets], ncol=min(len(targets), 3))
    return fig


@styled
def plot_latency_accuracy(data: Mapping[str, Any]) -> Figure:
    """Test balanced accuracy of the decision after each elapsed time step (quantized simulation),
    per model (colour) and edge target (line style); a marker at each model's mean confidence
    early-exit point. Top axis: elapsed time on the target. Curves carry their ``metric``
    (report.accuracy_vs_steps): plain accuracy only for deploy results without balanced accuracy."""
    encs = list(data["encodings"])
    curves = data["curves"]
    targets = sort_targets({c["target"] for c in curves})
    hardware = list(dict.fromkeys(c["hardware"] for c in curves))
    fig = new_figure(SINGLE_COLUMN_IN if len(encs) == 1 else DOUBLE_COLUMN_IN, 3.4)
    with plt.rc_context(RC):
        axes = np.atleast_1d(fig.subplots(1, len(encs), sharey=True, squeeze=False)[0])
    for ax, enc in zip(axes, encs, strict=True):
        step_s = None
        mine = [c for c in curves if c["encoding"] == enc]
        for c in mine:
            color = model_color(c["target"], targets)
            ls = HARDWARE_STYLES[hardware.index(c["hardware"]) % len(HARDWARE_STYLES)]
            ax.plot(c["steps"], c["accuracy"], color=color, ls=ls, lw=1.2)
            ee = c.get("early_exit")
            if ee and ee["step"] is not None and ee["accuracy"] is not None:
                ax.scatter(ee["step"], ee["accuracy"], color=color, marker="o", s=22, zorder=3,
                           edgecolor="white", linewidth=0.6)
            step_s = step_s or c.get("step_s")
        if not mine:
            ax.text(0.5, 0.5, "no model fits a target", transform=ax.transAxes, ha="center", va="center", color="#777777",
                    fontsize=ANNOTATION_PT)
        ax.set_xlabel("elapsed time steps")
        ax.set_title(f"{enc} encoding", loc="left")
        if step_s and len({c.get("step_s") for c in mine}) == 1:  # one time base: a time axis on top
            sec = ax.secondary_xaxis("top", functions=(lambda s, d=step_s: s * d * 1e3, lambda m, d=step_s: m / d / 1e3))
            sec.set_xlabel("elapsed time (ms)")
    metrics = {c.get("metric", "balanced_accuracy") for c in curves}
    score = "accuracy" if metrics == {"accuracy"} else "balanced accuracy"
    if len(metrics) > 1:
        score += " (plain accuracy where not recorded)"
    axes[0].set_ylabel(f"{score} (test, quantized)")
    fig.suptitle(f"{data['dataset']}: latency-accuracy trade-off", x=0.02, ha="left")
    handles = [Line2D([], [], color=model_color(t, targets)) for t in targets] + \
              [Line2D([], [], color=KEY_COLOR, ls=HARDWARE_STYLES[i % len(HARDWARE_STYLES)]) for i in range(len(hardware))]
    labels = [model_label(t) for t in targets] + [hardware_label(h).replace("\n", " ") for h in hardware]
    if any(c.get("early_exit") for c in curves):  # the marker's shape: its colour is the model's
        handles.append(Line2D([], [], color=KEY_COLOR, marker="o", ls="", mfc="none", mec=KEY_COLOR, ms=4))
        labels.append("confidence early exit (mean)")
    _legend_below(fig, handles, labels, ncol=4)
    return fig
