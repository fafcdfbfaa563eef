"""Progress bars that suit both a terminal and a Snakemake/SLURM log file.

On an interactive terminal :func:`progress` is a plain ``tqdm`` bar. When stderr is not a TTY
(a rule's ``> {log} 2>&1``, a SLURM job) a redrawn bar would fill the log with carriage returns,
so instead one line is written per ~10% of the work (or, without a known total, at doubling
counts), each with the elapsed time and any postfix the caller set::

    train snn: 30% (3/10) 12.4s elapsed, ~28.9s left loss=0.41

``BIOSPIKE_PROGRESS`` overrides the choice: ``tty`` (always tqdm), ``log`` (always lines) or
``off`` (silent).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO, TypeVar

T = TypeVar("T")

ENV_VAR = "BIOSPIKE_PROGRESS"

__all__ = ["ENV_VAR", "LogProgress", "format_duration", "progress", "progress_mode"]


class LogProgress:
    """A tqdm look-alike (iteration, ``update``, ``set_postfix``, ``close``, context manager)
    that writes a line to ``stream`` each time another ``step_frac`` of ``total`` is done."""

    def __init__(self, iterable: Iterable[Any] | None = None, desc: str = "", total: int | None = None,
                 stream: TextIO | None = None, step_frac: float = 0.1, enabled: bool = True) -> None:
        self.iterable = iterable
        self.desc = desc
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self._n_steps = max(1, round(1 / step_frac))
        self.enabled = enabled
        self.n = 0
        self.postfix = ""
        self._start_s = time.monotonic()
        self._next_report = self._first_threshold()
        self._closed = False
        self._last_emitted = 0

    def _threshold(self, k: int) -> int:
        """Item count at which the k-th of ``n_steps`` reports is due (integer ceil)."""
        return max(1, -(-k * int(self.total or 0) // self._n_steps))

    def _first_threshold(self) -> int:
        return self._threshold(1) if self.total else 1

    def _advance_threshold(self) -> None:
        if self.total:
            k = self.n * self._n_steps // int(self.total) + 1
            while self._threshold(k) <= self.n:
                k += 1
            self._next_report = self._threshold(k)
        else:
            self._next_report = self.n * 2  # unknown total: 1, 2, 4, 8, ... items

    def _line(self) -> str:
        elapsed_s = time.monotonic() - self._start_s
        head = f"{self.desc}: " if self.desc else ""
        left = ""
        if self.total:
            count = f"{100 * self.n / self.total:3.0f}% ({self.n}/{self.total})"
            if 0 < self.n < self.total:  # the rate so far, extrapolated
                left = f", ~{format_duration(elapsed_s / self.n * (self.total - self.n))} left"
        else:
            count = f"{self.n} done"
        tail = f" {self.postfix}" if self.postfix else ""
        return f"{head}{count} {format_duration(elapsed_s)} elapsed{left}{tail}"

    def _emit(self) -> None:
        self._last_emitted = self.n
        if self.enabled:
            self.stream.write(self._line() + "\n")
            self.stream.flush()

    def update(self, n: int = 1) -> None:
        """Count ``n`` more; write a line when the next reporting threshold is passed."""
        self.n += n
        if self.n >= self._next_report:
            self._emit()
            self._advance_threshold()

    def set_postfix(self, ordered_dict: dict | None = None, refresh: bool = True, **kwargs: Any) -> None:  # noqa: ARG002
        """Show ``key=value`` pairs at the end of each line (tqdm's signature)."""
        items = {**(ordered_dict or {}), **kwargs}
        self.postfix = " ".join(f"{k}={_fmt(v)}" for k, v in items.items())

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:  # noqa: ARG002
        """Show ``s`` at the end of each line."""
        self.postfix = s

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:  # noqa: ARG002
        """Replace the description each line starts with."""
        self.desc = desc or ""

    def write(self, s: str) -> None:
        """Write ``s`` as a line of its own (unless the display is off)."""
        if self.enabled:
            self.stream.write(s.rstrip("\n") + "\n")

    def close(self) -> None:
        """Finish: a last line when the final count was not reported yet; calling it again does nothing."""
        # a last line if the final count was not reported (early stop, unknown total)
        if not self._closed and self.n and self.n != self._last_emitted:
            self._emit()
        self._closed = True

    def __iter__(self) -> Iterator[Any]:
        if self.iterable is None:
            raise TypeError("LogProgress without an iterable: use update()")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __len__(self) -> int:
        return int(self.total or 0)

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def format_duration(seconds: float) -> str:
    """12.3 -> "12.3s", 754 -> "12m34s", 7384 -> "2h03m"."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def progress_mode(stream: TextIO | None = None) -> str:
    """How :func:`progress` will display on ``stream`` (default stderr): "tty", "log" or "off"."""
    stream = stream if stream is not None else sys.stderr
    forced = os.environ.get(ENV_VAR, "").strip().lower()
    if forced in ("tty", "log", "off"):
        return forced
    try:
        return "tty" if stream.isatty() else "log"
    except (AttributeError, ValueError):  # closed or fake stream
        return "log"


_mode = progress_mode  # old private name, used by biospike.train


def progress(iterable: Iterable[T] | None = None, desc: str = "", total: int | None = None,
             *, stream: TextIO | None = None, leave: bool = True, **tqdm_kwargs: Any) -> Any:
    """Wrap ``iterable`` (or, with ``iterable=None``, count manual ``update(n)`` calls) in a
    progress display: tqdm on a terminal, one log line per ~10% otherwise.

    The returned object supports iteration, ``update``, ``set_postfix``, ``close`` and ``with``.
    """
    stream = stream if stream is not None else sys.stderr
    mode = progress_mode(stream)
    if mode == "tty":
        from tqdm.auto import tqdm

        return tqdm(iterable, desc=desc, total=total, file=stream, leave=leave, dynamic_ncols=True, **tqdm_kwargs)
    return LogProgress(iterable, desc=desc, total=total, stream=stream, enabled=mode != "off")
