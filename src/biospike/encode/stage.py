"""The encode stage: windows.h5 -> spikes.h5 for one encoding (delta | population | rate).

Encodings are registered (:data:`ENCODINGS`): each says how to fit its parameters on some windows
(a JSON-able record, stored in spikes.h5 and with every model) and how to apply a fitted record
to any windows, so new recordings are encoded with the training run's parameters, never refitted.

Everything fitted (thresholds, baselines, receptive fields, rate scales) is estimated on one
split only, ``encode.fit_split``: ``train`` (default; validation/test windows and the attacker's
population leave no trace in the encoder) or ``population`` (``mia/population``, the data the
defender treats as public: the encoder then reads no private training window, so DP models
trained on its spikes have no data-dependent preprocessing outside their guarantee). Settings are
the config's ``encode`` section (defaults from the workflow schema).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from biospike.config import section_settings
from biospike.encode import delta, population, rate
from biospike.encode.timebase import (
    TimeBase,
    band_high_hz,
    check_memory,
    check_nyquist,
    make_timebase,
)
from biospike.errors import BiospikeError
from biospike.registry import Registry
from biospike.store import Spikes, Windows

# encode.fit_split -> the windows.h5 group and pool the encoder statistics are fitted on
FIT_SPLITS = {"train": ("splits", "train"), "population": ("mia", "population")}
_RUNTIME_KEYS = ("seed", "dataset", "threads")


def encode_settings(params: Mapping[str, Any]) -> dict[str, Any]:
    """The ``encode`` settings, validated and completed with the schema's defaults."""
    return section_settings("encode", params)


@dataclasses.dataclass(frozen=True)
class Encoding:
    """A spike encoding: ``fit(signals, settings, channel_names) -> record`` (JSON-able fitted
    parameters), ``apply(signals, record, timebase, settings, seed) -> (spikes, stats)``,
    ``channel_names(input names, settings)`` and ``frame_steps(settings)`` (steps one emitted
    value spans, for the Nyquist check)."""

    name: str
    fit: Callable[[np.ndarray, Mapping[str, Any], list[str]], dict]
    apply: Callable[[np.ndarray, Mapping[str, Any], TimeBase, Mapping[str, Any], int], tuple[np.ndarray, dict]]
    channel_names: Callable[[list[str], Mapping[str, Any]], list[str]]
    frame_steps: Callable[[Mapping[str, Any]], int] = lambda sub: 1
    frame_label: str = "frame"  # what one frame is, for the Nyquist message


def _bipolar(names: list[str]) -> list[str]:
    return [f"{ch}{sign}" for ch in names for sign in ("+", "-")]


def _delta_fit(fit: np.ndarray, sub: Mapping[str, Any], names: list[str]) -> dict:
    thr = delta.fit_thresholds(fit, sub["threshold_mode"], sub["threshold"], names)
    return {"threshold": thr.tolist(), "baseline": delta.channel_baseline(fit).tolist(),
            "spread": delta.robust_spread(fit).tolist() if sub["threshold_mode"] == "spread_fraction" else None}


def _delta_apply(signals: np.ndarray, rec: Mapping[str, Any], tb: TimeBase, sub: Mapping[str, Any],  # noqa: ARG001
                 seed: int) -> tuple[np.ndarray, dict]:  # noqa: ARG001
    thr, baseline = np.asarray(rec["threshold"], dtype=np.float64), np.asarray(rec["baseline"], dtype=np.float64)
    steps = tb.sample_step()
    result = delta.delta_encode(signals, thr, baseline, steps, tb.n_steps)
    decoded = delta.delta_decode(result.spikes, thr, baseline)
    snr, snr_per_channel = delta.reconstruction_snr_db(signals, decoded, steps, tb.n_steps, baseline)
    return result.spikes, {"saturated_entries": result.saturated, "reconstruction_snr_db": _finite_or_none(snr),
                           "reconstruction_snr_db_per_channel": [_finite_or_none(v) for v in snr_per_channel]}


def _fields(rec: Mapping[str, Any]) -> population.Fields:
    return population.Fields(low=np.asarray(rec["low"], dtype=np.float64), high=np.asarray(rec["high"], dtype=np.float64),
                             n_neurons=int(rec["n_neurons"]), overlap=float(rec["overlap"]))


def _population_apply(signals: np.ndarray, rec: Mapping[str, Any], tb: TimeBase, sub: Mapping[str, Any],
                      seed: int) -> tuple[np.ndarray, dict]:
    latency = sub["emission"] == "latency"
    values = tb.step_values(signals, sub["latency_steps"] if latency else 1)
    spikes = population.population_encode(values, _fields(rec), sub["emission"], tb.n_steps, cutoff=sub["cutoff"],
                                          latency_steps=sub["latency_steps"], max_rate_hz=sub["max_rate_hz"],
                                          dt_s=tb.dt_s, seed=seed)
    return spikes, {"saturated_entries": 0}


def _rate_apply(signals: np.ndarray, rec: Mapping[str, Any], tb: TimeBase, sub: Mapping[str, Any],
                seed: int) -> tuple[np.ndarray, dict]:
    scale = rate.RateScale(polarity=str(rec["polarity"]), offset=np.asarray(rec["offset"], dtype=np.float64),
                           scale=np.asarray(rec["scale"], dtype=np.float64))
    spikes, capped = rate.rate_encode(tb.step_values(signals), scale, sub["emission"], sub["max_rate_hz"], tb.dt_s, seed)
    return spikes, {"saturated_entries": capped}


ENCODINGS: Registry[Encoding] = Registry("encoding")
ENCODINGS.register(Encoding(
    name="delta", fit=_delta_fit, apply=_delta_apply, channel_names=lambda names, sub: _bipolar(names)))
ENCODINGS.register(Encoding(
    name="population",
    fit=lambda fit, sub, names: population.fit_fields(fit, sub["n_neurons"], sub["overlap"], sub["range_percentiles"],
                                                      names).describe(),
    apply=_population_apply,
    channel_names=lambda names, sub: [f"{ch}/p{j:02d}" for ch in names for j in range(sub["n_neurons"])],
    frame_steps=lambda sub: sub["latency_steps"] if sub["emission"] == "latency" else 1, frame_label="latency frame"))
ENCODINGS.register(Encoding(
    name="rate",
    fit=lambda fit, sub, names: rate.fit_scale(fit, sub["polarity"], sub["scale_percentile"], names).describe(),
    apply=_rate_apply,
    channel_names=lambda names, sub: _bipolar(names) if sub["polarity"] == "bipolar" else list(names)))


def spike_channel_names(encoding: str, channel_names: list[str], settings: Mapping[str, Any]) -> list[str]:
    return ENCODINGS[encoding].channel_names(list(channel_names), settings[encoding])


def plan(win: Windows, encoding: str, settings: Mapping[str, Any], source: str | None = None) -> TimeBase:
    """The time grid, after refusing grids that alias the band or exceed the memory budget."""
    enc = ENCODINGS[encoding]
    n_win, n_ch, n_samples = win.signals.shape
    if n_samples < 1:
        raise BiospikeError("windows have no samples", source)
    band = band_high_hz(win.preprocessing, win.fs_hz)
    tb = make_timebase(win.fs_hz, n_samples, band, settings.get("dt_s"), settings.get("n_steps"))
    k = enc.frame_steps(settings[encoding])
    if k > 1:
        check_nyquist(tb, k * tb.dt_s, f"{encoding} {enc.frame_label} ({k} steps of {tb.dt_s * 1e3:g} ms)", source)
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
    enc = ENCODINGS[encoding]
    encoder: dict[str, Any] = {"name": encoding, "settings": sub, "timebase": tb.describe(),
                               "requested": {"dt_s": settings.get("dt_s"), "n_steps": settings.get("n_steps")},
                               "fitted_on": fit_split, "n_fit_windows": int(fit.shape[0])}
    encoder["fitted"] = enc.fit(fit, sub, names)
    spikes, extra = enc.apply(win.signals, encoder["fitted"], tb, sub, seed)
    encoder["seed"] = int(seed)
    stats = {"n_windows": int(spikes.shape[0]), "n_steps": tb.n_steps, "dt_s": tb.dt_s,
             "window_s": tb.window_s, **spike_stats(spikes, tb.dt_s), **extra}
    return Spikes(spikes=spikes, labels=win.labels, subject=win.subject, dt_s=tb.dt_s,
                  channel_names=spike_channel_names(encoding, names, settings), class_names=list(win.class_names),
                  encoder=encoder, stats=stats, splits=dict(win.splits), mia=dict(win.mia), dataset=win.dataset,
                  encoding=encoding, source=window_source(win))


def window_source(win: Windows) -> dict[str, Any]:
    """What a model must know to treat new recordings like its training windows."""
    return {"ingest": dict(win.spec), "fs_hz": float(win.fs_hz), "n_samples": int(win.signals.shape[2]),
            "channel_names": list(win.channel_names), "class_names": list(win.class_names), "modality": win.modality,
            "band_hz": band_high_hz(win.preprocessing, win.fs_hz)}
