"""Tables and numbers as every command prints them: rich when installed, aligned text otherwise.

One place for what ``models``, ``demo`` and ``simulate`` each wrote for themselves: the first
column left-aligned and the others right-aligned, a rule under the header (and, for a table
ending in a total, above it), and the formats of counts, prices, seconds and dollars.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

__all__ = [
    "UNKNOWN",
    "fmt_count",
    "fmt_int",
    "fmt_price",
    "fmt_seconds",
    "fmt_usd",
    "rich_table",
    "text_table",
]

#: What a cell shows for a value the catalogue does not know.
UNKNOWN = "—"


def fmt_count(n: int | None) -> str:
    """Round token counts compactly (128k, 4M); others exactly (1,048,576), never rounded."""
    if n is None:
        return UNKNOWN
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1_000 and n % 1_000 == 0:
        return f"{n // 1_000}k"
    return f"{n:,}"


def fmt_int(n: int | None) -> str:
    """``1,234``, or the unknown mark."""
    return UNKNOWN if n is None else f"{n:,}"


def fmt_price(value: Decimal | None) -> str:
    """A USD price per 1M tokens with at least two decimals and no float rounding: ``$0.075``."""
    if value is None:
        return UNKNOWN
    text = f"{value:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
        whole, _, frac = text.partition(".")
        text = f"{whole}.{frac.ljust(2, '0')}"
    else:
        text = f"{text}.00"
    return f"${text}"


def fmt_seconds(seconds: float) -> str:
    """A duration in the unit that reads best: ``2.50 s``, ``45.0 s``, ``10.0 min``, ``1.5 h``."""
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 120:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"


def fmt_usd(value: float | None) -> str:
    """Dollars: cents from $10 up, four decimals below (a simulated minute costs fractions)."""
    if value is None:
        return "unknown"
    return f"${value:,.2f}" if abs(value) >= 10 else f"${value:,.4f}"


def text_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], *, total: bool = False
) -> list[str]:
    """The lines of an aligned table: header, a rule, the rows (a rule above the last: ``total``).

    The first column is left-aligned, the others right-aligned, two spaces apart.
    """
    table = [list(header), *(list(r) for r in rows)]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in table
    ]
    rule = "  ".join("-" * w for w in widths)
    lines.insert(1, rule)
    if total:
        lines.insert(len(lines) - 1, rule)
    return lines


def rich_table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    title: str | None = None,
    total: bool = False,
    title_left: bool = True,
    wrap: bool = False,
) -> Any | None:
    """The same table as a ``rich.table.Table``, or ``None`` when rich is not installed.

    ``total`` draws a line above the last row; ``wrap`` lets the value columns wrap (the first
    never does).
    """
    try:
        from rich.table import Table
    except ImportError:
        return None
    table = Table(title=title, title_justify="left" if title_left else "center")
    for i, name in enumerate(header):
        first = i == 0
        table.add_column(name, justify="left" if first else "right", no_wrap=first or not wrap)
    for i, row in enumerate(rows):
        table.add_row(*row, end_section=total and i == len(rows) - 2)
    return table
