"""The install story stays true: pins agree, torchvision is never imported; the project is citable and
pinnable (LICENSE, CITATION.cff, CHANGELOG, constraints.txt) and its outputs carry a documented schema version."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml


def _pyproject_deps(repo):
    return tomllib.loads((repo / "pyproject.toml").read_text())["project"]["dependencies"]


def _pip_section(path):
    env = yaml.safe_load(path.read_text())
    for dep in env["dependencies"]:
        if isinstance(dep, dict) and "pip" in dep:
            return [d for d in dep["pip"] if not d.startswith("-e")]
    raise AssertionError(f"{path} has no pip section")


def test_torch_pinned_exactly(repo):
    assert "torch==2.13.0" in _pyproject_deps(repo)


def test_conda_envs_mirror_pyproject(repo):
    deps = sorted(_pyproject_deps(repo))
    assert sorted(_pip_section(repo / "environment.yml")) == deps
    assert sorted(_pip_section(repo / "workflow" / "envs" / "biospike.yaml")) == deps


def test_no_torchvision_import_anywhere(repo):
    pattern = re.compile(r"^\s*(import|from)\s+torchvision\b", re.M)
    offenders = [p for p in (repo / "src").rglob("*.py") if pattern.search(p.read_text())]
    offenders += [p for p in (repo / "tests").rglob("*.py") if pattern.search(p.read_text()) and p.name != "test_packaging.py"]
    assert offenders == []


def test_importing_every_module_leaves_torchvision_out(repo):
    modules = sorted(
        ".".join(p.relative_to(repo / "src").with_suffix("").parts).removesuffix(".__init__")
        for p in (repo / "src" / "biospike").rglob("*.py")
    )
    code = "import importlib, sys\n" + "".join(f"importlib.import_module({m!r})\n" for m in modules)
    code += "assert 'torchvision' not in sys.modules, 'torchvision imported'\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]


# ------------------------------------------------------------------ citable and pinnable (issue 18, item 7)


def _version():
    import biospike

    return biospike.__version__


def test_version_is_pep440_and_read_dynamically(repo):
    from packaging.version import Version

    Version(_version())  # raises on a version pip would reject
    project = tomllib.loads((repo / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "biospike.__version__"}


def test_provenance_records_the_running_version():
    from biospike.store import package_versions

    assert package_versions()["biospike"] == _version()  # not the editable install's stale metadata


def test_license_is_mit(repo):
    text = (repo / "LICENSE").read_text()
    assert text.startswith("MIT License") and "the biospike developers" in text
    assert "Permission is hereby granted, free of charge" in text
    assert tomllib.loads((repo / "pyproject.toml").read_text())["project"]["license"] == "MIT"


def test_citation_cff_is_complete_and_current(repo):
    cff = yaml.safe_load((repo / "CITATION.cff").read_text())
    for key in ("cff-version", "message", "title", "authors", "version", "date-released", "license", "abstract",
                "keywords", "references"):
        assert cff.get(key), f"CITATION.cff lacks {key}"
    assert cff["cff-version"] == "1.2.0" and cff["license"] == "MIT"
    assert str(cff["version"]) == _version()
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(cff["date-released"]))
    for ref in cff["references"]:
        assert ref.get("type") and ref.get("title") and ref.get("authors"), ref
    # every public data set of the configs, with its paper
    dois = {r.get("doi") for r in cff["references"]}
    for doi in ("10.1109/51.932724", "10.22489/CinC.2017.065-469", "10.1109/TBME.2004.827072",
                "10.3390/s18041122", "10.1161/01.CIR.101.23.e215"):
        assert doi in dois, doi
    titles = " ".join(r["title"] for r in cff["references"])
    assert "myo-readings-dataset" in titles and "contextual information" in titles  # no DOI: Frančič, Greenwald


def test_changelog_names_the_current_version(repo):
    from packaging.version import Version

    text = (repo / "CHANGELOG.md").read_text()
    version = Version(_version())
    heading = re.search(rf"^## \[{re.escape(version.base_version)}\](.*)$", text, re.M)
    assert heading, f"CHANGELOG.md has no entry for {version.base_version}"
    if version.is_devrelease:  # a development version leads to a release not yet made
        assert "Unreleased" in heading.group(1)
    assert "git tag" in text  # how releases are tagged


def test_constraints_pin_every_dependency(repo):
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins = {}
    for line in (repo / "constraints.txt").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            req = Requirement(line)
            spec = list(req.specifier)
            assert len(spec) == 1 and spec[0].operator == "==", f"not an exact pin: {line}"
            pins[canonicalize_name(req.name)] = spec[0].version
    assert pins["torch"] == "2.13.0"
    assert "biospike" not in pins
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["test"]
    for dep in map(Requirement, wanted):
        name = canonicalize_name(dep.name)
        assert name in pins, f"constraints.txt does not pin {dep.name}"
        assert dep.specifier.contains(pins[name], prereleases=True), f"{dep} excludes the pinned {pins[name]}"


def test_write_json_adds_schema_version_and_keeps_one(tmp_path):
    from biospike.store import SCHEMA_VERSION, read_json, write_json

    assert re.fullmatch(r"\d+\.\d+", SCHEMA_VERSION)
    record = {"a": 1}
    write_json(tmp_path / "a.json", record)
    assert read_json(tmp_path / "a.json") == {"a": 1, "schema_version": SCHEMA_VERSION}
    assert record == {"a": 1}  # the caller's dict is not changed
    write_json(tmp_path / "b.json", {"a": 1, "schema_version": "0.9"})
    assert read_json(tmp_path / "b.json")["schema_version"] == "0.9"
    write_json(tmp_path / "c.json", [1, 2])  # only objects carry it
    assert read_json(tmp_path / "c.json") == [1, 2]


def test_hdf5_and_nir_outputs_carry_schema_version(tmp_path):
    import h5py
    import numpy as np

    from biospike.deploy.nir_export import export_nir, graph_metadata, read_nir, write_nir
    from biospike.models import build_model
    from biospike.store import SCHEMA_VERSION, Spikes, Windows, write_spikes, write_windows

    win = Windows(signals=np.zeros((2, 1, 4), np.float32), labels=np.array([0, 1]), subject=np.array(["s", "s"]),
                  record=np.array(["r", "r"]), fs_hz=100.0, channel_names=["C3"], class_names=["a", "b"],
                  modality="eeg", preprocessing={})
    write_windows(tmp_path / "windows.h5", win)
    sp = Spikes(spikes=np.zeros((2, 3, 2), np.uint8), labels=np.array([0, 1]), subject=np.array(["s", "s"]), dt_s=0.01,
                channel_names=["C3+", "C3-"], class_names=["a", "b"], encoder={"name": "delta"}, stats={})
    write_spikes(tmp_path / "spikes.h5", sp)
    for name in ("windows.h5", "spikes.h5"):
        with h5py.File(tmp_path / name, "r") as fh:
            assert fh.attrs["schema_version"] == SCHEMA_VERSION
    snn = build_model({"kind": "snn", "n_in": 2, "n_hidden": [4], "n_out": 2, "dt_s": 0.01})
    write_nir(tmp_path / "model.nir", export_nir(snn))
    assert graph_metadata(read_nir(tmp_path / "model.nir"))["schema_version"] == SCHEMA_VERSION


def test_every_hdf5_writer_sets_schema_version(repo):
    """A module that writes an HDF5 file (h5py.File(..., "w")) marks it with schema_version."""
    writes = re.compile(r"h5py\.File\([^)]*[\"']w[\"']")
    writers = [p for p in (repo / "src").rglob("*.py") if writes.search(p.read_text())]
    assert writers, "no HDF5 writer found: the pattern is stale"
    unmarked = [str(p.relative_to(repo)) for p in writers if '"schema_version"' not in p.read_text()]
    assert unmarked == []


def _planned_files(repo):
    """Every file the plan and the report name for the tiny config, and for the tiny config with the
    stages it switches off (T sweep, canary audit) switched on."""
    import copy

    from biospike import plan as P
    from biospike import report
    from biospike.config import load_yaml, validate_config

    tiny = load_yaml(repo / "config" / "tiny.yaml")
    full = copy.deepcopy(tiny)
    full["attack"]["t_sweep"] = [25, 50]
    full["privacy"]["audit"]["enabled"] = True
    files, hardware, figures = set(), set(), set()
    for raw in (tiny, full):
        plan = P.build_plan(validate_config(copy.deepcopy(raw)))
        files |= set(P.outputs(plan, "R"))
        for ds, dp in plan.items():
            hardware |= set(dp.hardware)
            figures |= set(report.figure_kinds(dp))
            files |= {str(f) for enc in dp.encodings for t in dp.targets for f in P.target_files("R", ds, enc, t)}
        files |= {str(f) for f in report.report_outputs(plan, "R")}
    return files, hardware, figures


def test_outputs_doc_names_every_output(repo):
    """docs/outputs.md documents every file the workflow writes: the plan's and the report's files
    for the tiny config, and every file name a rule declares (a new output fails this test until
    it is documented)."""
    doc = (repo / "docs" / "outputs.md").read_text()
    files, hardware, figures = _planned_files(repo)
    missing = set()
    for f in map(Path, files):
        if f.parts[1] == "figures":
            if f"`{f.stem}`" not in doc:
                missing.add(f"figure {f.stem}")
        elif f.parent.name == "deploy" and f.stem in hardware:
            if "{hardware}.json" not in doc:
                missing.add("deploy/{hardware}.json")
        elif f.name not in doc:
            missing.add(f.name)
    # what the rules declare beyond the plan's leaves (ROC tables, reference models, NIR, audits, ...)
    for smk in sorted((repo / "workflow" / "rules").glob("*.smk")):
        for path in re.findall(r'f"\{RESULTS\}/([^"]+)"', smk.read_text()):
            if path.startswith("logs/"):
                continue
            # the file name as a pattern, each wildcard or f-string field matching any documented
            # field: "{n}_{lvl}_roc.csv" is documented as "{attack}_{level}_roc.csv"
            name = path.rsplit("/", 1)[-1]
            pieces = re.split(r"\{+[^{}]*\}+", name)
            literal = "".join(pieces).lstrip("_-")
            if "." not in literal or literal.startswith("."):
                continue  # a directory, or a name that is all fields (a checkpoint of the kind)
            pattern = r"\{[^{}\s]*\}".join(map(re.escape, pieces))
            if not re.search(pattern, doc):
                missing.add(f"{name} ({smk.name})")
    assert not missing, f"docs/outputs.md does not document: {sorted(missing)}"
    assert figures and hardware  # the tiny config exercises both


def test_slurm_profile_groups_every_per_dataset_rule(repo):
    """The SLURM profile runs each dataset's chain as one job (group "pipeline"); a rule missing
    from its groups would run as a SLURM job of its own, between group jobs, and a rule listed
    that no longer exists is a stale name. `demo` and `report` span datasets and stay ungrouped."""
    profile = yaml.safe_load((repo / "profiles" / "slurm" / "config.yaml").read_text())
    grouped = dict(entry.split("=") for entry in profile["groups"])
    assert set(grouped.values()) == {"pipeline"}
    assert profile["group-components"] == ["pipeline=1"]
    exe = Path(sys.executable).with_name("snakemake")
    rules = set()
    for cfg in ("config.yaml", "tiny.yaml"):  # the demo data: no recordings needed to list the rules
        proc = subprocess.run([str(exe), "--list-rules", "-s", str(repo / "Snakefile"), "-d", str(repo),
                               "--configfile", str(repo / "config" / cfg), "--replace-workflow-config"],
                              capture_output=True, text=True, cwd=repo)
        assert proc.returncode == 0, proc.stderr[-2000:]
        rules |= set(proc.stdout.split())
    assert rules - {"all", "demo", "report"} == set(grouped), "profiles/slurm/config.yaml groups vs workflow rules"
