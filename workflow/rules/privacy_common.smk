# Helpers of workflow/rules/privacy.smk (included by it): settings per dataset, target lists,
# rule parameters. Uses RESULTS and the helpers of common.smk.
import re


def privacy_settings(dataset):
    return stage_config(config, "privacy", dataset)


def privacy_enabled(dataset):
    priv = privacy_settings(dataset)
    return bool(priv) and bool(priv.get("enabled", True))


def privacy_epsilons(dataset):
    """Target epsilons as written in the config (1 -> "1", 0.5 -> "0.5")."""
    return [str(e) for e in privacy_settings(dataset).get("epsilons", [])]


def privacy_audit_enabled(dataset):
    return bool(privacy_settings(dataset).get("audit", {}).get("enabled", False))


_ALL_EPSILONS = sorted({e for ds in DATASETS if privacy_enabled(ds) for e in privacy_epsilons(ds)})


def privacy_json(w, **extra):
    """--params: the dataset's privacy section + its train section + root seed + names."""
    params = {**privacy_params(config, w.dataset, w.encoding), **extra}
    return shlex.quote(json.dumps(params, sort_keys=True))


def privacy_all_targets():
    out = []
    for ds in DATASETS:
        if not privacy_enabled(ds):
            continue
        for enc in stage_config(config, "encode", ds).get("encodings", []):
            out.append(f"{RESULTS}/{ds}/{enc}/privacy_utility.csv")
    return out


def privacy_table_inputs(w):
    base = f"{RESULTS}/{w.dataset}/{w.encoding}"
    inputs = {"nonprivate": f"{base}/snn/metrics.json"}
    for e in privacy_epsilons(w.dataset):
        inputs[f"metrics_{e}"] = f"{base}/dpsnn_eps{e}/metrics.json"
        inputs[f"privacy_{e}"] = f"{base}/dpsnn_eps{e}/privacy.json"
        if privacy_audit_enabled(w.dataset):
            inputs[f"audit_{e}"] = f"{base}/dpsnn_eps{e}/audit.json"
    if privacy_audit_enabled(w.dataset):
        inputs["nonprivate_audit"] = f"{base}/privacy_audit_nonprivate.json"
    return inputs
