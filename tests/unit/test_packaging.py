"""The install story stays true: pins agree, torchvision is never imported."""

import re
import subprocess
import sys
import tomllib

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
