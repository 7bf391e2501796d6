"""Order-free helpers for reading the report in assertions (other engineers change the constructs)."""

from __future__ import annotations

from datetime import UTC, datetime

# A fixed "now" keeps expiry judgements stable; the user app's exemption expires in 2031.
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def sections(markdown: str) -> dict[str, str]:
    """The report's ``## `` sections by title (order-free lookups for the assertions)."""
    found: dict[str, str] = {}
    title = ""
    for line in markdown.splitlines():
        if line.startswith("## "):
            title = line[3:].strip()
            found[title] = ""
        elif title:
            found[title] += line + "\n"
    return found


def row_with(section: str, *needles: str) -> str:
    """The one table row (or list line) of a section that holds every needle."""
    rows = [line for line in section.splitlines() if all(n in line for n in needles)]
    assert len(rows) == 1, f"expected one line with {needles}, found {rows}"
    return rows[0]
