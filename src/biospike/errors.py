"""One error type for everything the user can fix: it names the file and the problem."""

from __future__ import annotations

from pathlib import Path

__all__ = ["BiospikeError"]


class BiospikeError(Exception):
    """A user-facing error: ``<file>: <problem>``. The CLI prints it on one line and exits 2."""

    def __init__(self, problem: str, path: str | Path | None = None) -> None:
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)
