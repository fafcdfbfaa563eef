"""biospike.progress: tqdm on a terminal, one line per ~10% in logs, silent when switched off."""

from __future__ import annotations

import io

import pytest

from biospike.progress import LogProgress, progress, progress_mode


class _TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("total", [1, 3, 7, 10, 25, 1000])
def test_log_mode_writes_about_ten_lines_and_the_last_count(total, monkeypatch):
    monkeypatch.delenv("BIOSPIKE_PROGRESS", raising=False)
    stream = io.StringIO()
    items = list(progress(range(total), desc="work", stream=stream))
    assert items == list(range(total))
    lines = stream.getvalue().splitlines()
    assert 1 <= len(lines) <= 10
    assert all(line.startswith("work: ") for line in lines)
    assert f"({total}/{total})" in lines[-1]
    assert "\r" not in stream.getvalue()


def test_unknown_total_logs_at_doubling_counts_and_at_the_end(monkeypatch):
    monkeypatch.delenv("BIOSPIKE_PROGRESS", raising=False)
    stream = io.StringIO()
    for _ in progress((i for i in range(20)), desc="gen", stream=stream):
        pass
    counts = [int(line.split()[1]) for line in stream.getvalue().splitlines()]
    assert counts == [1, 2, 4, 8, 16, 20]


def test_manual_updates_postfix_and_early_close(monkeypatch):
    monkeypatch.delenv("BIOSPIKE_PROGRESS", raising=False)
    stream = io.StringIO()
    with progress(None, desc="epochs", total=40, stream=stream) as bar:
        for _ in range(6):  # early stop after 6 of 40
            bar.set_postfix(loss=0.123456)
            bar.update(1)
    lines = stream.getvalue().splitlines()
    assert "(4/40)" in lines[0] and "loss=0.1235" in lines[0]
    assert "(6/40)" in lines[-1] and len(lines) == 2


def test_terminal_gets_tqdm_and_env_overrides(monkeypatch):
    from tqdm.auto import tqdm

    monkeypatch.delenv("BIOSPIKE_PROGRESS", raising=False)
    tty = _TTY()
    assert progress_mode(tty) == "tty"
    bar = progress(range(3), desc="x", stream=tty)
    assert isinstance(bar, tqdm)
    list(bar)
    monkeypatch.setenv("BIOSPIKE_PROGRESS", "log")
    assert isinstance(progress(range(3), stream=tty), LogProgress)
    monkeypatch.setenv("BIOSPIKE_PROGRESS", "off")
    quiet = io.StringIO()
    assert list(progress(range(5), desc="q", stream=quiet)) == list(range(5))
    assert quiet.getvalue() == ""
