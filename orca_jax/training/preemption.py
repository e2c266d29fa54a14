"""Stopping cleanly when the machine is about to go away.

A spot or preemptible TPU VM gets SIGTERM about 30 s before it is reclaimed. The train loop
asks `PreemptionWatch.should_stop(step)` after every step; when it answers yes, the loop
saves a checkpoint at that step, waits until it is complete and raises `Preempted`, which
`python -m orca_jax.train` turns into exit code 0 and a "preempted" message. Rerunning the
same command resumes at that step.

Every host must stop at the same step (the save is a collective). How the step is agreed:

* one process: a SIGTERM handler sets a flag, read at the next step boundary;
* several processes (jax.distributed): JAX's preemption service
  (`multihost_utils.reached_preemption_sync_point`): its C++ notifier catches SIGTERM on
  whichever host gets it, and the coordination service picks the next step every host
  reaches as the sync point (the library mechanism; no host sync in the loop);
* several processes with the service disabled (`jax_enable_preemption_service=False`):
  the SIGTERM flag of every host, all-gathered after each step (one small host sync per step).
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import jax
import numpy as np
from jax.experimental import multihost_utils

log = logging.getLogger(__name__)


class Preempted(Exception):
    """Training stopped on a preemption notice after saving a checkpoint at `step`."""

    def __init__(self, step: int, run_dir: str):
        super().__init__(
            f"preempted: saved a checkpoint at step {step} in {run_dir}; rerun the same command to resume from it"
        )
        self.step = step
        self.run_dir = run_dir


def _sync_service_available() -> bool:
    """Whether jax.distributed runs with its preemption sync manager."""
    from jax._src import distributed  # the state multihost_utils itself reads

    state = distributed.global_state
    return state.client is not None and state.preemption_sync_manager is not None


class PreemptionWatch:
    """Answers, at each step boundary, whether every host should stop at this step.

    `start` installs its SIGTERM handler (where it needs one), `stop` restores the previous
    one; or use it as a context manager.
    """

    def __init__(self):
        self.requested = False
        self.mode = "signal"
        if jax.process_count() > 1:
            self.mode = "sync_point" if _sync_service_available() else "allgather"
        self._previous: signal.Handlers | None = None

    DESCRIPTIONS = {
        "signal": "a SIGTERM handler",
        "sync_point": "JAX's preemption sync point (coordination service)",
        "allgather": "a SIGTERM handler, flags all-gathered every step",
    }

    def start(self) -> PreemptionWatch:
        """Install the SIGTERM handler where this mode needs one; returns self."""
        log.info("preemption notices: %s", self.DESCRIPTIONS[self.mode])
        if self.mode == "sync_point":
            return self  # JAX's notifier owns SIGTERM
        if threading.current_thread() is not threading.main_thread():
            log.warning("training outside the main thread: SIGTERM will not save a checkpoint")
            return self
        self._previous = signal.signal(signal.SIGTERM, self._on_signal)
        return self

    def stop(self) -> None:
        """Restore the SIGTERM handler that was there before `start`."""
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None

    def __enter__(self) -> PreemptionWatch:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if not self.requested:
            log.warning("received signal %d: stopping after the current step, with a checkpoint", signum)
        self.requested = True

    def should_stop(self, step: int) -> bool:
        """True when every host is to save at `step` and stop (call after every step)."""
        if self.mode == "sync_point":
            return multihost_utils.reached_preemption_sync_point(step)
        if self.mode == "allgather":
            flags = multihost_utils.process_allgather(np.array([self.requested], np.int32))
            return bool(np.asarray(flags).any())
        return self.requested
