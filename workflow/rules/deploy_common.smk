# Helpers of workflow/rules/deploy.smk (included by it): hardware profile kinds, rule parameters,
# input lists and the list of deploy targets. Uses RESULTS and the helpers of common.smk.
import yaml

HARDWARE_DIR = Path(workflow.basedir) / "config" / "hardware"


def hardware_kind(name):
    path = HARDWARE_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"deploy.targets names {name!r} but {path} does not exist")
    return yaml.safe_load(path.read_text()).get("kind", "neuromorphic")


def deploy_params(w):
    """The deploy section (no per-dataset overrides) plus the run's names, which seed the test
    subset and appear in provenance (rule_params reserves the name `dataset` for overrides)."""
    names = {"seed": config["seed"], "dataset": w.dataset, "encoding": w.encoding, "target": w.target}
    return shlex.quote(json.dumps(deep_merge(config["deploy"], names), sort_keys=True))


def simulate_inputs(w):
    """A spiking target simulates the NIR export of {target}; an MCU profile runs the same-size ANN
    checkpoint, so its JSON sits under the ANN: {encoding}/ann/deploy/{hardware}.json."""
    base = f"{RESULTS}/{w.dataset}/{w.encoding}"
    inputs = {
        "spikes": f"{base}/spikes.h5",
        "hardware": str(HARDWARE_DIR / f"{w.hardware}.yaml"),
        "model": f"{base}/{w.target}/model.pt",
    }
    if hardware_kind(w.hardware) != "mcu":
        inputs["nir"] = f"{base}/{w.target}/deploy/model.nir"
    elif w.target != "ann":
        raise ValueError(f"{w.hardware} is an mcu profile: it costs the ANN baseline, {base}/ann/deploy/{w.hardware}.json, "
                         f"not {w.target}")
    return inputs


def deploy_models_on(hardware):
    """The models one hardware profile costs: each of deploy.models on a spiking target; the
    same-size ANN baseline on an MCU profile (only beside deployed models, so none without them)."""
    models = list(config["deploy"]["models"])
    return ["ann"] if models and hardware_kind(hardware) == "mcu" else models


def deploy_targets(datasets, encodings=None):
    """All deploy outputs (for the lead's all_targets()): every dataset, its encodings (the given
    list, or encode.smk's encodings_of(dataset)), every hardware target and the models it costs
    (deploy_models_on): every JSON sits under the model it simulates."""
    return [
        f"{RESULTS}/{ds}/{enc}/{model}/deploy/{hw}.json"
        for ds in datasets
        for enc in (encodings if encodings is not None else encodings_of(ds))
        for hw in config["deploy"]["targets"]
        for model in deploy_models_on(hw)
    ]
