"""End to end on real (tiny) models: reference-model training, the attack stage and its CLI.

A deliberately overfit SNN (random labels, trained to memorise them) must be attackable; a model
that never saw the members must not be; a DP claim the attack disproves must fail the run.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from biospike.attacks import cli as attack_cli
from biospike.attacks.references import (
    candidate_pools,
    candidates,
    rebin_time,
    train_shard,
    train_stage,
)
from biospike.cli import main
from biospike.cliutil import envelope, parse_envelope
from biospike.models import save_checkpoint
from biospike.store import Spikes, read_json, write_spikes
from biospike.train import train_settings

TRAIN = {"epochs": 200, "batch_size": 24, "lr": 0.02, "patience": 1000, "hidden": [128],
         "fail_on_silent": False, "max_train_windows": None}
ATTACK = {"n_reference_models": 4, "reference_shard_size": 2, "reference_early_stopping": False,
          "input_dropout": {"enabled": True, "p": 0.05, "n_queries": 3},
          "rmia": {"n_population": 72, "offline_a": "auto"}, "bootstrap": {"n": 200}}
PER_SUBJECT = 12
N_CLASSES = 4


def _env(attack=ATTACK, train=TRAIN, target="snn") -> dict:
    return envelope({"attack": attack, "train": train}, {"dataset": "toy", "encoding": "delta", "target": target}, 11)


def _ctx(**kw):
    return parse_envelope(_env(**kw), ("attack", "train"))


def _spikes(seed: int = 0) -> Spikes:
    """4 pools x 6 subjects x 12 windows of random spikes with random labels (nothing to learn).

    Every subject has 3 windows of each of 4 classes: no pool differs from another in its label
    mix, which a biased model would otherwise turn into an apparent membership signal."""
    rng = np.random.default_rng(seed)
    n_subj = 24
    n = n_subj * PER_SUBJECT
    subject = np.repeat([f"s{i:02d}" for i in range(n_subj)], PER_SUBJECT)
    labels = np.concatenate([rng.permutation(np.arange(PER_SUBJECT) % N_CLASSES) for _ in range(n_subj)])
    idx = np.arange(n).reshape(4, -1)
    return Spikes(
        spikes=(rng.random((n, 12, 8)) < 0.25).astype(np.uint8),
        labels=labels, subject=subject, dt_s=0.005,
        channel_names=[f"c{i}" for i in range(8)], class_names=list("abcd"), encoder={"name": "test"}, stats={},
        splits={"train": idx[0], "val": idx[3], "test": idx[1]},
        mia={"members": idx[0], "nonmembers": idx[1], "population": idx[2]},
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """spikes.h5, four reference models in two shards, an overfit target and a target that never
    saw the members (about 40 s on one core: the tests using it are marked slow)."""
    torch.set_num_threads(1)
    from biospike.train import fit_on

    root = tmp_path_factory.mktemp("attack") / "R" / "toy" / "delta"
    root.mkdir(parents=True)
    sp = _spikes()
    write_spikes(root / "spikes.h5", sp)
    refs = []
    for shard in range(2):
        f = root / "refs" / "snn" / f"shard{shard}.pt"
        train_shard(_ctx(), root / "spikes.h5", f, "snn", shard, progress=False)
        refs.append(f)
    empty = np.zeros(0, dtype=np.int64)
    overfit, _ = fit_on("snn", sp, sp.mia["members"], empty, train_settings(TRAIN), seed=1)
    save_checkpoint(root / "snn" / "model.pt", overfit, {"train_indices": sp.mia["members"].tolist()})
    # same recipe, trained on the val split only: it never saw a member
    blind, _ = fit_on("snn", sp, sp.splits["val"], empty, train_settings(TRAIN), seed=2)
    save_checkpoint(root / "blind" / "model.pt", blind, {})
    return {"root": root, "refs": refs, "spikes": sp}


@pytest.mark.slow
def test_reference_models_train_on_their_keep_mask(world):
    sp = world["spikes"]
    cand = candidates(candidate_pools(sp))
    from biospike.models.ensemble import load_members

    shards = [load_members(f) for f in world["refs"]]
    keeps = np.concatenate([extra["keep"].numpy() for _, _, extra in shards])
    metas = [m for _, ms, _ in shards for m in ms]
    assert [m["index"] for m in metas] == [0, 1, 2, 3]
    np.testing.assert_array_equal(keeps.sum(axis=0), 2)
    subj = sp.subject[cand]
    for s in np.unique(subj):  # reference_unit: subject (default): whole subjects IN or OUT
        assert (keeps[:, subj == s] == keeps[:, subj == s][:, :1]).all()
    for meta, keep in zip(metas, keeps, strict=True):
        assert meta["train_indices"] == sorted(cand[keep].tolist())
        assert meta["n_reference_models"] == 4
    # the sharding does not change the models: member 2 trained in a shard of one (shard 2 at
    # size 1) equals member 2 of the stacked shard of two
    f = world["root"] / "again.pt"
    train_shard(_ctx(attack={**ATTACK, "reference_shard_size": 1}), world["root"] / "spikes.h5", f, "snn", 2,
                progress=False)
    (alone,), (meta,), extra = load_members(f)
    np.testing.assert_array_equal(extra["keep"].numpy()[0], keeps[2])
    def untimed(history):
        return [{k: v for k, v in row.items() if k != "epoch_time_s"} for row in history]

    assert meta["index"] == 2 and meta["seed"] == metas[2]["seed"]
    np.testing.assert_equal(untimed(meta["history"]), untimed(metas[2]["history"]))  # NaN == NaN here
    stacked = shards[1][0][0].state_dict()
    for name, value in alone.state_dict().items():
        torch.testing.assert_close(value, stacked[name], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_attacks_on_an_overfit_model_reach_high_auc(world):
    root = world["root"]
    out = attack_cli.attack_stage(_ctx(), root / "snn" / "model.pt", root / "spikes.h5", world["refs"],
                                  root / "snn" / "attack")
    assert out["target_accuracy"]["members"] > 0.9  # memorised the random labels
    assert out["attack_names"] == ["loss", "lira_online", "lira_offline", "rmia",
                                   "loss_dropout", "lira_online_dropout", "lira_offline_dropout", "rmia_dropout"]
    for name in out["attack_names"]:
        w = out["attacks"][name]["window"]
        assert w["auc"] > 0.75, (name, w["auc"])
        assert w["auc_ci"][0] > 0.6, name
        assert w["n_members"] == 72 and w["n_nonmembers"] == 72
        # 72 non-members: neither low-FPR TPR is estimable
        assert w["tpr_at_1pct_fpr"] == "not estimable" and w["tpr_at_0.1pct_fpr"] == "not estimable"
        s = out["attacks"][name]["subject"]
        assert s["n_members"] == 6 and s["n_nonmembers"] == 6
        assert (root / "snn" / "attack" / f"{name}_window_roc.csv").is_file()
    on_disk = read_json(root / "snn" / "attack" / "summary.json")
    assert on_disk["attacks"]["loss"]["window"]["auc"] == out["attacks"]["loss"]["window"]["auc"]
    assert "rmia_offline_a" in on_disk["details"]
    top = out["strongest_window"]  # the best attack is real leakage, not the luck of picking a maximum
    assert top["auc"] == max(out["attacks"][n]["window"]["auc"] for n in out["attack_names"])
    assert top["unit"] == "subject" and top["n_units"] == {"members": 6, "nonmembers": 6}
    assert top["p_value"] < 0.01 and top["auc"] > top["null_auc_q95"]
    roc = np.loadtxt(root / "snn" / "attack" / "loss_window_roc.csv", delimiter=",", skiprows=1)
    assert roc[0, 0] == 0 and roc[-1, 0] == 1 and np.all(np.diff(roc[:, 0]) >= 0)


@pytest.mark.slow
def test_attacks_on_a_model_that_never_saw_the_members_are_at_chance(world):
    root = world["root"]
    out = attack_cli.attack_stage(_ctx(target="blind"), root / "blind" / "model.pt", root / "spikes.h5", world["refs"],
                                  root / "blind" / "attack")
    for name in out["attack_names"]:
        for level in ("window", "subject"):
            lo, hi = out["attacks"][name][level]["auc_ci"]
            assert lo <= 0.5 <= hi, (name, level, out["attacks"][name][level]["auc"], lo, hi)
    assert out["strongest_window"]["p_value"] > 0.05  # the best of 8 chance-level attacks is not leakage


@pytest.mark.slow
def test_dp_ceiling_violation_at_window_level_is_reported_not_fatal(world, capsys):
    """Members and non-members are different subjects: a window-level guarantee says nothing about
    telling those groups apart, so a violation is reported and the run goes on."""
    root = world["root"]
    priv = root / "privacy.json"
    priv.write_text(json.dumps({"private": True, "epsilon": 0.5, "delta": 1e-5, "privacy_unit": "window"}))
    base = ["attack", "--params", json.dumps(_env(attack={**ATTACK, "attacks": ["loss"], "input_dropout": {"enabled": False}})),
            "--spikes", str(root / "spikes.h5"), "--refs", *map(str, world["refs"]), "--privacy", str(priv)]
    assert main([*base, "--target-model", str(root / "snn" / "model.pt"), "--outdir", str(root / "dp_bad")]) == 0
    s = read_json(root / "dp_bad" / "summary.json")
    check = s["attacks"]["loss"]["window"]["dp_ceiling"]
    assert check["checked"] and check["violated"] and check["fatal"] is False and "subject shift" in check["why"]
    assert s["dp_ceiling_violated"] is True and s["dp_ceiling_fatal_violation"] is False
    code = main([*base, "--target-model", str(root / "blind" / "model.pt"), "--outdir", str(root / "dp_ok")])
    assert code == 0, capsys.readouterr().err
    s = read_json(root / "dp_ok" / "summary.json")
    check = s["attacks"]["loss"]["window"]["dp_ceiling"]
    assert check["checked"] and not check["violated"] and check["epsilon"] == 0.5
    assert s["attacks"]["loss"]["subject"]["dp_ceiling"]["checked"] is False
    assert s["dp_ceiling_violated"] is False


@pytest.mark.slow
def test_dp_ceiling_violation_fails_where_members_are_random_units(tmp_path, capsys):
    """Subject-level guarantee, split by subject, one window per subject: members and non-members
    are units the split assigned at random, so a model that memorised its members disproves a
    claimed epsilon of 0.01 and the run fails naming the bug."""
    torch.set_num_threads(1)
    from biospike.train import fit_on

    rng = np.random.default_rng(3)
    n = 120  # 40 subjects per pool, one window each
    idx = np.arange(n).reshape(3, -1)
    sp = Spikes(spikes=(rng.random((n, 12, 8)) < 0.25).astype(np.uint8), labels=rng.integers(0, 4, n),
                subject=np.array([f"p{i:03d}" for i in range(n)]), dt_s=0.005,
                channel_names=[f"c{i}" for i in range(8)], class_names=list("abcd"), encoder={"name": "test"},
                stats={}, splits={"train": idx[0], "val": idx[2], "test": idx[1]},
                mia={"members": idx[0], "nonmembers": idx[1], "population": idx[2]})
    root = tmp_path / "R"
    root.mkdir()
    write_spikes(root / "spikes.h5", sp)
    train = {**TRAIN, "epochs": 150}
    attack = {**ATTACK, "n_reference_models": 2, "attacks": ["loss"], "input_dropout": {"enabled": False}}
    refs = [root / "refs" / "shard0.pt"]
    train_shard(_ctx(attack=attack, train=train), root / "spikes.h5", refs[0], "snn", 0, progress=False)
    overfit, _ = fit_on("snn", sp, sp.mia["members"], np.zeros(0, np.int64), train_settings(train), seed=1)
    save_checkpoint(root / "snn" / "model.pt", overfit, {"train_indices": sp.mia["members"].tolist()})
    priv = root / "privacy.json"
    priv.write_text(json.dumps({"private": True, "epsilon": 0.01, "delta": 1e-5, "privacy_unit": "subject"}))
    code = main(["attack", "--params", json.dumps(_env(attack=attack, train=train)), "--spikes", str(root / "spikes.h5"),
                 "--refs", *map(str, refs), "--privacy", str(priv), "--target-model", str(root / "snn" / "model.pt"),
                 "--outdir", str(root / "dp_bad")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "exceeds the DP ceiling" in err and "this means a bug in the DP path" in err and "subject level" in err
    assert not (root / "dp_bad" / "summary.json").exists()
    assert read_json(root / "dp_bad" / "ceiling_violation.json")["attacks"]["loss"]["subject"]["dp_ceiling"]["fatal"]


def test_ceiling_applies_only_to_random_units_at_their_level():
    assert attack_cli.ceiling_applies("subject", "subject", "subject")[0] is True
    assert attack_cli.ceiling_applies("window", "window", "subject")[0] is False
    assert attack_cli.ceiling_applies("window", "window", "contiguous_run")[0] is False
    assert attack_cli.ceiling_applies("subject", "subject", "contiguous_run")[0] is False
    assert attack_cli.ceiling_applies("window", "subject", "subject")[0] is False


@pytest.mark.slow
def test_stale_reference_models_are_clear_errors(world, tmp_path, capsys):
    root = world["root"]
    from biospike.models.ensemble import load_members, save_members

    models, metas, _ = load_members(world["refs"][0])
    bad = tmp_path / "shard0.pt"
    save_members(bad, models, metas, extra={"keep": torch.ones(len(models), 7, dtype=torch.bool)})
    def run(*refs):
        return main(["attack", "--params", json.dumps(_env()), "--spikes", str(root / "spikes.h5"), "--target-model",
                     str(root / "snn" / "model.pt"), "--refs", *map(str, refs), "--outdir", str(tmp_path / "o")])
    assert run(bad) == 2
    assert f"{bad}: keep mask has shape (7,)" in capsys.readouterr().err
    assert run(world["refs"][0], world["refs"][0]) == 2
    assert "reference model 0 given twice" in capsys.readouterr().err
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    assert run(junk) == 2
    assert f"{junk}: not a valid biospike ensemble file" in capsys.readouterr().err


def test_rebin_time_keeps_spike_counts_and_duration():
    rng = np.random.default_rng(0)
    x = (rng.random((5, 100, 3)) < 0.2).astype(np.uint8)
    for steps in (25, 50, 100, 200):
        y = rebin_time(x, steps)
        assert y.shape == (5, steps, 3)
        np.testing.assert_array_equal(y.sum(axis=1), x.sum(axis=1))
    np.testing.assert_array_equal(rebin_time(x, 25)[:, 0], x[:, :4].sum(axis=1))


@pytest.mark.slow
def test_time_step_sweep_trains_attacks_and_collects(world, tmp_path):
    """Two points of the T sweep end to end: re-binned target + 2 references per T, LOSS and RMIA,
    then attack-sweep's table (the workflow's t_sweep_* rules run exactly these calls)."""
    root = world["root"]
    train = {**TRAIN, "epochs": 40}
    attack = {**ATTACK, "t_sweep_reference_models": 2, "input_dropout": {"enabled": False}, "attacks": ["loss", "rmia"]}
    ctx = _ctx(attack=attack, train=train)
    summaries = []
    for steps in (6, 24):
        tdir = tmp_path / f"T{steps}"
        meta = train_stage(ctx, root / "spikes.h5", tdir / "snn", "snn", time_steps=steps)
        assert meta["time_steps"] == steps and meta["dt_s"] == pytest.approx(0.005 * 12 / steps)
        assert meta["train_indices"] == sorted(world["spikes"].splits["train"].tolist())
        arch = torch.load(tdir / "snn" / "model.pt", weights_only=True)["arch"]
        native_tau = train_settings(train)["tau_mem_s"]
        assert arch["dt_s"] / arch["tau_mem_s"] == pytest.approx(0.005 / native_tau)  # same decay per step
        refs = [tdir / "refs" / "snn" / "shard0.pt"]
        train_shard(ctx, root / "spikes.h5", refs[0], "snn", 0, time_steps=steps, progress=False)
        out = attack_cli.attack_stage(ctx, tdir / "snn" / "model.pt", root / "spikes.h5", refs, tdir / "snn" / "attack",
                                      time_steps=steps)
        assert out["time_steps"] == steps and out["attack_names"] == ["loss", "rmia"]
        assert out["details"]["rmia_offline_a_source"].startswith("fixed 0.3")
        summaries.append(tdir / "snn" / "attack" / "summary.json")
    # a reference model trained at another T is refused
    with pytest.raises(Exception, match="trained at T=6"):
        attack_cli.attack_stage(ctx, tmp_path / "T24" / "snn" / "model.pt", root / "spikes.h5",
                                [tmp_path / "T6" / "refs" / "snn" / "shard0.pt"], tmp_path / "x", time_steps=24)
    assert main(["attack-sweep", "--summaries", *map(str, summaries), "--output", str(tmp_path / "t_sweep.json"),
                 "--csv", str(tmp_path / "t_sweep.csv")]) == 0
    sweep = read_json(tmp_path / "t_sweep.json")
    assert {r["time_steps"] for r in sweep["rows"]} == {6, 24}
    assert set(sweep["trend"]) == {"loss/window", "loss/subject", "rmia/window", "rmia/subject"}
    assert sweep["trend"]["loss/window"]["time_steps"] == [6, 24]
    assert (tmp_path / "t_sweep.csv").read_text().startswith("time_steps,dt_s,attack,level,auc")


def _pool_world(subject, record):
    import types

    return types.SimpleNamespace(subject=np.asarray(subject), record=np.asarray(record))


def test_membership_groups_are_subjects_when_the_split_is_by_subject():
    from biospike.attacks.references import membership_groups

    pools = {"members": np.array([0, 1]), "nonmembers": np.array([2, 3]), "population": np.array([4, 5])}
    spikes = _pool_world(["a", "a", "b", "b", "c", "c"], ["r1", "r1", "r2", "r2", "r3", "r3"])
    groups, unit = membership_groups(spikes, pools)
    assert unit == "subject"
    assert groups.tolist() == ["a", "a", "b", "b", "c", "c"]


def test_membership_groups_below_subject_level_are_whole_runs_of_one_record():
    from biospike.attacks.mia import keep_masks
    from biospike.attacks.references import membership_groups

    # one subject, split by segment: each pool holds runs of consecutive windows of a record
    pools = {"members": np.array([0, 1, 2, 6, 7, 12]), "nonmembers": np.array([3, 4, 5]),
             "population": np.array([8, 9, 10, 11])}
    record = ["r1"] * 10 + ["r2"] * 3  # window 10 starts a new record inside the population pool
    spikes = _pool_world(["s"] * 13, record)
    groups, unit = membership_groups(spikes, pools)
    assert unit == "contiguous_run"
    cand = np.concatenate([pools[p] for p in ("members", "nonmembers", "population")])
    by_window = dict(zip(cand.tolist(), groups.tolist(), strict=True))
    # a run is one group; a gap, a record change or another pool starts a new one
    assert by_window[0] == by_window[1] == by_window[2]
    assert len({by_window[0], by_window[6], by_window[12], by_window[3], by_window[8], by_window[10]}) == 6
    assert by_window[6] == by_window[7] and by_window[8] == by_window[9] and by_window[10] == by_window[11]
    # every reference model takes each group whole: never part of a split unit
    keep = keep_masks(len(cand), 4, seed=3, groups=groups)
    for g in np.unique(groups):
        cols = keep[:, groups == g]
        assert (cols == cols[:, :1]).all()


def test_membership_groups_from_spikes_h5_without_record_ids():
    """spikes.h5 (the Spikes contract) has no record ids: runs split at index gaps and pools only."""
    from biospike.attacks.references import membership_groups

    n = 9
    spikes = Spikes(spikes=np.zeros((n, 2, 1), np.uint8), labels=np.zeros(n, np.int64), subject=np.array(["s"] * n),
                    dt_s=0.01, channel_names=["c"], class_names=["a", "b"], encoder={}, stats={})
    pools = {"members": np.array([0, 1, 4, 5]), "nonmembers": np.array([2, 3]), "population": np.array([6, 7, 8])}
    groups, unit = membership_groups(spikes, pools)
    assert unit == "contiguous_run"
    assert groups.tolist() == ["members:1", "members:1", "members:2", "members:2", "nonmembers:1", "nonmembers:1",
                               "population:1", "population:1", "population:1"]


def test_reference_validation_windows_are_out_population_else_any_out_candidate():
    from biospike.attacks.references import reference_training_set

    pools = {"members": np.array([0, 1]), "nonmembers": np.array([2, 3]), "population": np.array([4, 5])}
    keep = np.array([True, False, True, False, True, False])
    train_idx, val_idx = reference_training_set(pools, keep)
    assert train_idx.tolist() == [0, 2, 4] and val_idx.tolist() == [5]
    # the mask keeps every population window: the OUT members and non-members serve instead
    keep = np.array([True, False, False, True, True, True])
    train_idx, val_idx = reference_training_set(pools, keep)
    assert train_idx.tolist() == [0, 3, 4, 5] and val_idx.tolist() == [1, 2]


@pytest.mark.slow
def test_adaptive_attack_wraps_the_references_in_the_targets_defense(world, monkeypatch):
    """A target answering through a query-time defense: the threat model's attacker wraps its
    reference models in the same defense (adaptive); the unwrapped references give the
    non-adaptive comparison beside it."""
    from biospike import defenses
    from biospike.models import load_checkpoint

    root = world["root"]
    overfit, meta = load_checkpoint(root / "snn" / "model.pt")
    spec = {"name": "threshold_noise", "sd": 0.3}
    save_checkpoint(root / "qthrsnn_sd0.3" / "model.pt", overfit, {**meta, "defense": spec})
    wrapped = []
    real = defenses.defended

    def spy(model, s, seed):
        out = real(model, s, seed)
        wrapped.append((model, s))
        return out

    monkeypatch.setattr(defenses, "defended", spy)
    out = attack_cli.attack_stage(_ctx(target="qthrsnn_sd0.3"), root / "qthrsnn_sd0.3" / "model.pt",
                                  root / "spikes.h5", world["refs"], root / "qthrsnn_sd0.3" / "attack")
    assert out["defense"] == spec and out["K"] == 4
    assert len(wrapped) == 1 + 4 and all(s == spec for _, s in wrapped)  # the target and every reference
    comp = out["comparison"]
    assert comp["adaptive"] is False and comp["K"] == 4 and "without the defense" in comp["reference_kind"]
    assert set(comp["attacks"]) == set(out["attacks"])
    # the reference-based attacks see other references in the two rows (wrapped, not wrapped)
    assert any(comp["attacks"][n]["window"]["auc"] != out["attacks"][n]["window"]["auc"] for n in ("lira_online", "rmia"))
    # the defended, overfit target still leaks to the attacker who knows the defense
    assert out["strongest_window"]["auc"] > 0.7
