"""Hardware profiles load and validate; every constant has a source; mapping fits or says why not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from biospike.deploy.hardware import (
    load_profile,
    profile_from_dict,
    step_time_s,
    xylo_cycles_per_step,
)
from biospike.deploy.mapping import map_network
from biospike.deploy.nir_export import export_nir
from biospike.deploy.quantize import quantize_network
from biospike.deploy.simulator import network_from_nir
from biospike.errors import BiospikeError
from biospike.models import build_model

HW = Path(__file__).resolve().parents[2] / "config" / "hardware"
REQUIRED = {"loihi", "loihi2", "spinnaker2", "xylo_audio2", "speck", "truenorth", "cortex_m4"}


def test_all_profiles_load_with_a_source_for_every_constant():
    names = {p.stem for p in HW.glob("*.yaml")}
    assert REQUIRED <= names
    for path in HW.glob("*.yaml"):
        prof = load_profile(path)
        assert prof.name == path.stem
        assert set(prof.sources) == set(prof.values)
        for key, src in prof.sources.items():
            assert len(src["ref"]) > 10, key
            assert src["verified"].split(":")[0] in ("yes", "no", "partly"), (path.name, key)


def test_bad_profile_names_file_and_key(tmp_path):
    data = yaml.safe_load((HW / "loihi.yaml").read_text())
    data["values"]["cores"] = "many"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(BiospikeError, match=r"bad.yaml.*values/cores"):
        load_profile(bad)
    data = yaml.safe_load((HW / "loihi.yaml").read_text())
    del data["sources"]["energy_synop_j"]
    with pytest.raises(BiospikeError, match="energy_synop_j"):
        profile_from_dict(data, "x.yaml")
    data = yaml.safe_load((HW / "loihi.yaml").read_text())
    data["values"]["typo_key"] = 1
    with pytest.raises(BiospikeError, match="typo_key"):
        profile_from_dict(data, "x.yaml")


def _net(n_in, hidden, n_out=3, recurrent=False):
    torch.manual_seed(0)
    return network_from_nir(export_nir(build_model({"kind": "snn", "n_in": n_in, "n_hidden": hidden, "n_out": n_out,
                                                    "recurrent": recurrent})))


@pytest.mark.parametrize("target", ["loihi", "loihi2", "spinnaker2", "xylo_audio2", "speck", "truenorth"])
def test_small_model_fits_everywhere(target):
    net = _net(8, [32, 16])
    prof = load_profile(HW / f"{target}.yaml")
    mapping = map_network(net, prof, quantize_network(net, prof).weight_ints)
    assert mapping.fits, mapping.reasons
    assert mapping.cores_used >= 1


def test_fan_out_output_axons_and_truenorth_splitters():
    from biospike.deploy.mapping import destination_cores

    net = _net(8, [300, 16])  # 300 neurons: two TrueNorth cores, two Loihi cores of 150 or one
    tn = load_profile(HW / "truenorth.yaml")
    m = map_network(net, tn, quantize_network(net, tn).weight_ints)
    w = quantize_network(net, tn).weight_ints
    dests = destination_cores(net, w, m.core_of)
    # every hidden-0 neuron with a non-zero weight into layer 1 reaches layer 1's single core
    assert dests[net.hidden[0].name].max() == 1 and dests[net.hidden[1].name].max() == 1
    assert m.details["splitter_neurons"] == 0
    # recurrent: each neuron also feeds its own layer, split over two cores -> up to 3 destination
    # cores, each such neuron needs a splitter neuron per destination core
    rec = _net(8, [300, 16], recurrent=True)
    q = quantize_network(rec, tn).weight_ints
    m = map_network(rec, tn, q)
    d = destination_cores(rec, q, m.core_of)
    expect = int(sum(int(np.sum(np.where(v > 1, v, 0))) for v in d.values()))
    assert expect > 300 and m.details["splitter_neurons"] == expect
    assert m.details["splitter_cores"] == -(-expect // 256) and m.details["splitter_delay_steps"] == 1
    assert m.cores_used == len({int(c) for c in np.concatenate(list(m.core_of.values()))}) + m.details["splitter_cores"]
    # the relay is priced: per spike of a relayed neuron, one synaptic event and one spike per
    # splitter and one packet to the splitter core; every splitter updates every step
    from biospike.deploy.simulator import count_events, simulate_float

    x = (np.random.default_rng(0).random((4, 30, 8)) < 0.4).astype(np.uint8) * 3
    trace = simulate_float(rec, x)
    plain = count_events(rec, trace, x, weights=q, dest_cores=m.dest_packets)
    relayed = count_events(rec, trace, x, weights=q, dest_cores=m.dest_packets, splitters=m.splitters)
    pop = rec.hidden[0].name
    extra = trace.spikes[pop].astype(float) @ m.splitters[pop].astype(float)
    assert extra.sum() > 0
    np.testing.assert_allclose(relayed["syn_events"] - plain["syn_events"], extra)
    np.testing.assert_allclose(relayed["spikes"] - plain["spikes"], extra)
    np.testing.assert_allclose(relayed["routed"] - plain["routed"],
                               trace.spikes[pop].astype(float) @ (m.splitters[pop] > 0).astype(float))
    assert relayed["neuron_updates"][0, 0] - plain["neuron_updates"][0, 0] == m.details["splitter_neurons"]
    # output axons per core: counted per source neuron and destination core, checked against the limit
    loihi = load_profile(HW / "loihi.yaml")
    ql = quantize_network(rec, loihi).weight_ints
    ml = map_network(rec, loihi, ql)
    axons = {}
    for name, dv in destination_cores(rec, ql, ml.core_of).items():
        for core, n in zip(ml.core_of[name].tolist(), dv.tolist(), strict=True):
            axons[core] = axons.get(core, 0) + n
    assert ml.details["max_output_axons_per_core"] == max(axons.values()) and ml.fits
    tight = profile_from_dict({**yaml.safe_load((HW / "loihi.yaml").read_text()),
                               "values": {**loihi.values, "axons_out_per_core": 10}}, "tight.yaml")
    mt = map_network(rec, tight, ql)
    assert not mt.fits and any("output axons per core" in r for r in mt.reasons)


def test_too_large_models_do_not_fit_with_reasons():
    xylo = load_profile(HW / "xylo_audio2.yaml")
    net = _net(20, [600, 500], n_out=10)
    m = map_network(net, xylo, quantize_network(net, xylo).weight_ints)
    assert not m.fits
    text = " | ".join(m.reasons)
    assert "does not fit: input channels needs 20, target has 16" in text
    assert "output neurons needs 10, target has 8" in text
    assert "hidden neurons needs 1100, target has 1000" in text
    tn = load_profile(HW / "truenorth.yaml")
    m = map_network(net, tn, quantize_network(net, tn).weight_ints)
    assert any(r.startswith("does not fit: fan-in of") and "target has 256" in r for r in m.reasons)
    speck = load_profile(HW / "speck.yaml")
    net = _net(8, [16], recurrent=True)
    m = map_network(net, speck, quantize_network(net, speck).weight_ints)
    assert "does not fit: recurrent connections needs 1, target has 0" in m.reasons
    loihi = load_profile(HW / "loihi.yaml")
    net = _net(8, [1024 * 130])
    m = map_network(net, loihi, {pr.name: np.ones_like(pr.weight, dtype=np.int64) for pr in net.projections})
    assert any(r.startswith("does not fit: cores needs") and r.endswith("target has 128") for r in m.reasons)


def test_latency_models():
    xylo = load_profile(HW / "xylo_audio2.yaml")
    cycles = xylo_cycles_per_step(16, 100, 4, 0.1, 0.05, 10.0)
    # rockpool syns61201 cycles model terms, no aliases
    expected = 16 * (0.1 * 100 * 3.5 + 1) + 100 * (10 * 7 * 0.05 + 3) + 100 * 0.05 * (1 + 32) + 100 * (19 + 0.15) + 48
    assert cycles == pytest.approx(expected)
    step, _ = step_time_s(xylo, 1e-3, False, {"cycles": cycles})
    assert step == pytest.approx(cycles * 1.2 / 50e6)
    assert step_time_s(xylo, 1e-3, True, {"cycles": cycles})[0] == 1e-3
    loihi = load_profile(HW / "loihi.yaml")
    assert step_time_s(loihi, 2e-3, True, {})[0] == 2e-3


def test_small_populations_share_a_core_within_its_limits():
    """First-fit packing: a population goes on an open core when neurons, synapses and input axons
    (summed over the sharers) fit; else on a new core."""
    loihi = load_profile(HW / "loihi.yaml")
    small = _net(8, [16])  # 16 hidden + readout: one Loihi core for both
    m = map_network(small, loihi, quantize_network(small, loihi).weight_ints)
    assert m.cores_used == 1 and m.details["cores_shared_by_populations"] == 1
    assert len({int(c) for c in np.concatenate(list(m.core_of.values()))}) == 1
    # TrueNorth: 256 axons per core, 2 per input; 120 inputs (240 axons) + 16 hidden sources
    # (32 axons) exceed it, so the readout takes a core of its own; 60 inputs share one
    tn = load_profile(HW / "truenorth.yaml")
    for n_in, cores in ((120, 2), (60, 1)):
        net = _net(n_in, [16])
        m = map_network(net, tn, quantize_network(net, tn).weight_ints)
        assert m.cores_used == cores, (n_in, m.cores_used)
    # neurons and synapses are counted: 1000 + 100 neurons exceed Loihi's 1024 per core, and the
    # 100 neurons of 1000 synapses each need two cores of synaptic memory (65,536 synapses each);
    # the 3 readout neurons fit beside the 1000
    big = _net(8, [1000, 100])
    m = map_network(big, loihi, quantize_network(big, loihi).weight_ints)
    core = {name: set(c.tolist()) for name, c in m.core_of.items()}
    assert m.fits and m.cores_used == 3
    assert core[big.hidden[0].name] == core[big.readout] == {0} and core[big.hidden[1].name] == {1, 2}
