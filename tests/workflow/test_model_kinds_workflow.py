"""The newer model kinds and encodings through the whole workflow on the tiny demo data: the
adaptive-threshold SNN (``alif``), the SNN with learned per-neuron constants (``dynsnn``), the
ANN converted to an SNN (``converted``, made from the ANN's checkpoint), the SNN with unsupervised
STDP features (``stdp``), the SNN with a temporal-kernel front end (``tconv``), an ensemble of two
``dynsnn`` (``ensdynsnn_m2``, merged into one network), the time-to-first-spike
and Poisson-Burst encodings; trained, attacked with reference models, exported, simulated (or
skipped with the reason where NIR cannot express the model), reported."""

from __future__ import annotations

import json

import h5py
import nir
import numpy as np
import pytest
import yaml

from tests.workflow.helpers import TINY, run_snakemake

pytestmark = [pytest.mark.workflow, pytest.mark.slow]


@pytest.fixture(scope="module")
def kinds_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("kinds")
    cfg = yaml.safe_load(TINY.read_text())
    cfg["datasets"] = {"demo_emg": cfg["datasets"]["demo_emg"]}
    cfg["encode"]["encodings"] = ["ttfs", "poisson_burst"]
    cfg["encode"]["ttfs"] = {"frame_steps": 10}
    cfg["train"]["models"] = ["alif", "dynsnn", "converted", "stdp", "tconv"]  # converted pulls in the ANN it converts
    cfg["train"]["temporal_kernel"] = {"steps": 3, "dilation": 2}
    cfg["train"]["ensemble_sizes"] = [2]
    cfg["privacy"]["enabled"] = False
    cfg["defense"] = {"input_dropout": [0.3], "jitter_steps": 1, "threshold_noise": [0.2], "kinds": ["converted"]}
    cfg["attack"].update({"targets": ["alif", "dynsnn", "converted", "stdp", "tconv", "ens*", "qdrop*", "qthr*"],
                          "levels": ["window"],
                          "input_dropout": {"enabled": False}})
    cfg["deploy"].update({"targets": ["loihi"], "models": ["alif", "dynsnn", "converted", "stdp", "tconv", "ensdynsnn_m2"]})
    path = workdir / "kinds.yaml"
    path.write_text(yaml.safe_dump(cfg))
    run_snakemake(workdir, "--cores", "2", configfile=path)
    return workdir / "results" / "demo_emg"


def test_new_encodings_write_their_statistics(kinds_run):
    with h5py.File(kinds_run / "ttfs" / "spikes.h5") as f:
        stats = json.loads(f.attrs["stats"])
        spikes = f["spikes"][:]
    assert stats["ttfs_frames_per_window"] >= 1 and spikes.max() == 1
    with h5py.File(kinds_run / "poisson_burst" / "spikes.h5") as f:
        assert json.loads(f.attrs["stats"])["burst_dynamics"] == "poisson"


@pytest.mark.parametrize("encoding", ["ttfs", "poisson_burst"])
def test_alif_and_dynsnn_are_trained_attacked_and_costed(kinds_run, encoding):
    import torch

    alif = torch.load(kinds_run / encoding / "alif" / "model.pt", weights_only=True)
    assert alif["arch"]["neuron"] == "alif" and alif["arch"]["kind"] == "snn"
    dyn = torch.load(kinds_run / encoding / "dynsnn" / "model.pt", weights_only=True)
    assert dyn["arch"]["trainable"] == ["tau_mem", "tau_syn", "v_th"]
    for target in ("alif", "dynsnn"):
        metrics = json.loads((kinds_run / encoding / target / "metrics.json").read_text())
        assert 0 <= metrics["test"]["balanced_accuracy"] <= 1
        attack = json.loads((kinds_run / encoding / target / "attack" / "summary.json").read_text())
        assert attack["attacks"] and attack["K"] == 2
    # NIR cannot express the adaptive threshold: the edge stage says so instead of a wrong graph
    skipped = json.loads((kinds_run / encoding / "alif" / "deploy" / "loihi.json").read_text())
    assert skipped["fits"] is False and "adaptive-threshold" in skipped["skipped"]
    assert not (kinds_run / encoding / "alif" / "deploy" / "model.nir").exists()
    # the learned constants reach the chip per neuron
    graph = nir.read(kinds_run / encoding / "dynsnn" / "deploy" / "model.nir")
    assert np.ptp(graph.nodes["lif0"].tau_mem) > 0
    costed = json.loads((kinds_run / encoding / "dynsnn" / "deploy" / "loihi.json").read_text())
    assert costed["fits"] is True and costed["per_inference"]["syn_events"] > 0


@pytest.mark.parametrize("encoding", ["ttfs", "poisson_burst"])
def test_stdp_snn_is_trained_without_labels_attacked_exported_and_costed(kinds_run, encoding):
    import torch

    checkpoint = torch.load(kinds_run / encoding / "stdp" / "model.pt", weights_only=True)
    assert checkpoint["arch"]["recurrent"] is True and checkpoint["meta"]["kind"] == "stdp"
    rec = checkpoint["state_dict"]["rec.0.weight"]  # the lateral inhibition, kept at inference
    assert torch.all(rec.diagonal() == 0) and torch.all(rec[~torch.eye(len(rec), dtype=torch.bool)] < 0)
    assert torch.all(checkpoint["state_dict"]["fc.0.weight"] >= 0)  # STDP's non-negative weights
    metrics = json.loads((kinds_run / encoding / "stdp" / "metrics.json").read_text())
    layer = metrics["stdp"]["layers"][0]
    assert layer["relative_weight_change"] > 0 and 0 <= metrics["test"]["balanced_accuracy"] <= 1
    attack = json.loads((kinds_run / encoding / "stdp" / "attack" / "summary.json").read_text())
    assert attack["attacks"] and attack["K"] == 2
    graph = nir.read(kinds_run / encoding / "stdp" / "deploy" / "model.nir")
    assert ("lif0", "rec0") in graph.edges
    costed = json.loads((kinds_run / encoding / "stdp" / "deploy" / "loihi.json").read_text())
    assert costed["fits"] is True and costed["per_inference"]["syn_events"] > 0


@pytest.mark.parametrize("encoding", ["ttfs", "poisson_burst"])
def test_temporal_kernel_snn_is_trained_attacked_exported_with_delays_and_costed(kinds_run, encoding):
    import torch

    checkpoint = torch.load(kinds_run / encoding / "tconv" / "model.pt", weights_only=True)
    assert (checkpoint["arch"]["kernel_steps"], checkpoint["arch"]["kernel_dilation"]) == (3, 2)
    n_in = checkpoint["arch"]["n_in"]
    assert checkpoint["state_dict"]["fc.0.taps.weight"].shape[1] == 3 * n_in
    metrics = json.loads((kinds_run / encoding / "tconv" / "metrics.json").read_text())
    assert 0 <= metrics["test"]["balanced_accuracy"] <= 1
    attack = json.loads((kinds_run / encoding / "tconv" / "attack" / "summary.json").read_text())
    assert attack["attacks"] and attack["K"] == 2
    graph = nir.read(kinds_run / encoding / "tconv" / "deploy" / "model.nir")
    delays = sorted(float(n.delay[0]) for n in graph.nodes.values() if isinstance(n, nir.Delay))
    dt_s = checkpoint["arch"]["dt_s"]
    assert delays == pytest.approx([2 * dt_s, 4 * dt_s])
    costed = json.loads((kinds_run / encoding / "tconv" / "deploy" / "loihi.json").read_text())
    assert costed["fits"] is True and costed["per_inference"]["syn_events"] > 0


@pytest.mark.parametrize("encoding", ["ttfs", "poisson_burst"])
def test_converted_snn_is_made_from_the_trained_ann_attacked_and_costed(kinds_run, encoding):
    import torch

    from biospike.models import load_checkpoint

    ann, _ = load_checkpoint(kinds_run / encoding / "ann" / "model.pt")
    converted = torch.load(kinds_run / encoding / "converted" / "model.pt", weights_only=True)
    assert converted["arch"]["kind"] == "snn" and converted["meta"]["kind"] == "converted"
    scales = json.loads((kinds_run / encoding / "converted" / "metrics.json").read_text())["conversion"]["activation_scales"]
    # the first layer's weights are the ANN's times one gain per layer (no retraining)
    ratio = converted["state_dict"]["fc.0.weight"] / ann.fc[0].weight.detach()
    finite = torch.isfinite(ratio)
    assert torch.allclose(ratio[finite], ratio[finite].median(), rtol=1e-4) and len(scales) == 1
    attack = json.loads((kinds_run / encoding / "converted" / "attack" / "summary.json").read_text())
    assert attack["attacks"] and attack["K"] == 2
    graph = nir.read(kinds_run / encoding / "converted" / "deploy" / "model.nir")
    assert "lif0" in graph.nodes
    costed = json.loads((kinds_run / encoding / "converted" / "deploy" / "loihi.json").read_text())
    assert costed["fits"] is True


def test_ensemble_is_merged_attacked_with_reference_ensembles_and_costed(kinds_run):
    import torch

    metrics = json.loads((kinds_run / "ttfs" / "ensdynsnn_m2" / "metrics.json").read_text())
    members = metrics["ensemble"]["members"]
    assert len(members) == 2 and members[0]["seed"] != members[1]["seed"]
    assert members[1]["tau_mem_s"] == pytest.approx(2 * members[0]["tau_mem_s"])  # the default scales
    checkpoint = torch.load(kinds_run / "ttfs" / "ensdynsnn_m2" / "model.pt", weights_only=True)
    assert checkpoint["arch"]["n_hidden"] == [sum(m["hidden"][0] for m in members)]
    attack = json.loads((kinds_run / "ttfs" / "ensdynsnn_m2" / "attack" / "summary.json").read_text())
    # the threat model's references are ensembles made the same way; single models are the comparison
    assert attack["reference_kind"] == "ensdynsnn_m2" and attack["comparison"]["reference_kind"] == "dynsnn"
    graph = nir.read(kinds_run / "ttfs" / "ensdynsnn_m2" / "deploy" / "model.nir")
    assert graph.nodes["lif0"].tau_mem.shape == (checkpoint["arch"]["n_hidden"][0],)
    costed = json.loads((kinds_run / "ttfs" / "ensdynsnn_m2" / "deploy" / "loihi.json").read_text())
    assert costed["fits"] is True and costed["per_inference"]["syn_events"] > 0


def test_query_time_defenses_are_measured_and_attacked_adaptively(kinds_run):
    from biospike.models import load_checkpoint

    for target, name in (("qdropconverted_p0.3", "input_dropout"), ("qthrconverted_sd0.2", "threshold_noise")):
        metrics = json.loads((kinds_run / "ttfs" / target / "metrics.json").read_text())
        assert metrics["defense"]["name"] == name and metrics["defense"]["base"] == "converted"
        _, meta = load_checkpoint(kinds_run / "ttfs" / target / "model.pt")
        assert meta["defense"]["name"] == name
        attack = json.loads((kinds_run / "ttfs" / target / "attack" / "summary.json").read_text())
        assert attack["defense"]["name"] == name and attack["reference_kind"] == "converted"
        assert attack["comparison"]["adaptive"] is False and attack["comparison"]["attacks"]
    # no reference models of their own: the converted kind's serve, wrapped by the attack
    assert not list((kinds_run / "ttfs" / "refs").glob("q*"))


def test_report_lists_the_new_kinds(kinds_run):
    summary = json.loads((kinds_run.parent / "summary.json").read_text())
    rows = {(r["encoding"], r["model"]) for r in summary["rows"]}
    assert rows == {(e, m) for e in ("ttfs", "poisson_burst")
                    for m in ("alif", "dynsnn", "converted", "stdp", "tconv", "ensdynsnn_m2", "qdropconverted_p0.3",
                              "qthrconverted_sd0.2")}
    assert (kinds_run.parent / "summary.html").exists()
