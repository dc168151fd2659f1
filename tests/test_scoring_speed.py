"""benchsel.scoring.speed: decode and prefill rates, latency percentiles, thinking share, truncations."""

from __future__ import annotations

import pytest

from benchsel.records import Reply
from benchsel.scoring.speed import chars_before_json, speed_stats


def test_rates_are_aggregate_over_replies() -> None:
    replies = [
        Reply(
            "{}",
            eval_count=100,
            eval_duration_ns=2_000_000_000,
            prompt_eval_count=50,
            prompt_eval_duration_ns=100_000_000,
            wall_s=2.5,
        ),
        Reply(
            "{}",
            eval_count=300,
            eval_duration_ns=2_000_000_000,
            prompt_eval_count=150,
            prompt_eval_duration_ns=100_000_000,
            wall_s=3.5,
        ),
    ]
    stats = speed_stats(replies)
    assert stats.decode_tokens_per_s == pytest.approx(400 / 4.0)  # not the mean of 50 and 150
    assert stats.prefill_tokens_per_s == pytest.approx(200 / 0.2)
    assert stats.wall_tokens_per_s == pytest.approx(400 / 6.0)
    assert stats.latency_p50_s == pytest.approx(3.0)
    assert stats.latency_p95_s == pytest.approx(2.5 + 0.95 * 1.0)
    assert stats.output_tokens == 400
    assert stats.timing_source == "server"


def test_too_short_durations_are_not_timed() -> None:
    stats = speed_stats(
        [Reply("{}", eval_count=5, eval_duration_ns=10, prompt_eval_count=3, prompt_eval_duration_ns=5)]
    )
    assert stats.decode_tokens_per_s is None and stats.prefill_tokens_per_s is None
    assert stats.wall_tokens_per_s is None and stats.latency_p50_s is None and stats.latency_p95_s is None


def test_thinking_share_and_truncations() -> None:
    replies = [
        Reply('ok {"a": 1}', thinking="x" * 10, done_reason="stop"),  # 10 + 3 before, 21 in all
        Reply("no json at all", done_reason="length"),  # 14 before, 14 in all
        Reply('{"a": 1}', done_reason="stop"),  # 0 before, 8 in all
    ]
    assert chars_before_json(replies[0]) == (13, 21)
    stats = speed_stats(replies)
    assert stats.thinking_replies == 1
    assert stats.thinking_share == pytest.approx((13 + 14) / (21 + 14 + 8))
    assert stats.truncated == 1


def test_no_replies() -> None:
    stats = speed_stats([])
    assert stats.replies == 0 and stats.thinking_share == 0.0 and stats.timing_source == "none"
