"""``biospike <stage> --help`` teaches the stage's settings (keys, units, defaults from the schema), and
a stage takes them from a config file (a whole config, or a file of sections) as from ``--params``."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest
import yaml

from biospike.cli import SUBCOMMANDS, main
from biospike.cliutil import load_context, settings_help, setup_logging, stage_parser
from biospike.config import deep_merge, load_yaml, schema, section_settings
from biospike.errors import BiospikeError

REPO = Path(__file__).resolve().parents[2]
# one valid dataset entry: the required keys, so that section_settings fills every default
DATASET = {"reader": "edf", "modality": "eeg", "path": "data", "classes": ["a", "b"], "label_map": {"T1": "a", "T2": "b"}}


def _help(name: str, monkeypatch, capsys) -> tuple[str, tuple[str, ...] | None]:
    """The help text of ``biospike <name> --help`` and the config sections its parser was built for."""
    seen: dict[str, tuple[str, ...] | None] = {}
    parse_args = argparse.ArgumentParser.parse_args

    def spy(self, args=None, namespace=None):
        seen["sections"] = self.get_default("_sections")
        return parse_args(self, args, namespace)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", spy)
    with pytest.raises(SystemExit) as exc:
        main([name, "--help"])
    assert exc.value.code == 0, f"biospike {name} --help exited {exc.value.code}"
    return capsys.readouterr().out, seen.get("sections")


def _leaves(value, prefix: str):
    """(dotted key, default) of every setting in a section filled with its defaults (the values given
    in DATASET, such as label_map, are leaves)."""
    if isinstance(value, dict) and value and prefix.split(".")[-1] not in DATASET:
        for key, sub in value.items():
            yield from _leaves(sub, f"{prefix}.{key}")
    else:
        yield prefix, value


def _defaults(section: str):
    node = schema()["properties"].get(section, {})
    if section == "dataset":
        return section_settings("dataset", DATASET)
    if node.get("type") == "object" or "allOf" in node:
        return section_settings(section, {})
    return section_settings(section, None)  # a scalar section (data_root)


def _line(text: str, key: str) -> str | None:
    return next((ln for ln in text.splitlines() if re.match(rf"^  {re.escape(key)}( \[[^\]]+\])? = ", ln)), None)


@pytest.mark.parametrize("name", list(SUBCOMMANDS))
def test_help_lists_every_setting_with_its_default(name, monkeypatch, capsys):
    text, sections = _help(name, monkeypatch, capsys)
    assert text.startswith(f"usage: biospike {name}")
    if sections is None:  # not built on the stage envelope (biospike predict): its own flags only
        return
    assert "--config" in text and "--params" in text
    for section in sections:
        for key, default in _leaves(_defaults(section), section):
            line = _line(text, key)
            if line is None and default == {}:  # an object whose keys have no defaults: listed one by one
                assert re.search(rf"^  {re.escape(key)}\.", text, re.MULTILINE), f"{name}: {key} not in --help"
                continue
            assert line is not None, f"biospike {name} --help does not list {key}"
            if section == "dataset" and key.split(".")[1] in DATASET:
                assert "(required)" in line, line
            else:
                assert f"= {json.dumps(default)}" in line, f"{line!r}: default should be {json.dumps(default)}"


@pytest.mark.parametrize("name", ["train", "encode", "ingest", "simulate", "harden"])
def test_help_gives_units_and_allowed_values(name, monkeypatch, capsys):
    text, _ = _help(name, monkeypatch, capsys)
    keys = [m.group(1) for m in re.finditer(r"^  ([a-z_.]+)( \[[^\]]+\])? = ", text, re.MULTILINE)]
    assert keys
    for key in keys:
        line = _line(text, key)
        leaf = key.rsplit(".", 1)[-1]
        for suffix, unit in (("_s", "s"), ("_hz", "Hz"), ("_gb", "GB")):
            if leaf.endswith(suffix):
                assert f"{key} [{unit}] = " in line, line
    if name == "train":
        assert '("super" | "fast_sigmoid" | "atan" | "triangle" | "tanh" | "circ" | "heavi_erfc")' in _line(text, "train.surrogate")
        assert "(integer >= 1)" in _line(text, "train.epochs")
        assert '("auto" | number > 0)' in _line(text, "train.input_scale")


def test_settings_help_covers_defs_and_scalar_sections():
    text = settings_help(("dataset", "splits", "data_root"))
    assert _line(text, "dataset.reader") and "(required)" in _line(text, "dataset.reader")
    assert "= 1.0" in _line(text, "dataset.window_s") and "[s]" in _line(text, "dataset.window_s")
    assert _line(text, "data_root").split(" = ")[1].startswith("null")
    assert settings_help(()) == ""


# ------------------------------------------------------------------------------------- --config


def _parse(sections, argv, names=("dataset", "encoding")):
    parser = stage_parser("biospike test", "test", sections=sections, names=names)
    return load_context(parser.parse_args(argv))


@pytest.mark.parametrize("sections, given", [
    (("train",), {"train": {"epochs": 3, "hidden": [8, 8], "rate_reg": {"weight": 0.1}}}),
    (("privacy", "train"), {"privacy": {"epsilons": [2], "audit": {"enabled": False}}, "train": {"lr": 0.01}}),
    (("attack", "train", "privacy"), {"attack": {"n_reference_models": 2, "lira": {"online": False}}}),
    (("encode",), {"encode": {"dt_s": 0.002, "delta": {"threshold": 1.5}}}),
    (("deploy",), {"deploy": {"targets": ["loihi"], "early_exit": {"confidence": 0.8}}}),
    (("dataset", "splits", "data_root"), {"dataset": DATASET, "splits": {"test_fraction": 0.3}, "data_root": "/data"}),
])
def test_config_file_of_sections_equals_params(tmp_path, sections, given):
    path = tmp_path / "settings.yaml"
    path.write_text(yaml.safe_dump({**given, "seed": 11}))
    from_file = _parse(sections, ["--config", str(path), "--dataset", "d1"])
    from_params = _parse(sections, ["--params", json.dumps({"settings": given, "names": {"dataset": "d1"}, "seed": 11})])
    assert from_file == from_params
    for section, value in given.items():  # what was given is kept, the rest are the schema's defaults
        assert from_file[section] == section_settings(section, value)


@pytest.mark.parametrize("sections", [("train",), ("encode",), ("privacy", "train"), ("dataset", "splits", "data_root")])
def test_whole_config_file_equals_params(sections, monkeypatch):
    monkeypatch.delenv("BIOSPIKE_DATA_ROOT", raising=False)
    path = REPO / "config" / "tiny.yaml"
    raw = load_yaml(path)
    spec = raw["datasets"]["demo_eeg"]
    settings = {s: spec if s == "dataset" else raw.get(s) if s == "data_root" else deep_merge(raw.get(s, {}), spec.get(s))
                for s in sections}
    from_file = _parse(sections, ["--config", str(path), "--dataset", "demo_eeg"])
    from_params = _parse(sections, ["--params", json.dumps({"settings": settings, "names": {"dataset": "demo_eeg"},
                                                              "seed": raw["seed"]})])
    assert from_file == from_params
    if "encode" in sections:  # the dataset's override is merged over the top-level section
        assert from_file["encode"]["encodings"] == ["delta", "population"]


def test_params_merge_over_the_config_file(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("seed: 3\ntrain: {epochs: 7, hidden: [32]}\n")
    ctx = _parse(("train",), ["--config", str(path), "--params", '{"settings": {"train": {"epochs": 1}}}', "--encoding", "e"])
    assert ctx["train"]["epochs"] == 1 and ctx["train"]["hidden"] == [32] and ctx.seed == 3
    assert ctx.names == {"encoding": "e"}
    assert _parse(("train",), ["--config", str(path), "--seed", "9"]).seed == 9
    with pytest.raises(BiospikeError, match="reads the section"):
        _parse(("train",), ["--config", str(path), "--params", '{"settings": {"deploy": {}}}'])


def test_config_file_errors_name_the_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("trian: {epochs: 2}\n")
    with pytest.raises(BiospikeError, match=r"invalid config at 'trian': unknown key \(did you mean 'train'\?\)"):
        _parse(("train",), ["--config", str(path)])
    path.write_text("train: {epochs: 0}\n")
    with pytest.raises(BiospikeError, match=r"invalid config at 'train/epochs'"):
        _parse(("train",), ["--config", str(path)])
    path.write_text("encode: {dt_s: -1}\ntrain: {}\n")  # a section the stage does not read is checked too
    with pytest.raises(BiospikeError, match=r"invalid config at 'encode/dt_s'"):
        _parse(("train",), ["--config", str(path)])
    path.write_text("splits: {}\n")
    with pytest.raises(BiospikeError, match="dataset"):
        _parse(("dataset", "splits"), ["--config", str(path)])


def test_schema_descriptions_are_whole():
    """A comma in an unquoted description inside a YAML flow mapping ({..., description: a, b}) cuts
    the description short and leaves a stray key: --help would show half a sentence."""
    def stray(node, path):
        if isinstance(node, dict):
            for key, value in node.items():
                if value is None and " " in str(key):
                    yield f"{path}/{key}"
                yield from stray(value, f"{path}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                yield from stray(value, f"{path}[{i}]")

    assert not list(stray(schema(), "")), "schema descriptions cut at a comma (quote them)"


def test_stage_log_lines_survive_a_library_that_configures_logging(capsys):
    """norse calls logging.debug at import, which sets up the root logger at WARNING: the stages'
    INFO lines (per-epoch progress in a Snakemake log) must still reach stderr, once."""
    import logging

    import norse  # noqa: F401

    logging.basicConfig()  # what norse's import does, in case it was imported before this test
    setup_logging()
    setup_logging()
    logging.getLogger("biospike.train").info("epoch 1: train_loss=0.5")
    err = capsys.readouterr().err
    assert err.count("biospike.train: epoch 1: train_loss=0.5") == 1
