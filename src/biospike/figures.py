"""Paper-style figures for the report (matplotlib, Agg backend; PNG and SVG).

Each ``plot_<kind>(data) -> Figure`` takes the plain data gathered by
:mod:`biospike.report` and draws it; no file reading here. Colours are fixed per model across
every figure (Okabe-Ito palette, colour-blind safe), line styles per encoding.
"""

from __future__ import annotations

import functools
import math
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

ENCODING_STYLES = {"delta": ("-", "o"), "population": ("--", "s"), "rate": (":", "^")}
_EXTRA_STYLES = (("-.", "D"), ((0, (1, 1)), "v"), ((0, (5, 1, 1, 1)), "P"))
HARDWARE_STYLES = ("-", "--", ":", "-.", (0, (5, 1)), (0, (1, 1)), (0, (3, 1, 1, 1, 1, 1)))

RC = {
    "font.size": 9, "axes.titlesize": 9.5, "axes.labelsize": 9, "legend.fontsize": 8,
    "xtick.labelsize": 8, "ytick.labelsize": 8, "axes.spines.top": False, "axes.spines.right": False,
    "axes.grid": True, "grid.alpha": 0.25, "grid.linewidth": 0.6, "lines.linewidth": 1.5,
    "legend.frameon": False, "figure.dpi": 100, "svg.hashsalt": "biospike", "svg.fonttype": "none",
    "figure.constrained_layout.use": True,
}


def model_color(target: str, all_targets: Sequence[str] = ()) -> str:
    """Fixed colour per model kind; lever variants (DP-SNNs) by their value's rank (biospike.targets)."""
    return color(target, all_targets)


def encoding_style(encoding: str, encodings: Sequence[str] = ()) -> tuple[Any, str]:
    if encoding in ENCODING_STYLES:
        return ENCODING_STYLES[encoding]
    others = [e for e in encodings if e not in ENCODING_STYLES]
    i = others.index(encoding) if encoding in others else 0
    return _EXTRA_STYLES[i % len(_EXTRA_STYLES)]


def model_label(target: str) -> str:
    return label(target)


def hardware_label(hw: str) -> str:
    names = {"loihi": "Loihi", "loihi2": "Loihi 2", "spinnaker2": "SpiNNaker 2", "spinnaker": "SpiNNaker",
             "xylo": "Xylo", "xylo_audio2": "Xylo Audio 2", "speck": "Speck", "truenorth": "TrueNorth",
             "mcu": "MCU", "cortex_m4": "Cortex-M4\n(MCU, ANN)"}
    return names.get(hw.lower(), hw)


def styled(plot: Callable[[Mapping[str, Any]], Figure]) -> Callable[[Mapping[str, Any]], Figure]:
    """Run a plot function inside the house style (rc values are read when artists are made)."""

    @functools.wraps(plot)
    def wrapper(data: Mapping[str, Any]) -> Figure:
        with plt.rc_context(RC):
            return plot(data)

    return wrapper


def new_figure(width_in: float, height_in: float) -> Figure:
    with plt.rc_context(RC):
        return plt.figure(figsize=(width_in, height_in))


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


def _legend_below(fig: Figure, handles: list, labels: list[str], ncol: int | None = None) -> None:
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=ncol or min(len(handles), 5),
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
    fig = new_figure(7.0, 0.5 + 1.1 * ratios[0] + 1.3 * sum(ratios[1:]))
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
                     loc="left", fontsize=8.5)
        if legend:
            ax.legend(handles=legend, loc="upper left", bbox_to_anchor=(1.0, 1.0), ncol=1, fontsize=7,
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
    fig = new_figure(7.0, 0.6 + 2.1 * len(encs))
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
    style = [Line2D([], [], color="#555555", ls="-", label="train"),
             Line2D([], [], color="#555555", ls="--", label="validation")]
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
    width_in = min(0.9 + panel * len(targets), 11.0)
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
                        ax.text(j, i, f"{int(mat[i, j])}", ha="center", va="center", fontsize=7,
                                color="black" if norm[i, j] > 0.55 else "white")
            ticks = names if k <= 8 else [n if i % max(1, k // 8) == 0 else "" for i, n in enumerate(names)]
            ax.set_xticks(range(k), ticks if r == len(encs) - 1 else [""] * k, rotation=45 if rotate else 0,
                          ha="right" if rotate else "center", rotation_mode="anchor")
            ax.set_yticks(range(k), ticks if c == 0 else [""] * k)
            for spine in ax.spines.values():
                spine.set_visible(False)
            bal = entry.get("balanced_accuracy")
            title = model_label(t) + (f"\nbal. acc. {bal:.2f}" if bal is not None else "")
            ax.set_title(title, color=model_color(t, targets), fontsize=8.5)
            if c == 0:
                ax.set_ylabel(f"{enc}\ntrue class")
            if r == len(encs) - 1:
                ax.set_xlabel("predicted")
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label="fraction of true class")
    fig.suptitle(f"{data['dataset']}: test confusion matrices", x=0.02, ha="left", fontsize=9.5)
    return fig


# ---------------------------------------------------------------------------------------------
# privacy-utility
# ---------------------------------------------------------------------------------------------


@styled
def plot_privacy_utility(data: Mapping[str, Any]) -> Figure:
    """Balanced accuracy of each DP-SNN against its accounted epsilon; non-private SNN and ANN
    as horizontal lines (same line style per encoding)."""
    fig = new_figure(4.8, 3.4)
    with plt.rc_context(RC):
        ax = fig.subplots()
    encs = list(data["encodings"])
    all_targets = sorted({p["target"] for e in data["encodings"].values() for p in e["points"]})
    eps_all = [p["epsilon"] for e in data["encodings"].values() for p in e["points"] if p["epsilon"]]
    handles, labels = [], []
    units = set()
    for enc in encs:
        e = data["encodings"][enc]
        ls, marker = encoding_style(enc, encs)
        pts = [p for p in e["points"] if p["epsilon"] is not None and p["balanced_accuracy"] is not None]
        if e.get("unit"):
            units.add(e["unit"])
        if pts:
            ax.plot([p["epsilon"] for p in pts], [p["balanced_accuracy"] for p in pts], color="#444444",
                    ls=ls, lw=1.0, zorder=1)
            for p in pts:
                ax.scatter(p["epsilon"], p["balanced_accuracy"], color=model_color(p["target"], all_targets),
                           marker=marker, s=36, zorder=3, edgecolor="white", linewidth=0.6)
        for t, value in e["lines"].items():
            if value is not None:
                ax.axhline(value, color=model_color(t), ls=ls, lw=1.2, zorder=2)
        handles.append(Line2D([], [], color="#444444", ls=ls, marker=marker))
        labels.append(f"{enc} encoding")
    for t in ("snn", "ann"):
        if any(t in e["lines"] for e in data["encodings"].values()):
            handles.append(Line2D([], [], color=model_color(t), lw=1.5))
            labels.append(f"{model_label(t)} (no DP)")
    if data.get("n_classes"):
        ax.axhline(1.0 / data["n_classes"], color="#999999", lw=0.8, ls=":")
        handles.append(Line2D([], [], color="#999999", lw=0.8, ls=":"))
        labels.append(f"chance (1/{data['n_classes']})")
    if eps_all:
        lo, hi = min(eps_all), max(eps_all)
        ax.set_xlim(lo / 1.6, hi * 1.6)
    ax.set_xscale("log")
    if eps_all:  # ticks at the accounted epsilons themselves
        ax.set_xticks(sorted(set(eps_all)))
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


@styled
def plot_roc(data: Mapping[str, Any]) -> Figure:
    """ROC of the strongest attack per model on log-log axes, with each DP model's ceiling
    TPR <= e^eps FPR + delta (dotted, same colour)."""
    encs = list(data["encodings"])
    fig = new_figure(3.4 * len(encs) + 0.4, 3.9)
    with plt.rc_context(RC):
        axes = np.atleast_1d(fig.subplots(1, len(encs), sharey=True, squeeze=False)[0])
    all_targets = sorted({t for e in data["encodings"].values() for t in e})
    positives = [f for e in data["encodings"].values() for c in e.values() for f in c["fpr"] if f > 0]
    floor = max(min(positives) / 2 if positives else 1e-3, 1e-5)
    for ax, enc in zip(axes, encs, strict=True):
        grid = np.logspace(math.log10(floor), 0, 200)
        ax.plot(grid, grid, color="#999999", lw=0.8, ls="-")
        for t in sort_targets(data["encodings"][enc]):
            c = data["encodings"][enc][t]
            color = model_color(t, all_targets)
            fpr = np.clip(np.asarray(c["fpr"], dtype=float), floor, 1)
            tpr = np.clip(np.asarray(c["tpr"], dtype=float), floor, 1)
            auc = "" if c.get("auc") is None else f", AUC {c['auc']:.2f}"
            ax.plot(fpr, tpr, color=color, lw=1.3, drawstyle="steps-post",
                    label=f"{model_label(t)}: {c['attack'].replace('_', ' ')}{auc}")
            if c.get("ceiling") is not None:
                eps, delta = c["ceiling"]
                ax.plot(grid, np.minimum(1.0, np.exp(eps) * grid + delta), color=color, ls=":", lw=1.1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(floor, 1)
        ax.set_ylim(floor, 1.05)
        ax.set_aspect("equal", adjustable="box")
        ax.set_xlabel("false positive rate")
        ax.set_title(f"{enc} encoding", loc="left")
        # the key under each panel: inside, it hides the curves of weak attacks near the diagonal
        ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.25), fontsize=7, handlelength=1.2, borderaxespad=0.0)
    axes[0].set_ylabel("true positive rate")
    fig.suptitle(f"{data['dataset']}: membership inference, strongest attack per model ({data['level']} level)",
                 x=0.02, ha="left", fontsize=9.5)
    _legend_below(fig, [Line2D([], [], color="#999999", lw=0.8), Line2D([], [], color="#555555", ls=":")],
                  ["chance", "DP ceiling TPR = e^ε·FPR + δ (per DP model, its colour)"], ncol=2)
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
    fig = new_figure(6.8, 3.1)
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
    ax_tpr.axhline(0.01, color="#999999", lw=0.8)
    ax_auc.axhline(0.5, color="#999999", lw=0.8)
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
                 x=0.02, ha="left", fontsize=9.5)
    handles = [Line2D([], [], color=ATTACK_COLORS[i % len(ATTACK_COLORS)]) for i in range(len(attacks))]
    labels = [a.replace("_", " ") for a in attacks]
    if len(encs) > 1:
        handles += [Line2D([], [], color="#555555", ls=encoding_style(e, encs)[0], marker=encoding_style(e, encs)[1], ms=3.5)
                    for e in encs]
        labels += [f"{e} encoding" for e in encs]
    handles.append(Line2D([], [], color="#999999", lw=0.8))
    labels.append("chance")
    _legend_below(fig, handles, labels, ncol=min(len(handles), 4))
    return fig


# ---------------------------------------------------------------------------------------------
# deployment
# ---------------------------------------------------------------------------------------------


@styled
def plot_energy(data: Mapping[str, Any]) -> Figure:
    """Energy per inference per edge target (log scale), one bar per model; a model that does
    not fit a target gets a marked empty slot."""
    encs = list(data["encodings"])
    hardware = list(data["hardware"])
    bars = data["bars"]
    from biospike.units import fmt_si

    targets = sort_targets({b["target"] for b in bars})
    fig = new_figure(max(4.8, 0.9 + 0.28 * len(targets) * len(hardware)), 0.8 + 2.3 * len(encs))
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
                            va="bottom", fontsize=6, rotation=90 if len(present) > 3 else 0)
                else:
                    ax.text(x, lo * 1.15, "×", ha="center", va="bottom", color=model_color(t, targets), fontsize=9,
                            fontweight="bold")
        ax.set_yscale("log")
        ax.set_ylim(lo, (max(energies) if energies else lo) * 4)  # room for the value labels
        ax.set_ylabel("energy / inference (J)")
        ax.set_title(f"{enc} encoding", loc="left")
        ax.grid(False, axis="x")
    axes[-1].set_xticks(range(len(hardware)), [hardware_label(h) for h in hardware])
    fig.suptitle(f"{data['dataset']}: energy per inference (log scale; × = does not fit)", x=0.02, ha="left",
                 fontsize=9.5)
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
    fig = new_figure(3.5 * len(encs) + 0.4, 3.5)
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
            ax.text(0.5, 0.5, "no model fits a target", transform=ax.transAxes, ha="center", va="center", color="#777777")
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
    fig.suptitle(f"{data['dataset']}: latency-accuracy trade-off", x=0.02, ha="left", fontsize=9.5)
    handles = [Line2D([], [], color=model_color(t, targets)) for t in targets] + \
              [Line2D([], [], color="#555555", ls=HARDWARE_STYLES[i % len(HARDWARE_STYLES)]) for i in range(len(hardware))] + \
              [Line2D([], [], color="#555555", marker="o", ls="", ms=4)]
    labels = [model_label(t) for t in targets] + [hardware_label(h).replace("\n", " ") for h in hardware] + \
             ["confidence early exit (mean)"]
    _legend_below(fig, handles, labels, ncol=4)
    return fig
