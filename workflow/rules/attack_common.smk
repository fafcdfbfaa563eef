# Helpers of workflow/rules/attack.smk (included by it): attacked targets, reference-model
# parameters, input lists. Uses ATTACK, RESULTS, DATASETS and the helpers of common.smk.


def attack_dp_targets(dataset):
    """dpsnn_eps{E} for every E in the dataset's privacy.epsilons (as written in the config,
    the names the harden rule writes), when privacy is enabled for it."""
    priv = stage_config(config, "privacy", dataset)
    if not priv or not priv.get("enabled", True):
        return []
    return [f"dpsnn_eps{e}" for e in priv.get("epsilons", [])]


def attack_target_names(dataset):
    names = []
    for t in stage_config(config, "attack", dataset).get("targets", ATTACK["targets"]):
        for name in attack_dp_targets(dataset) if t == "dpsnn_eps*" else [t]:
            if name not in names:
                names.append(name)
    return names


def attack_all_targets():
    """Attack summaries of every dataset, encoding and attacked target, plus the T sweeps."""
    out = []
    for ds in DATASETS:
        for enc in encodings_of(ds):
            names = attack_target_names(ds)
            out += [f"{RESULTS}/{ds}/{enc}/{t}/attack/summary.json" for t in names]
            if ATTACK["t_sweep"] and names:
                out.append(f"{RESULTS}/{ds}/{enc}/t_sweep.json")
    return out


def attack_ref_kind(target):
    """Reference models share the target's architecture: ann refs for ann, snn refs otherwise."""
    return "ann" if target == "ann" else "snn"


def attack_json(settings, **names):
    """--params for the attack CLIs: attack settings + root seed + dataset/encoding/target names
    (rule_params cannot carry a key named 'dataset')."""
    return shlex.quote(json.dumps({**settings, "seed": config["seed"], **names}, sort_keys=True))


def attack_device(dataset):
    """{"train": {"device": D}} for the rules that query models (attack, t_sweep_point) when the
    dataset's train.device is not cpu; nothing for cpu, so the default run's params (and so its
    outputs) stay as they were."""
    device = train_device(dataset)
    return {} if device == "cpu" else {"train": {"device": device}}


def attack_ref_params(w, sweep=False):
    """Only what changes a reference model (so tuning an attack never retrains the references)."""
    keys = ("t_sweep_reference_models",) if sweep else ("n_reference_models",)
    extra = {k: ATTACK[k] for k in (*keys, "reference_early_stopping", "reference_unit")}
    return attack_json({**extra, "train": stage_config(config, "train", w.dataset)},
                       dataset=w.dataset, encoding=w.encoding)


def attack_roc_outputs(names):
    return [f"{RESULTS}/{{dataset}}/{{encoding}}/{{target}}/attack/{n}_{lvl}_roc.csv"
            for n in names for lvl in ATTACK["levels"]]


def attack_inputs(w):
    kind = attack_ref_kind(w.target)
    inputs = {
        "model": f"{RESULTS}/{w.dataset}/{w.encoding}/{w.target}/model.pt",
        "spikes": f"{RESULTS}/{w.dataset}/{w.encoding}/spikes.h5",
        "refs": [f"{RESULTS}/{w.dataset}/{w.encoding}/refs/{kind}/{k}/model.pt"
                 for k in range(ATTACK["n_reference_models"])],
    }
    if w.target.startswith("dpsnn"):
        inputs["privacy"] = f"{RESULTS}/{w.dataset}/{w.encoding}/{w.target}/privacy.json"
    return inputs
