"""Shared fixtures: repository paths and the real recordings in ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The public recordings; absent only on machines without ../shared (never in CI)."""
    if not SHARED_DATA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{SHARED_DATA} is missing in CI")
        pytest.skip(f"{SHARED_DATA} not present")
    return SHARED_DATA


def envelope(seed: int | None = 7, **sections_and_names) -> str:
    """The ``--params`` JSON a rule would pass: config sections (dict values) and names (str values)."""
    import json

    settings = {k: v for k, v in sections_and_names.items() if isinstance(v, dict)}
    names = {k: v for k, v in sections_and_names.items() if isinstance(v, str)}
    return json.dumps({"settings": settings, "names": names, "seed": seed})
