"""Benchmarks write their figures into one marked section each of docs/performance.md."""

from __future__ import annotations

import re
from pathlib import Path

PERFORMANCE_MD = Path(__file__).resolve().parent.parent / "docs" / "performance.md"
HEADER = "# Performance\n\nEach section is written by the benchmark it names (`make bench` runs them all).\n"


def write_section(marker: str, title: str, body: str, path: Path = PERFORMANCE_MD) -> None:
    """Replace (or append) the section between ``<!-- marker -->`` and ``<!-- /marker -->``."""
    text = path.read_text() if path.exists() else HEADER
    block = f"<!-- {marker} -->\n## {title}\n\n{body.strip()}\n<!-- /{marker} -->"
    pattern = re.compile(rf"<!-- {re.escape(marker)} -->.*?<!-- /{re.escape(marker)} -->", re.DOTALL)
    text = (
        pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"updated {path} ({marker})")
