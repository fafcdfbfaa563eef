"""docs/api.md stays true: every ```python block runs, in order, in one namespace (later blocks
use the names earlier ones made), as a reader pasting them into one notebook would."""

from __future__ import annotations

import re
import traceback
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(line number of the opening fence, code) of every ```python block."""
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in BLOCK.finditer(text)]


def test_doc_has_the_api_sections():
    text = DOC.read_text()
    blocks = python_blocks(text)
    assert len(blocks) >= 9
    for name in ("read_recording", "make_splits", "encode_signals", "make_arch", "fit(", "predict_logits",
                 "evaluate_scores", "simulate_model", "noise_multiplier_for"):
        assert any(name in code for _, code in blocks), f"no example calls {name}"


def test_readme_python_example_runs(tmp_path, monkeypatch, capsys):
    """The README's "From Python" example, as a reader would paste it."""
    readme = DOC.parents[1] / "README.md"
    blocks = python_blocks(readme.read_text())
    assert blocks, "README.md has no python example"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__readme__"}
    for number, (line, code) in enumerate(blocks, start=1):
        try:
            exec(compile(code, f"README.md:block{number}", "exec"), namespace)  # noqa: S102
        except Exception:  # noqa: BLE001 -- report which block failed, with its traceback
            pytest.fail(f"README.md python block {number} (line {line}) failed:\n{traceback.format_exc()}")
    out = capsys.readouterr().out
    assert "test accuracy" in out and "LOSS attack AUC" in out and "Loihi:" in out


def test_every_python_block_runs_in_order(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the examples write only where they say (a temporary folder)
    namespace: dict = {"__name__": "__api_doc__"}
    for number, (line, code) in enumerate(python_blocks(DOC.read_text()), start=1):
        try:
            exec(compile(code, f"{DOC.name}:block{number}", "exec"), namespace)  # noqa: S102
        except Exception:  # noqa: BLE001 -- report which block failed, with its traceback
            pytest.fail(f"docs/api.md python block {number} (line {line}) failed:\n{traceback.format_exc()}")
    capsys.readouterr()


# Public modules whose names are declared (__all__) and documented: every module of the package.
PUBLIC_MODULES = [
    "biospike", "biospike.cli", "biospike.cliutil", "biospike.config", "biospike.classical", "biospike.codeversion",
    "biospike.demo", "biospike.errors", "biospike.kinds", "biospike.metrics", "biospike.plan", "biospike.progress",
    "biospike.registry", "biospike.results", "biospike.signals", "biospike.store", "biospike.targets",
    "biospike.trainset", "biospike.units",
    "biospike.io", "biospike.io.edf", "biospike.io.emg_text", "biospike.io.myo_csv", "biospike.io.ninapro_mat",
    "biospike.io.physionet2017", "biospike.io.wfdb_beats",
    "biospike.encode", "biospike.encode.cli", "biospike.encode.delta", "biospike.encode.population",
    "biospike.encode.rate", "biospike.encode.stage", "biospike.encode.timebase",
    "biospike.deploy", "biospike.deploy.cli", "biospike.deploy.hardware", "biospike.deploy.mapping",
    "biospike.deploy.nir_export", "biospike.deploy.quantize", "biospike.deploy.simulator",
    "biospike.models", "biospike.models.snn", "biospike.models.ann", "biospike.models.fused", "biospike.models.ensemble",
    "biospike.train", "biospike.ingest", "biospike.predict", "biospike.report", "biospike.figures",
    "biospike.privacy", "biospike.privacy.accounting", "biospike.privacy.adaptive", "biospike.privacy.audit",
    "biospike.privacy.cli", "biospike.privacy.dp", "biospike.privacy.grad_sample", "biospike.privacy.noise",
    "biospike.privacy.optimizer",
    "biospike.attacks", "biospike.attacks.cli", "biospike.attacks.metrics", "biospike.attacks.mia",
    "biospike.attacks.references",
]


def _undocumented(module) -> list[str]:
    import inspect

    missing = []
    for name in module.__all__:
        obj = getattr(module, name, None)
        if not (inspect.isfunction(obj) or inspect.isclass(obj)) or obj.__module__ != module.__name__:
            continue
        doc = vars(obj).get("__doc__") if inspect.isclass(obj) else obj.__doc__
        if inspect.isclass(obj) and hasattr(obj, "__dataclass_fields__") and (doc or "").startswith(f"{name}("):
            doc = None  # the signature dataclasses write in place of a missing docstring
        if not (doc or "").strip():  # a class's own docstring, not one inherited (nn.Module's)
            missing.append(name)
        if inspect.isclass(obj):
            fields = getattr(obj, "__dataclass_fields__", {})  # a field's default (a lambda) is no method
            for attr, member in vars(obj).items():
                func = member.fget if isinstance(member, property) else getattr(member, "__func__", member)
                if (not attr.startswith("_") and attr not in fields and inspect.isfunction(func)
                        and not (func.__doc__ or "").strip()):
                    missing.append(f"{name}.{attr}")
    return missing


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_public_module_declares_and_documents_its_names(name):
    import importlib
    import inspect

    module = importlib.import_module(name)
    assert isinstance(getattr(module, "__all__", None), list), f"{name} has no __all__"
    for item in module.__all__:  # every declared name exists (a submodule of a package counts)
        assert hasattr(module, item) or importlib.util.find_spec(f"{name}.{item}"), f"{name}.__all__ names {item!r}"
    defined = {k for k, v in vars(module).items() if not k.startswith("_")
               and (inspect.isfunction(v) or inspect.isclass(v)) and v.__module__ == name}
    assert not defined - set(module.__all__), f"{name}: public names missing from __all__"
    assert not _undocumented(module), f"{name}: no docstring on {_undocumented(module)}"
