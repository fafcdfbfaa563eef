"""The encode stage: windows.h5 -> spikes.h5 for one encoding (delta | population | rate).

Everything fitted (thresholds, baselines, receptive fields, rate scales) is estimated on one
split only, ``encode.fit_split``: ``train`` (default; validation/test windows and the attacker's
population leave no trace in the encoder) or ``population`` (``mia/population``, the data the
defender treats as public: the encoder then reads no private training window, so DP models
trained on its spikes have no data-dependent preprocessing outside their guarantee). Settings are
the config's ``encode`` section (defaults from the workflow schema).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from biospike.config import fill_defaults_and_validate
from biospike.encode import delta, population, rate
from biospike.encode.timebase import (
    TimeBase,
    band_high_hz,
    check_memory,
    check_nyquist,
    make_timebase,
)
from biospike.errors import BiospikeError
from biospike.store import Spikes, Windows

ENCODINGS = ("delta", "population", "rate")
# encode.fit_split -> the windows.h5 group and pool the encoder statistics are fitted on
FIT_SPLITS = {"train": ("splits", "train"), "population": ("mia", "population")}
_RUNTIME_KEYS = ("seed", "dataset", "threads")


def _encode_schema() -> dict:
    import yaml

    from biospike.config import SCHEMA_PATH

    try:
        schema = yaml.safe_load(SCHEMA_PATH.read_text())
        return {"$defs": schema["$defs"], **schema["properties"]["encode"]}
    except (OSError, KeyError, yaml.YAMLError) as exc:
        raise BiospikeError(f"cannot read the encode section of the config schema ({exc})", SCHEMA_PATH) from None


def encode_settings(params: Mapping[str, Any]) -> dict[str, Any]:
    """Validate the ``encode`` settings (without seed/dataset) and fill the schema's defaults."""

    settings = {k: copy.deepcopy(v) for k, v in params.items() if k not in _RUNTIME_KEYS}
    schema = _encode_schema()
    error = fill_defaults_and_validate(settings, schema)
    if error is not None:
        where = "/".join(["encode", *map(str, error[0])])
        raise BiospikeError(f"invalid encode settings at '{where}': {error[1]}")
    return settings


def spike_channel_names(encoding: str, channel_names: list[str], settings: Mapping[str, Any]) -> list[str]:
    if encoding == "delta" or (encoding == "rate" and settings["rate"]["polarity"] == "bipolar"):
        return [f"{ch}{sign}" for ch in channel_names for sign in ("+", "-")]
    if encoding == "population":
        n = settings["population"]["n_neurons"]
        return [f"{ch}/p{j:02d}" for ch in channel_names for j in range(n)]
    return list(channel_names)


def plan(win: Windows, encoding: str, settings: Mapping[str, Any], source: str | None = None) -> TimeBase:
    """The time grid, after refusing grids that alias the band or exceed the memory budget."""
    if encoding not in ENCODINGS:
        raise BiospikeError(f"unknown encoding {encoding!r} (expected one of {', '.join(ENCODINGS)})")
    n_win, n_ch, n_samples = win.signals.shape
    if n_samples < 1:
        raise BiospikeError("windows have no samples", source)
    band = band_high_hz(win.preprocessing, win.fs_hz)
    tb = make_timebase(win.fs_hz, n_samples, band, settings.get("dt_s"), settings.get("n_steps"))
    if encoding == "population" and settings["population"]["emission"] == "latency":
        k = settings["population"]["latency_steps"]
        check_nyquist(tb, k * tb.dt_s, f"population latency frame ({k} steps of {tb.dt_s * 1e3:g} ms)", source)
    else:
        check_nyquist(tb, tb.dt_s, f"{encoding} step dt_s", source)
    width = len(spike_channel_names(encoding, list(win.channel_names), settings))
    check_memory(n_win, n_ch, n_samples, tb.n_steps, width, settings["max_memory_gb"], source)
    return tb


def fit_signals(win: Windows, fit_split: str, source: str | None = None) -> np.ndarray:
    """The windows the encoder statistics are fitted on (``encode.fit_split``), (n, C, L)."""
    if fit_split not in FIT_SPLITS:
        raise BiospikeError(f"unknown encode.fit_split {fit_split!r} (expected one of {', '.join(FIT_SPLITS)})", source)
    group, name = FIT_SPLITS[fit_split]
    idx = getattr(win, group).get(name)
    if idx is None or len(idx) == 0:
        raise BiospikeError(f"split '{group}/{name}' is missing or empty, but encode.fit_split: {fit_split} "
                            "fits the encoder parameters on it", source)
    return win.signals[np.asarray(idx, dtype=np.int64)]


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def spike_stats(spikes: np.ndarray, dt_s: float) -> dict[str, Any]:
    """Spikes per second per channel (mean over windows), their mean, sparsity."""
    n_win, n_steps, width = spikes.shape
    duration_s = n_win * n_steps * dt_s
    per_channel = spikes.sum(axis=(0, 1), dtype=np.int64)
    rate_hz = per_channel / duration_s if duration_s > 0 else np.zeros(width)
    entries = spikes.size
    return {
        "spikes_per_s_per_channel": [float(r) for r in rate_hz],
        "spikes_per_s_mean": float(rate_hz.mean()) if width else 0.0,
        "sparsity": float(1 - np.count_nonzero(spikes) / entries) if entries else 1.0,
        "spikes_total": int(per_channel.sum()),
        "spikes_per_window_mean": float(per_channel.sum() / n_win) if n_win else 0.0,
    }


def encode_windows(win: Windows, encoding: str, settings: Mapping[str, Any], seed: int,
                   source: str | None = None) -> Spikes:
    """Encode every window; encoder parameters are fitted on the ``settings["fit_split"]`` windows
    (``train``: ``win.splits["train"]``; ``population``: ``win.mia["population"]``)."""
    if not np.all(np.isfinite(win.signals)):
        raise BiospikeError("signals contain NaN or infinite values", source)
    tb = plan(win, encoding, settings, source)
    fit_split = str(settings.get("fit_split", "train"))
    fit = fit_signals(win, fit_split, source)
    names = list(win.channel_names)
    sub = dict(settings[encoding])
    encoder: dict[str, Any] = {"name": encoding, "settings": sub, "timebase": tb.describe(),
                               "requested": {"dt_s": settings.get("dt_s"), "n_steps": settings.get("n_steps")},
                               "fitted_on": fit_split, "n_fit_windows": int(fit.shape[0])}
    stats: dict[str, Any] = {}
    if encoding == "delta":
        thr = delta.fit_thresholds(fit, sub["threshold_mode"], sub["threshold"], names)
        baseline = delta.channel_baseline(fit)
        steps = tb.sample_step()
        result = delta.delta_encode(win.signals, thr, baseline, steps, tb.n_steps)
        spikes = result.spikes
        decoded = delta.delta_decode(spikes, thr, baseline)
        snr, snr_per_channel = delta.reconstruction_snr_db(win.signals, decoded, steps, tb.n_steps, baseline)
        encoder["fitted"] = {"threshold": thr.tolist(), "baseline": baseline.tolist(),
                             "spread": delta.robust_spread(fit).tolist() if sub["threshold_mode"] == "spread_fraction" else None}
        stats.update(saturated_entries=result.saturated, reconstruction_snr_db=_finite_or_none(snr),
                     reconstruction_snr_db_per_channel=[_finite_or_none(s) for s in snr_per_channel])
    elif encoding == "population":
        fields = population.fit_fields(fit, sub["n_neurons"], sub["overlap"], sub["range_percentiles"], names)
        latency = sub["emission"] == "latency"
        values = tb.step_values(win.signals, sub["latency_steps"] if latency else 1)
        spikes = population.population_encode(values, fields, sub["emission"], tb.n_steps, cutoff=sub["cutoff"],
                                              latency_steps=sub["latency_steps"], max_rate_hz=sub["max_rate_hz"],
                                              dt_s=tb.dt_s, seed=seed)
        encoder["fitted"] = fields.describe()
        stats["saturated_entries"] = 0
    else:
        scale = rate.fit_scale(fit, sub["polarity"], sub["scale_percentile"], names)
        values = tb.step_values(win.signals)
        spikes, capped = rate.rate_encode(values, scale, sub["emission"], sub["max_rate_hz"], tb.dt_s, seed)
        encoder["fitted"] = scale.describe()
        stats["saturated_entries"] = capped
    encoder["seed"] = int(seed)
    stats = {"n_windows": int(spikes.shape[0]), "n_steps": tb.n_steps, "dt_s": tb.dt_s,
             "window_s": tb.window_s, **spike_stats(spikes, tb.dt_s), **stats}
    return Spikes(spikes=spikes, labels=win.labels, subject=win.subject, dt_s=tb.dt_s,
                  channel_names=spike_channel_names(encoding, names, settings), class_names=list(win.class_names),
                  encoder=encoder, stats=stats, splits=dict(win.splits), mia=dict(win.mia))
