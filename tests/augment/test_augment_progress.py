"""Progress display: log lines without a TTY, tqdm on one."""

from __future__ import annotations

import io
import logging

from orca_jax.augment.teacher.progress import Progress


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_log_lines_show_done_rate_failures_eta(caplog):
    clock = _Clock()
    progress = Progress(100, use_tqdm=False, interval_s=5.0, clock=clock)
    with caplog.at_level(logging.INFO, logger="orca_jax.augment.progress"):
        clock.now += 2.0
        progress.update(10)
        assert not caplog.records  # not yet: every 5 s
        clock.now += 8.0
        progress.update(15, failures=2, kept_apart=1)
    (record,) = caplog.records
    assert record.getMessage() == "progress: 25/100 (25.0%) | 2.5 rows/s | failures 2 | kept apart 1 | ETA 0:00:30"


def test_failed_attempts_are_counted_as_they_happen(caplog):
    clock = _Clock()
    progress = Progress(12, use_tqdm=False, interval_s=5.0, clock=clock)
    with caplog.at_level(logging.INFO, logger="orca_jax.augment.progress"):
        for _ in range(3):
            progress.attempt_failed("connection_error")
        progress.attempt_failed("timeout")
        assert not caplog.records
        clock.now += 6.0
        progress.attempt_failed("connection_error")  # no flush needed: the line comes at once
    (record,) = caplog.records
    assert record.getMessage().endswith(
        "failures 0 | kept apart 0 | ETA ? | failed attempts 5 (connection_error 4, timeout 1)"
    )


def test_tqdm_bar_on_a_terminal():
    stream = io.StringIO()
    progress = Progress(10, stream=stream, use_tqdm=True)
    progress.update(4, failures=1)
    progress.update(6)
    progress.close()
    text = stream.getvalue()
    assert "10/10" in text and "failures=1" in text


def test_tty_detection_defaults_to_log_lines():
    assert Progress(1, stream=io.StringIO())._bar is None
