"""Benchmarks write their figures into one marked section each of docs/performance.md (or another doc).

A section starts with a line ``<!-- name -->`` and ends with ``<!-- /name -->``; recording replaces it
in place or appends it, and leaves every other section alone.
"""

from __future__ import annotations

import re
from pathlib import Path

PERFORMANCE_MD = Path(__file__).resolve().parent.parent / "docs" / "performance.md"
HEADER = "# Performance\n\nEach section is written by the benchmark it names (`make bench` runs them all).\n"


def record(section: str, path: Path = PERFORMANCE_MD) -> None:
    """Replace the section that starts with the same ``<!-- name -->`` line as ``section``, or append it."""
    start = section.strip().splitlines()[0].strip()
    end = start.replace("<!-- ", "<!-- /", 1)
    text = path.read_text(encoding="utf-8") if path.exists() else HEADER
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section.strip(), text)
    else:
        text = text.rstrip() + "\n\n" + section.strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.rstrip() + "\n", encoding="utf-8")
    print(f"updated {path}")


def write_section(name: str, title: str, body: str, path: Path = PERFORMANCE_MD) -> None:
    record(f"<!-- {name} -->\n## {title}\n\n{body.strip()}\n<!-- /{name} -->", path)
