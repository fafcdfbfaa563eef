"""A rule's code version, derived from the modules it actually runs.

Snakemake reruns a rule when its ``params`` change but does not see edits inside an imported
package, so each rule carries a hash of its code. Hand-kept module lists drift (a rule forgets a
module it imports), so the list is derived: starting from the rule's entry modules, every
``import biospike...`` (at module level or inside functions) and every registry reference
(a string ``"biospike.x:function"`` or ``"biospike.x"`` naming a module that exists, e.g. the
reader table of ``biospike.io``) is followed, and the files of that closure are hashed. Importing a
submodule also runs its package's ``__init__``, which is followed too.

The one exception is the catalogue of model kinds and levers, :mod:`biospike.kinds`: it names the
code of every kind, but a job runs only its own, so its strings are not followed (else editing the
DP code would rerun every SNN); a rule that dispatches through it adds the module of the entry it
runs (the train rule its kind's trainer, a reference-model rule its group's fit).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import re
from pathlib import Path

__all__ = ["CATALOGUES", "PACKAGE_DIR", "code_version", "direct_imports", "module_closure", "module_path"]

PACKAGE_DIR = Path(__file__).resolve().parent
_REF = re.compile(r"^(biospike(?:\.[A-Za-z_]\w*)*)(?::[A-Za-z_]\w*)?$")
CATALOGUES = ("kinds.py",)  # modules whose registry strings name code other jobs run


def module_path(module: str, root: Path = PACKAGE_DIR) -> Path | None:
    """The file of ``biospike.a.b`` (a module or a package's ``__init__``), None if there is none."""
    parts = module.split(".")[1:]
    base = root.joinpath(*parts) if parts else root
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def _module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join(["biospike", *parts])


@functools.cache
def direct_imports(path: Path, root: Path = PACKAGE_DIR, references: bool = True) -> frozenset[str]:
    """The biospike modules one file imports (and, with ``references``, names in a registry string)."""
    tree = ast.parse(path.read_text())
    references = references and path.relative_to(root).as_posix() not in CATALOGUES
    name = _module_name(path, root)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("biospike"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            if base.startswith("biospike"):
                found.add(base)
                found.update(f"{base}.{a.name}" for a in node.names)  # `from pkg import module`
        elif references and isinstance(node, ast.Constant) and isinstance(node.value, str):
            match = _REF.match(node.value)
            if match:
                found.add(match.group(1))
    return frozenset(m for m in found if module_path(m, root) is not None)


def _with_packages(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def module_closure(*modules: str, root: Path = PACKAGE_DIR) -> list[Path]:
    """Files of ``modules`` and of everything they import within biospike, sorted."""
    seen: set[str] = set()
    todo = [m for entry in modules for m in _with_packages(entry)]
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        path = module_path(mod, root)
        if path is None:
            raise ValueError(f"no module {mod!r} under {root}")
        seen.add(mod)
        for dep in direct_imports(path, root):
            todo += [m for m in _with_packages(dep) if m not in seen]
    return sorted({module_path(m, root) for m in seen})


def code_version(*modules: str, root: Path = PACKAGE_DIR, extra_files: tuple[Path, ...] = ()) -> str:
    """16 hex digits of the SHA-256 over the closure's files (and ``extra_files``, e.g. the schema)."""
    digest = hashlib.sha256()
    for path in [*module_closure(*modules, root=root), *sorted(extra_files)]:
        digest.update(str(path.relative_to(root) if path.is_relative_to(root) else path.name).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
