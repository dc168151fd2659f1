"""The report formats `benchsel report` and `benchsel compare` accept, and the parsing of a --format value."""

from __future__ import annotations

from collections.abc import Iterable

from benchsel.errors import UsageError

FORMATS = ("md", "html", "json", "csv")
COMPARE_FORMATS = ("md", "html")


def parse_formats(formats: str | Iterable[str], allowed: tuple[str, ...] = FORMATS) -> tuple[str, ...]:
    """'html,md' or ['md'] -> ('md', 'html') in a fixed order; refuses anything not in ``allowed``."""
    names = formats.split(",") if isinstance(formats, str) else list(formats)
    wanted = {name.strip().lower() for name in names if name.strip()}
    wanted = {"md" if name == "markdown" else name for name in wanted}
    unknown = sorted(wanted - set(allowed))
    if unknown or not wanted:
        raise UsageError(
            f"unknown report format {', '.join(unknown) or '(none)'} - use {', '.join(allowed)} "
            "or several, comma-separated (md,html)"
        )
    return tuple(name for name in allowed if name in wanted)
