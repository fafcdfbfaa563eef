"""Numbers as people read them in tables and figures: SI prefixes with units, fixed digits."""

from __future__ import annotations

from typing import Any

__all__ = ["fmt_num", "fmt_si"]

_SI = ((1e-12, "p"), (1e-9, "n"), (1e-6, "µ"), (1e-3, "m"), (1.0, ""))


def fmt_si(value: Any, unit: str) -> str:
    """1.23e-6, "J" -> "1.23 µJ"; None -> "–"."""
    if value is None:
        return "–"
    v = float(value)
    if v == 0:
        return f"0 {unit}"
    scale, prefix = _SI[0]
    for s, p in _SI:
        if abs(v) >= s:
            scale, prefix = s, p
    return f"{v / scale:.3g} {prefix}{unit}"


def fmt_num(value: Any, digits: int = 3) -> str:
    """A table cell: floats with ``digits`` decimals (2 significant digits when smaller), ints as
    they are, booleans yes/no, None "–"."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) >= 10 ** -digits or value == 0 else f"{value:.2g}"
    return str(value)
