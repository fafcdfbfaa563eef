"""The encode stage: windows.h5 -> spikes.h5 for one encoding (delta | population | rate | ttfs |
poisson_burst | delayed_burst; docs/encoding.md).

Encodings are registered (:data:`ENCODINGS`): each says how to fit its parameters on some windows
(a JSON-able record, stored in spikes.h5 and with every model) and how to apply a fitted record
to any windows, so new recordings are encoded with the training run's parameters, never refitted.

Everything fitted (thresholds, baselines, receptive fields, rate scales) is estimated on one
split only, ``encode.fit_split``: ``train`` (validation/test windows and the attacker's
population leave no trace in the encoder) or ``population`` (the default; ``mia/population``, the
data the defender treats as public: the encoder then reads no private training window, so DP models
trained on its spikes have no data-dependent preprocessing outside their guarantee). Settings are
the config's ``encode`` section (defaults from the workflow schema).

From arrays alone (a notebook, no windows.h5): :func:`encode_signals` fits and applies an encoding
to (N, C, L) windows; :func:`apply_encoder` encodes new windows with the fitted record.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from biospike.config import section_settings
from biospike.encode import burst, delta, population, rate, ttfs
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

__all__ = ["ENCODINGS", "FIT_SPLITS", "Encoding", "apply_encoder", "encode_settings", "encode_signals", "encode_windows",
           "fit_signals", "plan", "spike_channel_names", "spike_stats", "window_source"]

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
    frame_steps: Callable[[Mapping[str, Any]], int] = lambda sub: 1  # 0: the whole window
    frame_label: str = "frame"  # what one frame is, for the Nyquist message
    fit_grid: bool = False  # fit also takes the time grid: fit(signals, settings, channel_names, timebase)


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
    spikes, capped = rate.rate_encode(tb.step_values(signals), _rate_scale(rec), sub["emission"], sub["max_rate_hz"], tb.dt_s, seed)
    return spikes, {"saturated_entries": capped}


def _rate_scale(rec: Mapping[str, Any]) -> rate.RateScale:
    return rate.RateScale(polarity=str(rec["polarity"]), offset=np.asarray(rec["offset"], dtype=np.float64),
                          scale=np.asarray(rec["scale"], dtype=np.float64))


def _frame_fit(fit: np.ndarray, sub: Mapping[str, Any], names: list[str], tb: TimeBase, setting: str) -> dict:
    """The rate scale, plus for frame-mean codes the per-channel gain of their frame means."""
    rec = rate.fit_scale(fit, sub["polarity"], sub["scale_percentile"], names).describe()
    if sub.get("frame_value", "mean") == "mean":
        bounds = ttfs.frame_bounds(tb.n_steps, sub["frame_steps"])
        rec["frame_gain"] = ttfs.fit_frame_gain(fit, _rate_scale(rec), tb, bounds, sub["frame_percentile"],
                                                setting).tolist()
    return rec


def _frame_gain(rec: Mapping[str, Any]) -> np.ndarray | None:
    return None if rec.get("frame_gain") is None else np.asarray(rec["frame_gain"], dtype=np.float64)


def _ttfs_apply(signals: np.ndarray, rec: Mapping[str, Any], tb: TimeBase, sub: Mapping[str, Any],
                seed: int) -> tuple[np.ndarray, dict]:  # noqa: ARG001
    spikes, stats = ttfs.ttfs_encode(signals, _rate_scale(rec), tb, sub["frame_steps"], sub["frame_value"],
                                     sub["cutoff"], _frame_gain(rec))
    return spikes, {"saturated_entries": 0, **stats}


def _burst_apply(dynamics: str) -> Callable[..., tuple[np.ndarray, dict]]:
    def apply(signals: np.ndarray, rec: Mapping[str, Any], tb: TimeBase, sub: Mapping[str, Any],
              seed: int) -> tuple[np.ndarray, dict]:
        spikes, stats = burst.burst_encode(signals, _rate_scale(rec), tb, dynamics, sub["frame_steps"],
                                           sub["burst_mean"], sub["isi_steps"], sub.get("margin_steps"), seed,
                                           _frame_gain(rec))
        return spikes, {"saturated_entries": 0, **stats}
    return apply


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
ENCODINGS.register(Encoding(
    name="ttfs",
    fit=lambda fit, sub, names, tb: _frame_fit(fit, sub, names, tb, "encode.ttfs"), fit_grid=True,
    apply=_ttfs_apply,
    channel_names=lambda names, sub: _bipolar(names) if sub["polarity"] == "bipolar" else list(names),
    # the frame's start value is a sample of the signal (Nyquist per frame); its mean is an envelope
    frame_steps=lambda sub: (sub["frame_steps"] or 0) if sub["frame_value"] == "start" else 1,
    frame_label="TTFS frame"))
for _dynamics in burst.DYNAMICS:  # the burst input dynamics (rate coding is "rate")
    ENCODINGS.register(Encoding(
        name=f"{_dynamics}_burst",
        fit=lambda fit, sub, names, tb, _d=_dynamics: _frame_fit(fit, sub, names, tb, f"encode.{_d}_burst"),
        fit_grid=True,
        apply=_burst_apply(_dynamics),
        channel_names=lambda names, sub: _bipolar(names) if sub["polarity"] == "bipolar" else list(names)))


def spike_channel_names(encoding: str, channel_names: list[str], settings: Mapping[str, Any]) -> list[str]:
    """The spike channel names ``encoding`` makes from input ``channel_names`` (``C3+``/``C3-`` for
    delta and bipolar rate, ``C3/p00``.. for population); ``settings`` is the ``encode`` section."""
    return ENCODINGS[encoding].channel_names(list(channel_names), settings[encoding])


def plan(win: Windows, encoding: str, settings: Mapping[str, Any], source: str | None = None) -> TimeBase:
    """The time grid, after refusing grids that alias the band or exceed the memory budget."""
    return _grid(win.signals.shape, win.fs_hz, band_high_hz(win.preprocessing, win.fs_hz), list(win.channel_names),
                 encoding, settings, source)


def _grid(shape: tuple[int, ...], fs_hz: float, band_hz: float, channel_names: list[str], encoding: str,
          settings: Mapping[str, Any], source: str | None) -> TimeBase:
    """:func:`plan` from the windows' shape (N, C, L), rate, band edge and channel names."""
    enc = ENCODINGS[encoding]
    n_win, n_ch, n_samples = shape
    if n_samples < 1:
        raise BiospikeError("windows have no samples", source)
    tb = make_timebase(fs_hz, n_samples, band_hz, settings.get("dt_s"), settings.get("n_steps"))
    k = enc.frame_steps(settings[encoding]) or tb.n_steps
    if k > 1:
        check_nyquist(tb, k * tb.dt_s, f"{encoding} {enc.frame_label} ({k} steps of {tb.dt_s * 1e3:g} ms)", source)
    else:
        check_nyquist(tb, tb.dt_s, f"{encoding} step dt_s", source)
    width = len(spike_channel_names(encoding, channel_names, settings))
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


def _encode_on_grid(signals: np.ndarray, fit: np.ndarray, tb: TimeBase, encoding: str, settings: Mapping[str, Any],
                    names: list[str], seed: int, fitted_on: str) -> tuple[np.ndarray, dict[str, Any], dict[str, Any]]:
    """Fit ``encoding`` on ``fit`` and apply it to ``signals``: (spikes, encoder record, stats)."""
    sub = dict(settings[encoding])
    enc = ENCODINGS[encoding]
    encoder: dict[str, Any] = {"name": encoding, "settings": sub, "timebase": tb.describe(),
                               "requested": {"dt_s": settings.get("dt_s"), "n_steps": settings.get("n_steps")},
                               "fitted_on": fitted_on, "n_fit_windows": int(fit.shape[0])}
    encoder["fitted"] = enc.fit(fit, sub, names, tb) if enc.fit_grid else enc.fit(fit, sub, names)
    spikes, extra = enc.apply(signals, encoder["fitted"], tb, sub, seed)
    encoder["seed"] = int(seed)
    stats = {"n_windows": int(spikes.shape[0]), "n_steps": tb.n_steps, "dt_s": tb.dt_s,
             "window_s": tb.window_s, **spike_stats(spikes, tb.dt_s), **extra}
    return spikes, encoder, stats


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
    spikes, encoder, stats = _encode_on_grid(win.signals, fit, tb, encoding, settings, names, seed, fit_split)
    return Spikes(spikes=spikes, labels=win.labels, subject=win.subject, dt_s=tb.dt_s,
                  channel_names=spike_channel_names(encoding, names, settings), class_names=list(win.class_names),
                  encoder=encoder, stats=stats, splits=dict(win.splits), mia=dict(win.mia), dataset=win.dataset,
                  encoding=encoding, source=window_source(win))


def encode_signals(signals: np.ndarray, fs_hz: float, encoding: str, settings: Mapping[str, Any] | None = None, *,
                   fit_on: np.ndarray | None = None, channel_names: Sequence[str] | None = None,
                   band_hz: float | None = None, seed: int = 0,
                   source: str | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Encode (N, C, L) windows sampled at ``fs_hz`` into (N, T, C') uint8 spike counts, from arrays
    alone (no windows.h5): what ``biospike encode`` does, with the same grid checks.

    Parameters
    ----------
    encoding : a registered encoding (:data:`ENCODINGS`: ``delta``, ``population``, ``rate``, ``ttfs``,
        ``poisson_burst``, ``delayed_burst``).
    settings : the config's ``encode`` section; missing keys take the schema's defaults.
    fit_on : (M, C, L) windows the encoder statistics are fitted on (default: ``signals``). Pass the
        training (or a public) split so that test windows leave no trace in the encoder.
    channel_names : input channel names (default ``ch0``, ``ch1``, ...), for the spike channel names.
    band_hz : upper edge of the preprocessed band for the Nyquist check (default ``fs_hz / 2``).

    Returns
    -------
    spikes, encoder : the encoder record as spikes.h5 stores it (``timebase`` with ``dt_s`` and
        ``n_steps``, ``fitted`` parameters, ``settings``, ``seed``), plus ``channel_names`` (one per
        spike channel) and ``stats``; :func:`apply_encoder` encodes new windows with it.
    """
    cfg = encode_settings(dict(settings or {}))
    signals = np.asarray(signals)
    if signals.ndim != 3:
        raise BiospikeError(f"signals must be (windows, channels, samples), got shape {signals.shape}", source)
    if not np.all(np.isfinite(signals)):
        raise BiospikeError("signals contain NaN or infinite values", source)
    names = [str(n) for n in channel_names] if channel_names is not None else [f"ch{c}" for c in range(signals.shape[1])]
    if len(names) != signals.shape[1]:
        raise BiospikeError(f"{len(names)} channel names for {signals.shape[1]} channels", source)
    fs_hz = float(fs_hz)
    band = fs_hz / 2 if band_hz is None else float(band_hz)
    if not 0 < band <= fs_hz / 2:
        raise BiospikeError(f"band_hz must be in (0, fs_hz / 2 = {fs_hz / 2:g}], got {band:g}", source)
    fit = signals if fit_on is None else np.asarray(fit_on)
    if fit.ndim != 3 or fit.shape[1:] != signals.shape[1:]:
        raise BiospikeError(f"fit_on must be windows shaped like signals (M, {signals.shape[1]}, {signals.shape[2]}), "
                            f"got {fit.shape}", source)
    tb = _grid(signals.shape, fs_hz, band, names, encoding, cfg, source)
    spikes, encoder, stats = _encode_on_grid(signals, fit, tb, encoding, cfg, names, int(seed),
                                             "signals" if fit_on is None else "fit_on")
    encoder["channel_names"] = spike_channel_names(encoding, names, cfg)
    encoder["stats"] = stats
    return spikes, encoder


def apply_encoder(signals: np.ndarray, encoder: Mapping[str, Any], seed: int | None = None) -> np.ndarray:
    """Spikes (N, T, C') of new (N, C, L) windows with a fitted encoder record (from
    :func:`encode_signals`, ``Spikes.encoder`` or a model's ``meta["encoder"]``): nothing is
    refitted. ``seed`` (default: the record's) drives the random emissions (rate codes)."""
    tb = TimeBase(**{k: encoder["timebase"][k] for k in ("fs_hz", "n_samples", "dt_s", "n_steps", "band_high_hz")})
    signals = np.asarray(signals)
    if signals.ndim != 3 or signals.shape[2] != tb.n_samples:
        raise BiospikeError(f"signals must be (windows, channels, {tb.n_samples}) like the encoder's windows, "
                            f"got shape {signals.shape}")
    spikes, _ = ENCODINGS[encoder["name"]].apply(signals, encoder["fitted"], tb, encoder["settings"],
                                                 int(encoder.get("seed", 0) if seed is None else seed))
    return spikes


def window_source(win: Windows) -> dict[str, Any]:
    """What a model must know to treat new recordings like its training windows."""
    return {"ingest": dict(win.spec), "fs_hz": float(win.fs_hz), "n_samples": int(win.signals.shape[2]),
            "channel_names": list(win.channel_names), "class_names": list(win.class_names), "modality": win.modality,
            "band_hz": band_high_hz(win.preprocessing, win.fs_hz)}
