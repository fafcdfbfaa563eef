"""Training stage: fit, metrics, firing checks, CLI outputs, reproducibility, classical baseline."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from biospike.errors import BiospikeError
from biospike.metrics import balanced_accuracy, evaluate, macro_f1
from biospike.models import init_model, predict_logits
from biospike.store import Spikes, Windows, strip_volatile, write_spikes, write_windows
from biospike.train import arch_for, cli, firing_rates, fit, train_settings
from biospike.trainset import select_train_indices
from tests.conftest import envelope


def make_arch(kind, spikes, cfg):
    return arch_for(kind, spikes, cfg)

FAST = {"epochs": 12, "hidden": [32], "patience": 12}


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def synthetic(n_per_subject: int = 30, n_subjects: int = 12, steps: int = 50, channels: int = 8, n_classes: int = 3,
              seed: int = 0, shuffle_labels: bool = False) -> tuple[Spikes, Windows]:
    """Class k raises the spike rate of input channel k (and adds a class-specific sinusoid to the raw
    windows); subjects s00-s07 train, s08-s09 val, s10-s11 test."""
    rng = np.random.default_rng(seed)
    n = n_per_subject * n_subjects
    y = rng.integers(0, n_classes, n)
    subject = np.repeat([f"s{i:02d}" for i in range(n_subjects)], n_per_subject)
    rate = np.full((n, steps, channels), 0.05)
    for k in range(n_classes):
        rate[y == k, :, k] = 0.3
    spikes = (rng.random((n, steps, channels)) < rate).astype(np.uint8)
    signals = rng.normal(size=(n, 2, 128)).astype(np.float32)
    t = np.arange(128) / 128.0
    for k in range(n_classes):
        signals[y == k, 0] += 2.0 * np.sin(2 * np.pi * (5 + 10 * k) * t)
    labels = rng.permutation(y) if shuffle_labels else y
    names = np.array([f"s{i:02d}" for i in range(n_subjects)])
    splits = {"train": np.flatnonzero(np.isin(subject, names[:8])), "val": np.flatnonzero(np.isin(subject, names[8:10])),
              "test": np.flatnonzero(np.isin(subject, names[10:]))}
    class_names = [f"k{i}" for i in range(n_classes)]
    sp = Spikes(spikes=spikes, labels=labels, subject=subject, dt_s=1e-3, channel_names=[f"c{i}" for i in range(channels)],
                class_names=class_names, encoder={"name": "synthetic"}, stats={}, splits=splits)
    win = Windows(signals=signals, labels=labels, subject=subject, record=subject, fs_hz=128.0, channel_names=["a", "b"],
                  class_names=class_names, modality="eeg", preprocessing={}, splits=splits)
    return sp, win


def _fit(kind: str, sp: Spikes, cfg: dict, seed: int = 1):
    arch = make_arch(kind, sp, cfg)
    tr, va = sp.splits["train"], sp.splits["val"]
    return fit(arch, sp.spikes[tr], sp.labels[tr], sp.spikes[va], sp.labels[va], cfg, seed, progress=False)


def _test_bacc(result, sp: Spikes) -> float:
    te = sp.splits["test"]
    return evaluate(predict_logits(result.model, sp.spikes[te]), sp.labels[te], sp.subject[te], sp.class_names)["balanced_accuracy"]


@pytest.mark.parametrize("kind", ["snn", "ann"])
def test_fit_learns_separable_task(kind):
    sp, _ = synthetic()
    result = _fit(kind, sp, FAST)
    assert _test_bacc(result, sp) > 0.9
    assert 1 <= result.best_epoch <= result.epochs_run == len(result.history)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_fit_on_shuffled_labels_stays_near_chance():
    sp, _ = synthetic(shuffle_labels=True)
    result = _fit("snn", sp, FAST)
    assert 0.15 < _test_bacc(result, sp) < 0.55  # chance = 1/3, 60 test windows


def test_fit_is_deterministic_and_seed_dependent():
    sp, _ = synthetic()
    cfg = {**FAST, "epochs": 3}
    logits = [predict_logits(_fit("snn", sp, cfg, seed=s).model, sp.spikes[:40]) for s in (5, 5, 6)]
    np.testing.assert_array_equal(logits[0], logits[1])
    assert not np.array_equal(logits[0], logits[2])


def test_auto_input_scale_makes_every_layer_fire():
    sp, _ = synthetic()
    for hidden in ([32], [32, 16]):
        arch = make_arch("snn", sp, {"hidden": hidden})
        rates = firing_rates(init_model(arch, sp.spikes[sp.splits["train"]], 1), sp.spikes[:60])
        assert all(0.002 < r < 0.5 for r in rates), rates
    # norse's raw scale (input_scale 1) on the same sparse input: far fewer spikes
    raw = firing_rates(init_model(make_arch("snn", sp, {"input_scale": 1.0}), sp.spikes[:0], 1), sp.spikes[:60])
    auto = firing_rates(init_model(make_arch("snn", sp, {}), sp.spikes[:0], 1), sp.spikes[:60])
    assert raw[0] < auto[0] / 3


def test_rate_regularisation_pulls_rates_towards_target():
    sp, _ = synthetic()
    base = _fit("snn", sp, {**FAST, "epochs": 6})
    reg = _fit("snn", sp, {**FAST, "epochs": 6, "rate_reg": {"weight": 1.0, "target_hz": 100.0}})
    assert reg.history[-1]["rate_hidden0_hz"] > base.history[-1]["rate_hidden0_hz"] + 10


def test_balanced_class_weighting_helps_minority_class():
    sp, _ = synthetic(n_per_subject=40)
    keep = np.flatnonzero((sp.labels != 2) | (np.arange(len(sp.labels)) % 8 == 0))  # class 2 rare
    sub = Spikes(spikes=sp.spikes[keep], labels=sp.labels[keep], subject=sp.subject[keep], dt_s=sp.dt_s,
                 channel_names=sp.channel_names, class_names=sp.class_names, encoder={}, stats={},
                 splits={k: np.flatnonzero(np.isin(keep, v)) for k, v in sp.splits.items()})
    recalls = {}
    for weighting in ("balanced", "none"):
        result = _fit("snn", sub, {**FAST, "epochs": 5, "class_weighting": weighting})
        te = sub.splits["test"]
        m = evaluate(predict_logits(result.model, sub.spikes[te]), sub.labels[te], sub.subject[te], sub.class_names)
        recalls[weighting] = m["per_class"]["k2"]["recall"]
    assert recalls["balanced"] >= recalls["none"]
    sampled = _fit("snn", sub, {**FAST, "epochs": 2, "class_weighting": "sampler"})
    assert sampled.epochs_run == 2


def test_unknown_setting_and_missing_cuda_are_clear_errors():
    with pytest.raises(BiospikeError, match=r"train/epoch': unknown key \(did you mean 'epochs'\?\)"):
        train_settings({"epoch": 3})
    if not torch.cuda.is_available():
        sp, _ = synthetic(n_per_subject=4)
        with pytest.raises(BiospikeError, match="CUDA is not available"):
            _fit("snn", sp, {**FAST, "device": "cuda"})


def test_select_train_indices_is_stratified_seeded_and_capped():
    labels = np.array([0] * 80 + [1] * 20)
    idx = np.arange(100)
    a = select_train_indices(idx, labels, 50, seed=3)
    assert len(a) == 50 and np.all(np.diff(a) > 0)
    assert np.sum(labels[a] == 1) == 10
    np.testing.assert_array_equal(a, select_train_indices(idx, labels, 50, seed=3))
    assert not np.array_equal(a, select_train_indices(idx, labels, 50, seed=4))
    np.testing.assert_array_equal(select_train_indices(idx, labels, None, seed=3), idx)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=40))
def test_metrics_match_scikit_learn(pairs):
    import warnings

    from sklearn.metrics import balanced_accuracy_score, confusion_matrix, f1_score

    y_true = np.array([p[0] for p in pairs])
    y_pred = np.array([p[1] for p in pairs])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert balanced_accuracy(y_true, y_pred) == pytest.approx(balanced_accuracy_score(y_true, y_pred))
        assert macro_f1(y_true, y_pred) == pytest.approx(f1_score(y_true, y_pred, average="macro", zero_division=0))
    m = evaluate(y_pred, y_true, np.array(["a"] * len(y_true)), ["w", "x", "y", "z"])
    np.testing.assert_array_equal(np.array(m["confusion"]), confusion_matrix(y_true, y_pred, labels=[0, 1, 2, 3]))
    assert m["per_subject"]["a"]["balanced_accuracy"] == pytest.approx(m["balanced_accuracy"])


def test_evaluate_per_subject_and_logits():
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0], [0.0, 2.0]])
    m = evaluate(logits, np.array([0, 1, 1, 1]), np.array(["p", "p", "q", "q"]), ["a", "b"])
    assert m["accuracy"] == 0.75
    assert m["per_subject"]["p"]["accuracy"] == 1.0
    assert m["per_subject"]["q"]["accuracy"] == 0.5
    assert m["confusion"] == [[1, 0], [1, 2]]
    expected_nll = -np.mean(np.log(np.exp(logits) / np.exp(logits).sum(1, keepdims=True))[np.arange(4), [0, 1, 1, 1]])
    assert m["nll"] == pytest.approx(expected_nll)
    with pytest.raises(BiospikeError, match="columns"):
        evaluate(logits, np.array([0, 1, 1, 1]), np.array(["p"] * 4), ["a", "b", "c"])


def _write(tmp_path: Path, **kwargs) -> tuple[Path, Path]:
    sp, win = synthetic(**kwargs)
    spikes_path = tmp_path / "ds" / "enc" / "spikes.h5"
    windows_path = tmp_path / "ds" / "windows.h5"
    write_spikes(spikes_path, sp)
    write_windows(windows_path, win)
    return spikes_path, windows_path


def _run(spikes_path: Path, windows_path: Path, outdir: Path, model: str, params: dict, extra: tuple = ()) -> int:
    argv = ["--params", envelope(train=params, dataset="ds", encoding="enc"), "--windows", str(windows_path), "--model", model,
            "--outdir", str(outdir), "--no-progress", *extra]
    if model != "classical":
        argv += ["--input", str(spikes_path)]
    return cli(argv, "biospike train")


@pytest.mark.parametrize("model", ["snn", "ann", "classical"])
def test_cli_writes_all_outputs_and_is_reproducible(tmp_path, model):
    spikes_path, windows_path = _write(tmp_path)
    params = {"epochs": 4, "hidden": [16]}
    dirs = [tmp_path / run / "ds" / "enc" / model for run in ("a", "b")]
    for outdir in dirs:
        assert _run(spikes_path, windows_path, outdir, model, params) == 0
    model_file = "model.joblib" if model == "classical" else "model.pt"
    for outdir in dirs:
        assert {p.name for p in outdir.iterdir()} == {model_file, "metrics.json", "curve.csv", "per_subject.csv"}
    a, b = (json.loads((d / "metrics.json").read_text()) for d in dirs)
    assert a["wall_time_s"] > 0
    assert strip_volatile(a) == strip_volatile(b)
    curves = [[{k: v for k, v in r.items() if not k.endswith("time_s")} for r in csv.DictReader((d / "curve.csv").open())]
              for d in dirs]  # wall-clock columns aside
    assert curves[0] == curves[1]
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "confusion", "per_subject"):
        assert key in a["val"] and key in a["test"]
    # utility with uncertainty: subject-bootstrap CIs around the point, n, chance level
    test = a["test"]
    lo, hi = test["balanced_accuracy_ci"]
    assert lo <= test["balanced_accuracy"] <= hi and test["ci"]["unit"] == "subject" and test["ci"]["n_clusters"] == 2
    assert test["n_subjects"] == 2 and test["chance"]["balanced_accuracy"] == pytest.approx(1 / 3)
    rows = list(csv.DictReader((dirs[0] / "per_subject.csv").open()))
    assert {(r["split"], r["subject"]) for r in rows} == {("val", "s08"), ("val", "s09"), ("test", "s10"), ("test", "s11")}
    assert float(rows[-1]["balanced_accuracy"]) == pytest.approx(a["test"]["per_subject"]["s11"]["balanced_accuracy"], abs=1e-5)
    assert set(a["test"]["per_subject"]) == {"s10", "s11"}
    assert a["dataset"] == "ds" and a["encoding"] == "enc" and a["model"] == model
    assert a["n_parameters"] > 0 and a["epochs_run"] >= 1 and 1 <= a["best_epoch"] <= a["epochs_run"]
    assert a["provenance"]["seed"] == a["seed"]
    rows = list(csv.DictReader((dirs[0] / "curve.csv").open()))
    assert len(rows) == a["epochs_run"]
    assert {"epoch", "train_loss", "val_loss", "val_balanced_accuracy", "lr"} <= set(rows[0])
    if model == "snn":
        assert "rate_hidden0_hz" in rows[0]
        layer = a["firing"]["layers"][0]
        assert 1e-3 < layer["mean_rate_per_step"] < 0.9
        spi = a["spikes_per_inference"]
        assert spi["total"] == pytest.approx(spi["input"] + spi["hidden"])
        assert a["status"] == "ok" and a["errors"] == []
    if model != "classical":
        from biospike.models import load_checkpoint

        net, meta = load_checkpoint(dirs[0] / "model.pt")
        assert meta["class_names"] == ["k0", "k1", "k2"] and meta["dt_s"] == 1e-3
        assert meta["train_indices"] == sorted(meta["train_indices"]) and len(meta["train_indices"]) == 240
        assert meta["seed"] == a["seed"] and len(meta["history"]) == a["epochs_run"]


def test_cli_flags_a_silent_network(tmp_path, caplog):
    spikes_path, windows_path = _write(tmp_path, n_per_subject=10)
    outdir = tmp_path / "ds" / "enc" / "snn"
    params = {"epochs": 1, "hidden": [8], "input_scale": 1e-6}
    with pytest.raises(BiospikeError, match="silent"):
        _run(spikes_path, windows_path, outdir, "snn", params)
    metrics = json.loads((outdir / "metrics.json").read_text())
    assert metrics["status"] == "error"
    assert metrics["errors"][0]["code"] == "silent_layer" and "input_scale" in metrics["errors"][0]["hint"]
    assert _run(spikes_path, windows_path, outdir, "snn", {**params, "fail_on_silent": False}) == 0


def test_cli_through_main_exits_non_zero_with_message(tmp_path, capsys):
    from biospike.cli import main

    spikes_path, windows_path = _write(tmp_path, n_per_subject=10)
    outdir = tmp_path / "ds" / "enc" / "snn"
    rc = main(["train", "--params", envelope(train={"epochs": 1, "hidden": [8], "input_scale": 1e-6}),
               "--dataset", "ds", "--encoding", "enc",
               "--input", str(spikes_path), "--model", "snn", "--outdir", str(outdir), "--no-progress"])
    assert rc == 2
    assert "hidden0 is silent" in capsys.readouterr().err
    rc = main(["train", "--input", str(tmp_path / "missing.h5"), "--model", "snn", "--outdir", str(outdir)])
    assert rc == 2


def test_classical_baseline_on_raw_windows(tmp_path):
    from biospike.classical import features, predict_classical

    spikes_path, windows_path = _write(tmp_path)
    outdir = tmp_path / "ds" / "enc" / "classical"
    assert _run(spikes_path, windows_path, outdir, "classical", {}) == 0
    metrics = json.loads((outdir / "metrics.json").read_text())
    assert metrics["test"]["balanced_accuracy"] > 0.9  # class-specific sinusoid in channel a
    assert metrics["firing"] is None and metrics["arch"]["n_features"] == 2 * 7
    _, win = synthetic()
    logp = predict_classical(outdir / "model.joblib", win.signals[win.splits["test"]])
    assert np.mean(logp.argmax(1) == win.labels[win.splits["test"]]) == pytest.approx(metrics["test"]["accuracy"])
    assert features(win.signals[:3], 128.0).shape == (3, 14)


def test_time_step_longer_than_a_time_constant_is_refused():
    sp, _ = synthetic(n_per_subject=4)
    sp.dt_s = 0.03  # 30 ms steps: the Euler update with tau_syn = 20 ms would oscillate and grow
    with pytest.raises(BiospikeError, match="unstable when dt > tau"):
        make_arch("snn", sp, {})
    assert make_arch("snn", sp, {"tau_syn_s": 0.05, "readout_tau_syn_s": 0.05})["dt_s"] == 0.03


def test_init_model_sets_output_scale_from_data_unless_given():
    sp, _ = synthetic()
    arch = make_arch("snn", sp, {"hidden": [16]})
    x = sp.spikes[sp.splits["train"]]
    auto = init_model(arch, x, 1)
    assert auto.arch.output_scale > 1.0  # sparse spikes: the readout features need a gain
    fixed = init_model({**arch, "output_scale": 2.0}, x, 1)
    assert fixed.arch.output_scale == 2.0
    torch.testing.assert_close(fixed.fc[0].weight, auto.fc[0].weight)  # same seeded init otherwise


def test_utility_cis_resample_whole_subjects_and_cover_the_truth():
    """Windows of a subject share its difficulty: the subject bootstrap is wider than a window
    bootstrap would be, and across repeated experiments the 95% interval covers the population
    balanced accuracy about 95% of the time."""
    from biospike.metrics import bootstrap_ci, cluster_ids

    rng = np.random.default_rng(0)
    covered, widths, window_widths = 0, [], []
    truth = 0.75
    for rep in range(200):
        n_subj, per = 12, 30
        skill = truth + rng.uniform(-0.2, 0.2, n_subj)  # per-subject difficulty, mean 0.75
        y = rng.integers(0, 2, n_subj * per)
        correct = rng.random(n_subj * per) < np.repeat(skill, per)
        pred = np.where(correct, y, 1 - y)
        subj = np.repeat(np.arange(n_subj).astype(str), per)
        ci = bootstrap_ci(y, pred, subj, 2, n=400, seed=rep)["balanced_accuracy"]
        covered += ci[0] <= truth <= ci[1]
        widths.append(ci[1] - ci[0])
        if rep < 20:
            by_window = bootstrap_ci(y, pred, np.arange(len(y)).astype(str), 2, n=400, seed=rep)["balanced_accuracy"]
            window_widths.append(by_window[1] - by_window[0])
    assert 0.85 <= covered / 200 <= 0.99
    assert np.mean(window_widths) < 0.8 * np.mean(widths[:20])  # windows alone would claim too much
    # single-subject data: runs of consecutive windows are the clusters
    clusters, unit = cluster_ids(np.array(["a"] * 6), np.array([3, 4, 5, 9, 10, 20]))
    assert unit == "contiguous_run" and len(set(clusters)) == 3


def test_converged_variant_runs_every_epoch_and_keeps_the_last(tmp_path):
    """Lever ``converged``: conv{kind}_ep{N} trains N epochs, no early stopping, last epoch kept;
    its own seed (from its name), its own outputs, through the same CLI."""
    spikes_path, windows_path = _write(tmp_path)
    params = {"epochs": 50, "patience": 1, "hidden": [16]}  # patience 1 would stop the early-stopped model
    assert _run(spikes_path, windows_path, tmp_path / "convsnn_ep4", "convsnn_ep4", params) == 0
    assert _run(spikes_path, windows_path, tmp_path / "snn", "snn", {**params, "epochs": 4}) == 0
    conv = json.loads((tmp_path / "convsnn_ep4" / "metrics.json").read_text())
    plain = json.loads((tmp_path / "snn" / "metrics.json").read_text())
    assert conv["model"] == "convsnn_ep4" and conv["epochs_run"] == 4 and conv["best_epoch"] == 4
    assert not conv["stopped_early"] and conv["seed"] != plain["seed"]
    sp, _ = synthetic()
    cfg = {**FAST, "epochs": 5, "patience": 1}
    arch = make_arch("snn", sp, cfg)
    tr, va = sp.splits["train"], sp.splits["val"]
    last = fit(arch, sp.spikes[tr], sp.labels[tr], sp.spikes[va], sp.labels[va], cfg, 3, progress=False, select="last")
    assert last.epochs_run == 5 and last.best_epoch == 5
    with pytest.raises(BiospikeError, match="select must be one of"):
        fit(arch, sp.spikes[tr], sp.labels[tr], sp.spikes[va], sp.labels[va], cfg, 3, progress=False, select="best")
    # a DP variant is made by its own stage
    with pytest.raises(BiospikeError, match="made by its own stage"):
        cli(["--params", envelope(train=params, dataset="ds", encoding="enc"), "--input", str(spikes_path),
             "--model", "dpsnn_eps1", "--outdir", str(tmp_path / "dp"), "--no-progress"], "biospike train")


def test_adversarial_regularisation_resists_memorising():
    """Nasr et al.'s min-max objective on a task with nothing to learn (shuffled labels, 48 training
    windows, trained to convergence): the plain network memorises its members (loss gap to the
    reference windows ~4 nats), the regularised one at lambda 3 keeps the gap under half of that,
    and its adversary ends near log(1/2), unable to tell members from reference windows."""
    from biospike.train import MembershipAdversary, adversarial_settings

    sp, _ = synthetic(shuffle_labels=True, n_per_subject=6)
    tr, va = sp.splits["train"], sp.splits["val"]
    cfg = {"epochs": 150, "hidden": [128], "patience": 150, "lr": 0.02, "class_weighting": "none", "batch_size": 24}

    def run(settings):
        return fit(make_arch("ann", sp, cfg), sp.spikes[tr], sp.labels[tr], sp.spikes[va], sp.labels[va], settings,
                   3, progress=False, select="last")

    def gap(result):
        loss = [float(torch.nn.functional.cross_entropy(torch.as_tensor(predict_logits(result.model, sp.spikes[i])),
                                                        torch.as_tensor(sp.labels[i]))) for i in (tr, va)]
        return loss[1] - loss[0]

    plain, regular = run(cfg), run(adversarial_settings(cfg, 3.0))
    assert gap(plain) > 2.0  # measured 4.10: members' loss far below the reference windows'
    assert gap(regular) < 0.5 * gap(plain)  # measured 0.59
    assert abs(regular.history[-1]["adversary_log_gain"] - np.log(0.5)) < 0.15
    assert "adversary_log_gain" not in plain.history[-1]
    adversary = MembershipAdversary(3, 8)
    assert adversary(torch.zeros(5, 3), torch.tensor([0, 1, 2, 0, 1])).shape == (5,)
    with pytest.raises(BiospikeError, match="weight > 0"):
        adversarial_settings(cfg, 0.0)
    with pytest.raises(BiospikeError, match="validation split is empty"):
        fit(make_arch("ann", sp, cfg), sp.spikes[tr], sp.labels[tr], sp.spikes[:0], sp.labels[:0],
            adversarial_settings(cfg, 1.0), 1, progress=False)
