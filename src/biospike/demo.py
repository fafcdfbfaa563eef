"""``biospike demo``: labelled synthetic recordings written in the real on-disk formats.

Three modalities, one file (or WFDB record) per subject ``S01..Sn``, so the demo runs through the
same readers as real data:

- ``eeg/S01.edf``: EDF+ like PhysioNet eegmmidb (160 Hz, annotations ``T0`` rest, ``T1``
  left-hand imagery, ``T2`` right-hand imagery). Pink background, occipital alpha, mu and beta
  rhythms over sensorimotor cortex with contralateral event-related desynchronisation (ERD),
  eye blinks on Fz, 50 Hz mains.
- ``ecg/S01.{hea,dat,atr}``: WFDB like MIT-BIH (360 Hz, leads MLII and V5, format 212,
  200 adu/mV) with beat annotations ``N``, ``A`` (premature supraventricular), ``V`` (premature
  ventricular) at the R peaks, plus non-beat annotations (``+`` rhythm, ``~`` signal quality)
  that readers must skip. Beat shapes come from neurokit2's ECGSYN model.
- ``emg/S01.txt``: UCI "EMG data for gestures" text (tab-separated, CRLF, ``time`` in ms with
  dropped samples, 8 Myo channels in volts quantised to 1e-5 V, per-row ``class``: 0 unmarked,
  1 rest, 2 fist, 3 wrist flexion, 4 wrist extension).

Every subject draws its own physiology (amplitudes, rhythms, noise, electrode placement) from
``derive_seed(seed, "demo", modality, subject)``: the same seed gives byte-identical files, and
changing ``n_subjects`` leaves the other subjects unchanged. The three output directories appear
atomically (written beside them, then renamed), followed by ``manifest.json`` (provenance,
per-subject generation parameters, file hashes). Nothing here identifies a person.
"""

from __future__ import annotations

import concurrent.futures
import copy
import dataclasses
import datetime as _dt
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from biospike.config import derive_seed, section_settings
from biospike.errors import BiospikeError

__all__ = ["MODALITIES", "EcgRecording", "EegRecording", "EmgRecording", "cli", "demo_settings", "generate",
           "generate_subject", "simulate_ecg", "simulate_eeg", "simulate_emg", "subject_ids", "write_ecg_wfdb",
           "write_eeg_edf", "write_emg_text"]

MODALITIES = ("eeg", "ecg", "emg")

# EDF header start date: fixed so that the same seed gives the same bytes (and no real date leaks)
EDF_MEAS_DATE = _dt.datetime(2000, 1, 1, tzinfo=_dt.UTC)

# ---- EEG --------------------------------------------------------------------------------------
# Motor channels the demo dataset uses, plus two distractors (Fz: blinks, O1: alpha) that readers
# must drop by name; the file order deliberately differs from the config's channel list.
EEG_CHANNELS = ("Fz", "FC3", "FC4", "C3", "Cz", "C4", "CP3", "CP4", "Pz", "O1")
# flattened scalp positions (x: left -> right, y: back -> front), head radius ~1
_EEG_POS = {
    "Fz": (0.0, 0.7), "FC3": (-0.45, 0.35), "FC4": (0.45, 0.35), "C3": (-0.5, 0.0),
    "Cz": (0.0, 0.0), "C4": (0.5, 0.0), "CP3": (-0.45, -0.35), "CP4": (0.45, -0.35),
    "Pz": (0.0, -0.7), "O1": (-0.3, -1.0),
}
EEG_EVENTS = {0: "T0", 1: "T1", 2: "T2"}  # rest, left-hand imagery, right-hand imagery
EEG_LINE_HZ = 50.0

# ---- ECG --------------------------------------------------------------------------------------
ECG_LEADS = ("MLII", "V5")
ECG_ADC_GAIN = 200.0  # adu per mV, as MIT-BIH
ECG_MAINS_HZ = 60.0
# ECGSYN wave parameters (P, Q, R, S, T): angle (deg), amplitude, width (rad); McSharry et al. 2003
_ECGSYN_N = ((-70.0, -15.0, 0.0, 15.0, 100.0), (1.2, -5.0, 30.0, -7.5, 0.75), (0.25, 0.1, 0.1, 0.1, 0.4))
# premature ventricular beat, in time rather than phase (P, Q, R, S, T): centre (ms from R), width
# (SD, ms), relative amplitude. No P wave, slow wide QRS (~130-170 ms), discordant T.
_PVC_MS = ((-200.0, -40.0, 0.0, 60.0, 300.0), (40.0, 18.0, 26.0, 26.0, 70.0), (0.0, -0.15, 1.0, -0.6, -0.35))
# per-lead scaling of the five waves (V5: taller R and T, small S)
_LEAD_GAMMA = {"MLII": (1.0, 1.0, 1.0, 1.0, 1.0), "V5": (0.8, 0.5, 1.15, 0.35, 1.4)}

# ---- EMG --------------------------------------------------------------------------------------
EMG_CHANNELS = tuple(f"channel{i}" for i in range(1, 9))
EMG_CLASSES = {0: "unmarked", 1: "rest", 2: "fist", 3: "flexion", 4: "extension"}
EMG_LSB_V = 1e-5  # Myo int8 counts scaled to volts, as in the UCI files
EMG_LINE_HZ = 50.0
# forearm muscle groups: angle around the forearm (deg) where each is closest to the skin
_MUSCLE_DEG = {"fcr": 30.0, "fds": 85.0, "ecu": 200.0, "edc": 265.0}
# activation of each muscle group per gesture (fraction of maximum)
_GESTURE_ACT = {
    2: {"fcr": 0.6, "fds": 1.0, "ecu": 0.55, "edc": 0.6},  # fist: finger flexors + co-contraction
    3: {"fcr": 1.0, "fds": 0.7, "ecu": 0.25, "edc": 0.25},  # wrist flexion
    4: {"fcr": 0.25, "fds": 0.25, "ecu": 0.9, "edc": 1.0},  # wrist extension
}


# ================================================================================================
# settings
# ================================================================================================


def demo_settings(params: dict[str, Any]) -> dict[str, Any]:
    """Validate ``params`` (the config's ``demo`` section plus ``seed``) and fill schema defaults."""

    params = copy.deepcopy(dict(params))
    if "seed" not in params:
        raise BiospikeError("--params needs the root 'seed'")
    seed = params.pop("seed")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise BiospikeError(f"seed must be a non-negative integer, got {seed!r}")
    params.pop("threads", None)
    params = section_settings("demo", params)
    eeg_fs = params["eeg"]["fs_hz"]
    if float(eeg_fs) != int(eeg_fs) or eeg_fs < 64:
        raise BiospikeError(f"demo.eeg.fs_hz must be a whole number >= 64 Hz (EDF stores whole samples per second), got {eeg_fs}")
    if params["ecg"]["fs_hz"] < 100:
        raise BiospikeError(f"demo.ecg.fs_hz must be >= 100 Hz to resolve the QRS complex, got {params['ecg']['fs_hz']}")
    if params["ecg"]["duration_s"] < 10:
        raise BiospikeError(f"demo.ecg.duration_s must be >= 10 s, got {params['ecg']['duration_s']}")
    if params["emg"]["fs_hz"] < 500:
        raise BiospikeError(f"demo.emg.fs_hz must be >= 500 Hz for surface EMG (20-450 Hz), got {params['emg']['fs_hz']}")
    params["seed"] = seed
    return params


def subject_ids(n_subjects: int) -> list[str]:
    """``S01..Sn``: two digits, or as many as ``n_subjects`` needs."""
    width = max(2, len(str(n_subjects)))
    return [f"S{i:0{width}d}" for i in range(1, n_subjects + 1)]


# ================================================================================================
# shared signal helpers
# ================================================================================================


def _shaped_noise(rng: np.random.Generator, n_rows: int, n_samples: int, fs_hz: float,
                  gain: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Gaussian noise with amplitude spectrum ``gain(f)``, unit standard deviation per row."""
    from scipy.fft import next_fast_len

    n_fft = next_fast_len(n_samples, real=True)  # a prime-ish length makes the FFT 100x slower
    spec = np.fft.rfft(rng.standard_normal((n_rows, n_fft)), axis=-1)
    spec *= gain(np.fft.rfftfreq(n_fft, 1.0 / fs_hz))
    out = np.fft.irfft(spec, n=n_fft, axis=-1)[:, :n_samples]
    return out / np.maximum(out.std(axis=-1, keepdims=True), 1e-12)


def _narrowband(rng: np.random.Generator, n_rows: int, n_samples: int, fs_hz: float,
                centre_hz: np.ndarray | float, sd_hz: float) -> np.ndarray:
    """Rhythm with a Gaussian spectral peak: its envelope waxes and wanes like real mu/alpha."""
    centre = np.broadcast_to(np.asarray(centre_hz, dtype=float), (n_rows,))[:, None]
    return _shaped_noise(rng, n_rows, n_samples, fs_hz, lambda f: np.exp(-0.5 * ((f - centre) / sd_hz) ** 2))


def _ramp(t: np.ndarray, start: float, rise: float, end: float, fall: float) -> np.ndarray:
    """Trapezoid: 0 before ``start``, 1 from ``start + rise`` to ``end``, 0 after ``end + fall``."""
    return np.interp(t, [start, start + rise, max(end, start + rise), max(end, start + rise) + fall], [0.0, 1.0, 1.0, 0.0])


def _round(params: dict[str, Any]) -> dict[str, Any]:
    """Per-subject parameters for the manifest: plain floats, 4 significant digits."""
    def conv(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, (list, tuple, np.ndarray)):
            return [conv(x) for x in v]
        if isinstance(v, (float, np.floating)):
            return float(f"{float(v):.4g}")
        if isinstance(v, np.integer):
            return int(v)
        return v
    return conv(params)


# ================================================================================================
# EEG: motor imagery, EDF+
# ================================================================================================


@dataclasses.dataclass
class EegRecording:
    """One simulated EEG run: (C, N) volts at ``fs_hz``, annotations (onset and duration in
    seconds, ``T0``/``T1``/``T2``) and the subject's drawn parameters."""

    data_v: np.ndarray  # (C, N) volts
    fs_hz: float
    channel_names: list[str]
    onsets_s: np.ndarray
    durations_s: np.ndarray
    descriptions: list[str]
    subject_params: dict


def simulate_eeg(settings: dict[str, Any], rng: np.random.Generator) -> EegRecording:
    """One subject's motor-imagery run (``settings`` = the ``demo.eeg`` section)."""
    fs = int(settings["fs_hz"])
    n_per_class = int(settings["trials_per_class"])
    trial_s, rest_s = float(settings["trial_s"]), float(settings["rest_s"])

    # --- subject physiology
    amp = float(rng.lognormal(0.0, 0.25))
    p = {
        "amplitude_scale": amp,
        "background_uv": rng.uniform(9.0, 14.0) * amp,
        "pink_exponent": rng.uniform(0.9, 1.5),
        "mu_hz": rng.uniform(9.0, 12.0),
        "mu_uv": rng.uniform(6.0, 10.0) * amp,
        "beta_hz": rng.uniform(18.0, 26.0),
        "beta_rel": rng.uniform(0.35, 0.6),
        "alpha_hz": rng.uniform(8.5, 11.5),
        "alpha_uv": rng.uniform(8.0, 18.0) * amp,
        "hemisphere_ratio": rng.lognormal(0.0, 0.15),  # right/left mu amplitude
        "erd_depth": rng.uniform(0.2, 0.5),  # contralateral amplitude drop
        "erd_ipsi_fraction": rng.uniform(0.1, 0.5),
        "erd_miss_rate": rng.uniform(0.05, 0.3),  # trials without imagery-related ERD
        "erd_latency_s": rng.uniform(0.2, 0.6),
        "source_spread": rng.uniform(0.3, 0.42),
        "blink_rate_hz": rng.uniform(0.08, 0.3),
        "blink_uv": rng.uniform(60.0, 150.0) * amp,
        "line_uv": rng.uniform(0.5, 5.0),
        "sensor_noise_uv": rng.uniform(0.5, 2.0),
    }

    # --- protocol (eegmmidb style): rest, trial, rest, trial, ..., rest
    classes = rng.permutation(np.repeat([1, 2], n_per_class))
    onsets, durations, codes = [], [], []
    t = 0.0
    for cls in classes:
        if rest_s > 0:
            onsets.append(t), durations.append(rest_s), codes.append(0)
            t += rest_s
        onsets.append(t), durations.append(trial_s), codes.append(int(cls))
        t += trial_s
    tail_s = rest_s if rest_s > 0 else 1.0
    if rest_s > 0:
        onsets.append(t), durations.append(rest_s), codes.append(0)
    n = int(np.ceil(t + tail_s)) * fs  # whole seconds: one EDF data record per second
    tt = np.arange(n) / fs

    # --- ERD envelopes: amplitude gain of the left/right sensorimotor mu and beta sources
    mu_gain = np.ones((2, n))
    beta_gain = np.ones((2, n))
    for onset, cls in ((o, c) for o, c in zip(onsets, codes, strict=True) if c):
        strength = 0.0 if rng.random() < p["erd_miss_rate"] else float(np.clip(rng.normal(1.0, 0.3), 0.2, 1.6))
        depth = min(0.9, p["erd_depth"] * strength)
        contra = 1 if cls == 1 else 0  # left hand -> right hemisphere (C4)
        lo, hi = int(onset * fs), min(n, int((onset + trial_s + 1.5) * fs))
        shape = _ramp(tt[lo:hi], onset + p["erd_latency_s"], 0.5, onset + trial_s, 0.8)
        rebound = _ramp(tt[lo:hi], onset + trial_s + 0.3, 0.3, onset + trial_s + 0.7, 0.5)
        for hemi, frac in ((contra, 1.0), (1 - contra, p["erd_ipsi_fraction"])):
            mu_gain[hemi, lo:hi] -= depth * frac * shape
            beta_gain[hemi, lo:hi] -= 0.8 * depth * frac * shape - 0.4 * depth * frac * rebound

    # --- sources
    pos = np.array([_EEG_POS[c] for c in EEG_CHANNELS])
    src_pos = np.array([[-0.5, 0.0], [0.5, 0.0]]) + rng.normal(0.0, 0.06, (2, 2))
    d2 = ((pos[:, None, :] - src_pos[None, :, :]) ** 2).sum(-1)
    motor_mix = np.exp(-0.5 * d2 / p["source_spread"] ** 2)  # (C, 2)
    hemi_amp = np.array([1.0, p["hemisphere_ratio"]]) / np.sqrt(p["hemisphere_ratio"])
    mu = _narrowband(rng, 2, n, fs, p["mu_hz"] + rng.normal(0.0, 0.3, 2), 0.9)
    beta = _narrowband(rng, 2, n, fs, p["beta_hz"] + rng.normal(0.0, 1.0, 2), 2.0)
    motor = (p["mu_uv"] * hemi_amp[:, None]) * (mu_gain * mu + p["beta_rel"] * beta_gain * beta)
    data = motor_mix @ motor

    alpha_d2 = ((pos - np.array([0.0, -1.05])) ** 2).sum(-1)
    alpha_mix = np.exp(-0.5 * alpha_d2 / 0.45**2)
    data += np.outer(alpha_mix, p["alpha_uv"] * _narrowband(rng, 1, n, fs, p["alpha_hz"], 0.7)[0])

    # spatially correlated pink background (volume conduction)
    dist2 = ((pos[:, None, :] - pos[None, :, :]) ** 2).sum(-1)
    chol = np.linalg.cholesky(0.7 * np.exp(-0.5 * dist2 / 0.45**2) + 0.3 * np.eye(len(pos)))
    beta_exp = p["pink_exponent"]
    pink = _shaped_noise(rng, len(pos), n, fs, lambda f: np.where(f > 0.0, np.maximum(f, 0.5) ** (-beta_exp / 2), 0.0))
    chan_gain = rng.lognormal(0.0, 0.12, len(pos))
    data += (p["background_uv"] * chan_gain)[:, None] * (chol @ pink)

    # eye blinks: frontal, decaying backwards
    n_blinks = int(rng.poisson(p["blink_rate_hz"] * n / fs))
    blink_train = np.zeros(n)
    idx = rng.integers(0, n, n_blinks)
    np.add.at(blink_train, idx, rng.uniform(0.7, 1.3, n_blinks))
    tau = rng.uniform(0.07, 0.11)
    kt = np.arange(int(0.8 * fs)) / fs
    kernel = (kt / tau) * np.exp(1.0 - kt / tau)
    blink = np.convolve(blink_train, kernel)[:n] * p["blink_uv"]
    eye_d = np.sqrt(((pos - np.array([0.0, 1.2])) ** 2).sum(-1))
    data += np.outer(np.exp(-(eye_d - eye_d.min()) / 0.35), blink)

    # mains and amplifier noise
    if EEG_LINE_HZ < 0.5 * fs:
        line_amp = p["line_uv"] * rng.uniform(0.3, 1.0, len(pos))
        phase = rng.uniform(0.0, 2 * np.pi, len(pos))
        data += line_amp[:, None] * np.sin(2 * np.pi * EEG_LINE_HZ * tt[None, :] + phase[:, None])
    data += p["sensor_noise_uv"] * rng.standard_normal(data.shape)

    p["n_trials"] = {"T1": n_per_class, "T2": n_per_class}
    return EegRecording(
        data_v=data * 1e-6, fs_hz=float(fs), channel_names=list(EEG_CHANNELS),
        onsets_s=np.asarray(onsets), durations_s=np.asarray(durations),
        descriptions=[EEG_EVENTS[c] for c in codes], subject_params=_round(p),
    )


def write_eeg_edf(path: Path, rec: EegRecording) -> None:
    """EDF+ via MNE/edfio; anonymous header and a fixed start date (byte-reproducible)."""
    import mne

    info = mne.create_info(rec.channel_names, sfreq=rec.fs_hz, ch_types="eeg")
    raw = mne.io.RawArray(rec.data_v, info, verbose="error")
    raw.set_meas_date(EDF_MEAS_DATE)
    raw.set_annotations(mne.Annotations(rec.onsets_s, rec.durations_s, rec.descriptions, orig_time=EDF_MEAS_DATE))
    mne.export.export_raw(str(path), raw, fmt="edf", overwrite=True, verbose="error")


# ================================================================================================
# ECG: beats with premature supraventricular and ventricular ectopy, WFDB
# ================================================================================================


@dataclasses.dataclass
class EcgRecording:
    """One simulated ECG record: (N, 2) millivolts (MLII, V5) at ``fs_hz``, annotations (sample,
    MIT-BIH symbol, aux note) and the subject's drawn parameters."""

    signal_mv: np.ndarray  # (N, 2) MLII, V5
    fs_hz: float
    ann_sample: np.ndarray
    ann_symbol: list[str]
    ann_aux: list[str]
    subject_params: dict


def _ecgsyn_template(fs_hz: float, hr_bpm: float, ti, ai, bi) -> np.ndarray:
    """One cardiac cycle from ECGSYN (neurokit2), centred on its main deflection.

    Baseline-corrected (line through the end points), tapered at the ends and scaled so that
    the main deflection is +-1; overlap-adding cycles at their R times rebuilds a rhythm strip.
    """
    import neurokit2 as nk

    rr_n = int(round(60.0 / hr_bpm * fs_hz))
    x = np.asarray(nk.ecg_simulate(duration=3.6 * 60.0 / hr_bpm, sampling_rate=fs_hz,
                                   heart_rate=hr_bpm, heart_rate_std=0.0, method="ecgsyn", noise=0.0,
                                   random_state=0, ti=ti, ai=ai, bi=bi), dtype=float)
    # ECGSYN starts at phase 0 (the R wave); take the third cycle, away from the start and end
    guess = 2 * rr_n
    lo = guess - rr_n // 3
    seg = x[lo:guess + rr_n // 3]
    peak = lo + int(np.argmax(np.abs(seg - np.median(x))))
    half = rr_n // 2
    beat = x[peak - half:peak + half + 1].copy()
    beat -= np.linspace(beat[0], beat[-1], beat.size)
    taper = max(2, int(0.03 * fs_hz))
    win = np.ones(beat.size)
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(taper) / taper)
    win[:taper], win[-taper:] = ramp, ramp[::-1]
    beat *= win
    return beat / np.abs(beat[half])


def _ecgsyn_from_ms(hr_bpm: float, centre_ms, sd_ms, amplitude) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ECGSYN (ti deg, ai, bi rad) that put waves at the given times/widths/amplitudes at ``hr_bpm``.

    Inverts ECGSYN's heart-rate scaling (ti by sqrt(hr/60) or its square root, bi by sqrt(hr/60));
    a wave's height is about ai * bi**2 / omega.
    """
    rr_s = 60.0 / hr_bpm
    fact = np.sqrt(hr_bpm / 60.0)
    scale = np.array([np.sqrt(fact), fact, 1.0, fact, np.sqrt(fact)])
    ti = np.asarray(centre_ms) / 1000.0 / rr_s * 360.0 / scale
    bi = np.asarray(sd_ms) / 1000.0 / rr_s * 2 * np.pi / fact
    ai = np.asarray(amplitude) * (2 * np.pi / rr_s) / bi**2
    return ti, ai, bi


def _wave_params(base, gamma, rng: np.random.Generator, jitter: float):
    ti, ai, bi = (np.array(v, dtype=float) for v in base)
    ti = ti + rng.normal(0.0, 4.0, 5) * jitter
    ai = ai * np.asarray(gamma) * rng.lognormal(0.0, 0.12 * jitter, 5)
    bi = bi * rng.lognormal(0.0, 0.08 * jitter, 5)
    return ti, ai, bi


def simulate_ecg(settings: dict[str, Any], rng: np.random.Generator) -> EcgRecording:
    """One subject's two-lead Holter-like strip (``settings`` = the ``demo.ecg`` section)."""
    fs = float(settings["fs_hz"])
    duration_s = float(settings["duration_s"])
    n = int(round(duration_s * fs))
    tt = np.arange(n) / fs

    p = {
        "heart_rate_bpm": rng.uniform(55.0, 95.0),
        "hrv_fraction": rng.uniform(0.02, 0.07),
        "resp_hz": rng.uniform(0.2, 0.33),
        "p_premature_atrial": rng.uniform(0.05, 0.15),
        "p_premature_ventricular": rng.uniform(0.02, 0.10),
        "atrial_coupling": [rng.uniform(0.65, 0.75), rng.uniform(0.82, 0.95)],
        "ventricular_coupling": [rng.uniform(0.55, 0.65), rng.uniform(0.7, 0.8)],
        "r_amplitude_mv": {"MLII": rng.uniform(0.8, 1.8), "V5": rng.uniform(0.7, 2.0)},
        "pvc_amplitude_ratio": rng.uniform(1.1, 1.8),
        "pvc_polarity": {"MLII": float(rng.choice([-1.0, 1.0], p=[0.4, 0.6])), "V5": float(rng.choice([-1.0, 1.0]))},
        "pvc_morphologies": int(rng.choice([1, 2], p=[0.7, 0.3])),
        "baseline_wander_mv": rng.uniform(0.03, 0.2),
        "muscle_noise_mv": rng.uniform(0.005, 0.03),
        "mains_mv": rng.uniform(0.003, 0.02),
        "n_artifact_bursts": int(rng.integers(0, 3)),
    }
    hr = p["heart_rate_bpm"]

    # --- templates per lead and beat kind (ECGSYN morphology, subject-specific wave parameters)
    templates: dict[str, dict[str, list[np.ndarray]]] = {}
    atrial_p = rng.uniform(-0.8, 0.9)  # ectopic P wave: inverted, flat, small or near normal
    atrial_ti = rng.uniform(-62.0, -50.0)  # shorter PR
    for lead in ECG_LEADS:
        gamma = _LEAD_GAMMA[lead]
        ti, ai, bi = _wave_params(_ECGSYN_N, gamma, rng, 1.0)
        normal = _ecgsyn_template(fs, hr, ti, ai, bi)
        ai_a, ti_a = ai.copy(), ti.copy()
        ai_a[0], ti_a[0] = ai[0] * atrial_p, atrial_ti
        atrial = _ecgsyn_template(fs, hr, ti_a, ai_a, bi)
        pvcs = []
        for _ in range(p["pvc_morphologies"]):
            centre = np.array(_PVC_MS[0]) * rng.lognormal(0.0, 0.1, 5)
            width = np.array(_PVC_MS[1]) * rng.lognormal(0.0, 0.12, 5)
            height = np.array(_PVC_MS[2]) * rng.lognormal(0.0, 0.2, 5)
            # a slower cycle so that the wide complex and its T wave fit before the next beat
            hr_v = 0.6 * hr
            tpl = _ecgsyn_template(fs, hr_v, *_ecgsyn_from_ms(hr_v, centre, width, height))
            pvcs.append(p["pvc_polarity"][lead] * tpl)
        templates[lead] = {"N": [normal], "A": [atrial], "V": pvcs}

    # --- rhythm: sinus with respiratory/Mayer-wave variability, premature beats
    rr0 = 60.0 / hr
    mayer_phase, resp_phase = rng.uniform(0, 2 * np.pi, 2)

    def sinus_rr(t: float) -> float:
        mod = 0.6 * np.sin(2 * np.pi * p["resp_hz"] * t + resp_phase) + 0.4 * np.sin(2 * np.pi * 0.1 * t + mayer_phase)
        return rr0 * (1.0 + p["hrv_fraction"] * (mod + 0.3 * rng.standard_normal()))

    beats: list[tuple[float, str]] = []
    t_beat = rng.uniform(0.3, 0.8)
    prev = "N"
    next_rr: float | None = None
    while t_beat < duration_s - 0.6:
        beats.append((t_beat, prev))
        rr = sinus_rr(t_beat)
        if next_rr is not None:  # beat after an ectopic: pause
            gap, next_rr = next_rr, None
            kind = "N"
        else:
            u = rng.random()
            if prev == "N" and u < p["p_premature_atrial"]:
                kind = "A"
                gap = rr * rng.uniform(*p["atrial_coupling"])
                next_rr = rr * rng.uniform(1.0, 1.15)  # sinus node reset: incomplete pause
            elif prev == "N" and u < p["p_premature_atrial"] + p["p_premature_ventricular"]:
                kind = "V"
                gap = rr * rng.uniform(*p["ventricular_coupling"])
                next_rr = 2.0 * rr - gap  # full compensatory pause
            else:
                kind, gap = "N", rr
        t_beat += gap
        prev = kind
    times = np.array([b[0] for b in beats])
    kinds = [b[1] for b in beats]

    # --- assemble beat by beat
    r_idx = np.round(times * fs).astype(int)
    resp = 1.0 + 0.07 * np.sin(2 * np.pi * p["resp_hz"] * times + resp_phase)
    sig = np.zeros((n, len(ECG_LEADS)))
    pvc_choice = rng.integers(0, p["pvc_morphologies"], len(times))
    beat_scale = resp * rng.lognormal(0.0, 0.03, len(times))
    pvc_scale = rng.uniform(0.9, 1.1, len(times))
    for j, lead in enumerate(ECG_LEADS):
        r_amp = p["r_amplitude_mv"][lead]
        for k, (r, kind) in enumerate(zip(r_idx, kinds, strict=True)):
            tpl = templates[lead][kind][pvc_choice[k] if kind == "V" else 0]
            scale = r_amp * (p["pvc_amplitude_ratio"] * pvc_scale[k] if kind == "V" else beat_scale[k])
            half = tpl.size // 2
            a, b = r - half, r - half + tpl.size
            ta, tb = max(0, -a), tpl.size - max(0, b - n)
            sig[max(a, 0):min(b, n), j] += scale * tpl[ta:tb]

    # --- noise: baseline wander, motion artefacts, muscle, mains
    low = np.zeros((n, len(ECG_LEADS)))
    for j in range(len(ECG_LEADS)):
        f = rng.uniform(0.05, 0.5, 4)
        ph = rng.uniform(0, 2 * np.pi, 4)
        wander = np.sin(2 * np.pi * f[:, None] * tt[None, :] + ph[:, None]).sum(0) / 2.0
        wander += 0.5 * np.sin(2 * np.pi * p["resp_hz"] * tt + resp_phase + j)
        low[:, j] = p["baseline_wander_mv"] * wander
    aux_events: list[tuple[int, str, str]] = [(0, "+", "(N")]
    burst_noise = _shaped_noise(rng, len(ECG_LEADS), n, fs, lambda f: ((f > 0.5) & (f < 15.0)).astype(float)).T
    for _ in range(p["n_artifact_bursts"]):
        start_s = rng.uniform(5.0, max(5.5, duration_s - 8.0))
        length_s = rng.uniform(1.0, 3.0)
        lo, hi = int(start_s * fs), min(n, int((start_s + length_s) * fs))
        amp = rng.uniform(0.1, 0.35)
        low[lo:hi] += amp * np.hanning(hi - lo)[:, None] * burst_noise[lo:hi]
        aux_events += [(lo, "~", ""), (hi, "~", "")]
    muscle = _shaped_noise(rng, len(ECG_LEADS), n, fs, lambda f: ((f > 1.0) & (f < 0.45 * fs)).astype(float)).T
    noise = p["muscle_noise_mv"] * muscle
    if ECG_MAINS_HZ < 0.5 * fs:
        noise += p["mains_mv"] * np.sin(2 * np.pi * ECG_MAINS_HZ * tt + rng.uniform(0, 2 * np.pi))[:, None]
    sig_mv = sig + low + noise

    # the annotation sits on the R peak: the largest deflection of MLII (after removing the
    # slow components we added) within +-30 ms of the beat's template centre
    digital = np.round(sig_mv * ECG_ADC_GAIN)
    detrended = digital[:, 0] - np.round(low[:, 0] * ECG_ADC_GAIN)
    w = int(round(0.03 * fs))
    ann = []
    for r in r_idx:
        a, b = max(0, r - w), min(n, r + w + 1)
        ann.append(a + int(np.argmax(np.abs(detrended[a:b]))))
    p["beats"] = {s: int(sum(k == s for k in kinds)) for s in ("N", "A", "V")}

    events = [(int(s), k, "") for s, k in zip(ann, kinds, strict=True)] + aux_events
    events.sort(key=lambda e: (e[0], e[1] not in "+~"))
    return EcgRecording(
        signal_mv=digital / ECG_ADC_GAIN, fs_hz=fs,
        ann_sample=np.array([e[0] for e in events], dtype=np.int64),
        ann_symbol=[e[1] for e in events], ann_aux=[e[2] for e in events],
        subject_params=_round(p),
    )


def write_ecg_wfdb(directory: Path, record: str, rec: EcgRecording) -> None:
    """``record.hea/.dat`` (format 212, 200 adu/mV) and ``record.atr`` with MIT-BIH symbols."""
    import wfdb

    limit = 2047  # 12-bit two's complement in format 212
    digital = np.clip(np.round(rec.signal_mv * ECG_ADC_GAIN), -limit, limit).astype(np.int64)
    wfdb.wrsamp(record, fs=rec.fs_hz, units=["mV"] * len(ECG_LEADS), sig_name=list(ECG_LEADS),
                d_signal=digital, fmt=["212"] * len(ECG_LEADS), adc_gain=[ECG_ADC_GAIN] * len(ECG_LEADS),
                baseline=[0] * len(ECG_LEADS), comments=["biospike synthetic demo record"],
                write_dir=str(directory))
    wfdb.wrann(record, "atr", rec.ann_sample, symbol=rec.ann_symbol, aux_note=rec.ann_aux,
               fs=rec.fs_hz, write_dir=str(directory))


# ================================================================================================
# EMG: forearm gestures, UCI text layout
# ================================================================================================


@dataclasses.dataclass
class EmgRecording:
    """One simulated EMG session as the UCI files store it: time stamps in ms (with dropped
    samples), 8 channels in steps of ``EMG_LSB_V`` volts, a class per row, the drawn parameters."""

    time_ms: np.ndarray  # (N,) int, monotone, with dropped samples
    counts: np.ndarray  # (N, 8) int, volts / EMG_LSB_V
    classes: np.ndarray  # (N,) int 0..4
    subject_params: dict


def _emg_carrier_gain(fl_hz: float, fh_hz: float, fs_hz: float):
    """Surface-EMG amplitude spectrum (Shwedyk et al.), band-limited to 20-450 Hz."""
    top = min(450.0, 0.45 * fs_hz)

    def gain(f: np.ndarray) -> np.ndarray:
        psd = fh_hz**4 * f**2 / ((f**2 + fl_hz**2) * (f**2 + fh_hz**2) ** 2)
        return np.sqrt(psd) * ((f >= 20.0) & (f <= top))
    return gain


def simulate_emg(settings: dict[str, Any], rng: np.random.Generator) -> EmgRecording:
    """One subject's gesture session (``settings`` = the ``demo.emg`` section)."""
    fs = float(settings["fs_hz"])
    reps = int(settings["reps_per_gesture"])
    gesture_s, rest_s = float(settings["gesture_s"]), float(settings["rest_s"])

    p = {
        "armband_rotation_deg": rng.uniform(-30.0, 30.0),
        "tuning_kappa": rng.uniform(1.0, 2.5),
        "muscle_strength": {m: rng.lognormal(0.0, 0.4) for m in _MUSCLE_DEG},
        "muscle_angle_jitter_deg": {m: rng.normal(0.0, 10.0) for m in _MUSCLE_DEG},
        "gesture_rms_v": rng.uniform(1.2e-4, 3.5e-4),
        "channel_gain": rng.lognormal(0.0, 0.2, len(EMG_CHANNELS)),
        "rest_activity": rng.uniform(0.01, 0.06),
        "noise_floor_v": rng.uniform(0.8e-5, 2.0e-5),
        "line_v": rng.uniform(0.2e-5, 1.2e-5),
        "spectrum_fl_hz": rng.uniform(40.0, 70.0),
        "spectrum_fh_hz": rng.uniform(90.0, 150.0),
        "drop_fraction": rng.uniform(0.01, 0.05),
    }

    # --- protocol: per repetition, the three gestures in random order, each preceded by rest
    segments: list[tuple[int, float]] = []  # (class, duration s)
    for _ in range(reps):
        for g in rng.permutation([2, 3, 4]):
            segments += [(0, rng.uniform(0.3, 0.7)), (1, rest_s), (0, rng.uniform(0.3, 0.7)), (int(g), gesture_s)]
    segments.append((0, rng.uniform(0.5, 1.0)))
    bounds = np.concatenate([[0.0], np.cumsum([d for _, d in segments])])
    n = int(np.ceil(bounds[-1] * fs))
    tt = np.arange(n) / fs
    labels = np.zeros(n, dtype=np.int64)
    for (cls, _), a, b in zip(segments, bounds[:-1], bounds[1:], strict=True):
        labels[int(round(a * fs)):int(round(b * fs))] = cls

    # --- muscle activation envelopes: onset ramps start before or after the label, per-rep force
    muscles = list(_MUSCLE_DEG)
    env = np.full((len(muscles), n), p["rest_activity"])
    for (cls, _), a, b in zip(segments, bounds[:-1], bounds[1:], strict=True):
        if cls < 2:
            continue
        force = rng.uniform(0.6, 1.2)
        start = a + rng.uniform(-0.3, 0.25)
        rise = rng.uniform(0.15, 0.5)
        stop = b + rng.uniform(-0.3, 0.1)
        fall = rng.uniform(0.1, 0.4)
        lo, hi = max(0, int((start - 0.1) * fs)), min(n, int((stop + fall + 0.1) * fs))
        shape = _ramp(tt[lo:hi], start, rise, stop, fall)
        wobble = rng.lognormal(0.0, 0.35, len(muscles))  # how this repetition recruits each muscle
        for i, m in enumerate(muscles):
            env[i, lo:hi] += force * wobble[i] * _GESTURE_ACT[cls][m] * p["muscle_strength"][m] * shape
    # force wanders during a hold (0.3-3 Hz) and motor-unit recruitment fluctuates (3-10 Hz)
    wander = _shaped_noise(rng, len(muscles), n, fs, lambda f: ((f > 0.3) & (f < 3.0)).astype(float))
    tremor = _shaped_noise(rng, len(muscles), n, fs, lambda f: ((f >= 3.0) & (f < 10.0)).astype(float))
    env *= np.clip(1.0 + 0.25 * wander + 0.15 * tremor, 0.2, None)

    # --- volume conduction onto 8 electrodes around the forearm
    ch_deg = np.arange(len(EMG_CHANNELS)) * 45.0 + p["armband_rotation_deg"]
    mus_deg = np.array([_MUSCLE_DEG[m] + p["muscle_angle_jitter_deg"][m] for m in muscles])
    mix = np.exp(p["tuning_kappa"] * (np.cos(np.radians(ch_deg[:, None] - mus_deg[None, :])) - 1.0))  # (8, M)
    gain = _emg_carrier_gain(p["spectrum_fl_hz"], p["spectrum_fh_hz"], fs)
    shared = _shaped_noise(rng, len(muscles), n, fs, gain)
    local = _shaped_noise(rng, len(EMG_CHANNELS) * len(muscles), n, fs, gain).reshape(len(EMG_CHANNELS), len(muscles), n)
    # each electrode sees each muscle's activity partly as the common signal, partly its own view
    carriers = 0.6 * shared[None, :, :] + 0.8 * local
    emg = np.einsum("cm,mn,cmn->cn", mix, env, carriers)
    emg *= (p["gesture_rms_v"] * p["channel_gain"])[:, None]

    # --- rest noise, mains hum, Myo-like 8-bit quantisation
    emg += p["noise_floor_v"] * _shaped_noise(rng, len(EMG_CHANNELS), n, fs, lambda f: (f >= 5.0).astype(float))
    line_phase = rng.uniform(0, 2 * np.pi, len(EMG_CHANNELS))
    emg += p["line_v"] * np.sin(2 * np.pi * EMG_LINE_HZ * tt[None, :] + line_phase[:, None])
    counts = np.clip(np.round(emg / EMG_LSB_V), -128, 127).astype(np.int64).T

    # time stamps in ms from 1, with a few dropped samples as the UCI recordings have
    keep = rng.random(n) >= p["drop_fraction"]
    keep[0] = True
    time_ms = np.round(np.arange(1, n + 1) * (1000.0 / fs)).astype(np.int64)
    p["channel_gain"] = list(p["channel_gain"])
    p["n_repetitions"] = reps
    return EmgRecording(time_ms=time_ms[keep], counts=counts[keep], classes=labels[keep], subject_params=_round(p))


_EMG_VALUE_TEXT = [f"{k * EMG_LSB_V:.5g}" for k in range(-128, 128)]  # "-0.00128" ... "1e-05", "0"


def write_emg_text(path: Path, rec: EmgRecording) -> None:
    """UCI layout: header ``time channel1..8 class``, tab-separated, CRLF line ends."""
    table = np.array(_EMG_VALUE_TEXT, dtype=object)
    cells = table[rec.counts + 128]
    rows = ["\t".join(["time", *EMG_CHANNELS, "class"])]
    rows += ["\t".join((str(t), *vals, str(c))) for t, vals, c in zip(rec.time_ms.tolist(), cells.tolist(), rec.classes.tolist(), strict=True)]
    with open(path, "w", newline="", encoding="ascii") as fh:
        fh.write("\r\n".join(rows) + "\r\n")


# ================================================================================================
# driver
# ================================================================================================


def generate_subject(modality: str, subject: str, settings: dict[str, Any], root_seed: int, directory: Path) -> dict:
    """Simulate and write one subject's recording into ``directory``; return its parameters."""
    rng = np.random.default_rng(derive_seed(root_seed, "demo", modality, subject))
    if modality == "eeg":
        rec = simulate_eeg(settings, rng)
        write_eeg_edf(directory / f"{subject}.edf", rec)
    elif modality == "ecg":
        rec = simulate_ecg(settings, rng)
        write_ecg_wfdb(directory, subject, rec)
    elif modality == "emg":
        rec = simulate_emg(settings, rng)
        write_emg_text(directory / f"{subject}.txt", rec)
    else:
        raise ValueError(f"unknown modality {modality!r}")
    return rec.subject_params


def _job(args: tuple) -> tuple[str, str, dict]:
    modality, subject, settings, seed, directory = args
    try:
        return modality, subject, generate_subject(modality, subject, settings, seed, Path(directory))
    except BiospikeError:
        raise
    except Exception as exc:  # library errors (MNE, wfdb, OS) -> one clear line
        raise BiospikeError(f"cannot write {modality} recording {subject}: {type(exc).__name__}: {exc}", directory) from exc


_FORMATS = {
    "eeg": {"files": "eeg/<subject>.edf", "format": "EDF+ (MNE export)", "channels": list(EEG_CHANNELS),
            "units": "uV in the EDF (volts in MNE)", "annotations": {"T0": "rest", "T1": "left-hand imagery", "T2": "right-hand imagery"}},
    "ecg": {"files": "ecg/<subject>.{hea,dat,atr}", "format": "WFDB 212, 200 adu/mV", "leads": list(ECG_LEADS),
            "beat_symbols": {"N": "normal", "A": "premature atrial (supraventricular)", "V": "premature ventricular"},
            "non_beat_symbols": {"+": "rhythm change (aux '(N')", "~": "signal quality change"}},
    "emg": {"files": "emg/<subject>.txt", "format": "UCI EMG-gestures text: tab-separated, CRLF, time in ms",
            "channels": list(EMG_CHANNELS), "units": "V (8-bit, 1e-5 V steps)", "classes": EMG_CLASSES},
}


def generate(params: dict[str, Any], out_dir: str | Path, threads: int = 1) -> dict:
    """Write ``out_dir/{eeg,ecg,emg}`` and ``out_dir/manifest.json``; return the manifest.

    Everything is written into a hidden temporary directory inside ``out_dir`` first; the three
    modality directories are renamed into place only when every file exists, so an error leaves
    no partial output behind.
    """
    from biospike.store import provenance, sha256_file, write_json

    settings = demo_settings(params)
    seed = settings["seed"]
    out_dir = Path(out_dir)
    subjects = subject_ids(int(settings["n_subjects"]))
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".demo-", dir=out_dir))
    except OSError as exc:
        raise BiospikeError(f"cannot create the output directory ({exc.strerror})", out_dir) from None
    try:
        jobs = []
        for modality in MODALITIES:
            (tmp / modality).mkdir()
            jobs += [(modality, s, settings[modality], seed, str(tmp / modality)) for s in subjects]
        started = time.perf_counter()
        if threads > 1:
            with concurrent.futures.ProcessPoolExecutor(max_workers=threads) as pool:
                results = list(pool.map(_job, jobs))
        else:
            results = [_job(j) for j in jobs]
        wall_s = time.perf_counter() - started

        per_subject: dict[str, dict[str, dict]] = {m: {} for m in MODALITIES}
        for modality, subject, sp in results:
            per_subject[modality][subject] = sp
        files = {
            str(f.relative_to(tmp)): {"bytes": f.stat().st_size, "sha256": sha256_file(f)}
            for modality in MODALITIES for f in sorted((tmp / modality).iterdir())
        }
        manifest = {
            "provenance": provenance({"demo": {k: v for k, v in settings.items() if k != "seed"}}, seed=seed),
            "subjects": subjects,
            "formats": _FORMATS,
            "generation": per_subject,
            "files": files,
            "wall_time_s": round(wall_s, 2),
        }
        write_json(tmp / "manifest.json", manifest)

        # swap in: move any previous output aside (into tmp, deleted below), then rename
        for modality in MODALITIES:
            final = out_dir / modality
            if final.exists() or final.is_symlink():
                os.replace(final, tmp / f"previous-{modality}")
            os.replace(tmp / modality, final)
        os.replace(tmp / "manifest.json", out_dir / "manifest.json")
        return manifest
    except OSError as exc:
        raise BiospikeError(f"cannot write demo recordings ({exc})", out_dir) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def cli(argv: list[str], prog: str = "biospike demo") -> int:
    """``biospike demo``: write the recordings (``--out-dir``, else ``demo.out_dir``); returns the exit code."""
    from biospike.cliutil import load_context, stage_parser

    parser = stage_parser(prog, "Write labelled synthetic EEG (EDF+), ECG (WFDB) and EMG (text) recordings.",
                          sections=("demo",), names=())
    parser.add_argument("--out-dir", default=None, help="output directory (default: the 'out_dir' setting)")
    args = parser.parse_args(argv)
    ctx = load_context(args)
    out_dir = args.out_dir or ctx["demo"]["out_dir"]
    started = time.perf_counter()
    manifest = generate({**ctx["demo"], "seed": ctx.root_seed()}, out_dir, threads=args.threads)
    total_bytes = sum(f["bytes"] for f in manifest["files"].values())
    print(f"{prog}: wrote {len(manifest['subjects'])} subjects x {len(MODALITIES)} modalities "
          f"({len(manifest['files'])} files, {total_bytes / 1e6:.1f} MB) to {out_dir} "
          f"in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0
