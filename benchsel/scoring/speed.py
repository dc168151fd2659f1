"""Speed and thinking figures from the replies' server timings: decode and prefill rates, latency,
thinking waste and truncations."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from benchsel.contention import Contention
from benchsel.records import Reply

# A decode shorter than this is too short to time honestly (rates from it are rejected).
MIN_DURATION_NS = 1_000_000


@dataclass(frozen=True)
class SpeedStats:
    replies: int
    decode_tokens_per_s: float | None
    prefill_tokens_per_s: float | None
    wall_tokens_per_s: float | None
    latency_p50_s: float | None
    latency_p95_s: float | None
    output_tokens: int
    thinking_replies: int
    thinking_share: float
    """Share of the output (by characters) spent before any JSON: thinking plus preamble."""
    truncated: int
    timing_source: str
    cold_prefill_tokens_per_s: float | None = None
    """Prefill with nothing cached (the model's warm-up prompt). ``prefill_tokens_per_s`` is the cases'
    own, which with the prompt cache on covers only what follows the cached prefix."""
    contention: Contention | None = None
    """CPU other processes used while the model ran; None for runs made before it was recorded."""

    @property
    def contended(self) -> bool:
        """True when the speed figures were taken while other processes competed for the CPU."""
        return bool(self.contention is not None and self.contention.contended)


def _percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def chars_before_json(reply: Reply) -> tuple[int, int]:
    """(characters spent before the first '{' of the answer, all characters of the output)."""
    start = reply.content.find("{")
    preamble = len(reply.content) if start == -1 else start
    return len(reply.thinking) + preamble, len(reply.thinking) + len(reply.content)


def speed_stats(replies: Sequence[Reply]) -> SpeedStats:
    """Rates are aggregate (total tokens / total time), so long replies weigh what they cost."""
    timed = [r for r in replies if r.eval_count > 0 and r.eval_duration_ns >= MIN_DURATION_NS]
    decode_tokens = sum(r.eval_count for r in timed)
    decode_ns = sum(r.eval_duration_ns for r in timed)
    prefill = [r for r in replies if r.prompt_eval_count > 0 and r.prompt_eval_duration_ns >= MIN_DURATION_NS]
    prefill_ns = sum(r.prompt_eval_duration_ns for r in prefill)
    walls = [r.wall_s for r in replies if r.wall_s > 0]
    wall_total = sum(walls)
    before, total = 0, 0
    for reply in replies:
        b, t = chars_before_json(reply)
        before, total = before + b, total + t
    sources = {r.timing_source for r in replies}
    return SpeedStats(
        replies=len(replies),
        decode_tokens_per_s=decode_tokens / decode_ns * 1e9 if decode_ns else None,
        prefill_tokens_per_s=(
            sum(r.prompt_eval_count for r in prefill) / prefill_ns * 1e9 if prefill_ns else None
        ),
        wall_tokens_per_s=sum(r.eval_count for r in replies) / wall_total if wall_total else None,
        latency_p50_s=statistics.median(walls) if walls else None,
        latency_p95_s=_percentile(walls, 0.95),
        output_tokens=sum(r.eval_count for r in replies),
        thinking_replies=sum(1 for r in replies if r.thinking),
        thinking_share=before / total if total else 0.0,
        truncated=sum(1 for r in replies if r.truncated),
        timing_source="/".join(sorted(sources)) or "none",
    )
