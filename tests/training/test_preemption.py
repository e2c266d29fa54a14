"""PreemptionWatch in one process: SIGTERM sets the stop flag instead of killing, and the
previous handler comes back afterwards. (The trainer subprocess tests in test_resume.py and
test_multiprocess.py send real signals to whole runs.)"""

import os
import signal

from orca_jax.training.preemption import PreemptionWatch


def test_sigterm_sets_the_flag_and_the_handler_is_restored():
    before = signal.getsignal(signal.SIGTERM)
    with PreemptionWatch() as watch:
        assert watch.mode == "signal"
        assert not watch.should_stop(1)
        os.kill(os.getpid(), signal.SIGTERM)  # handled at the next bytecode boundary
        assert watch.requested and watch.should_stop(2)
        os.kill(os.getpid(), signal.SIGTERM)  # a second notice changes nothing
        assert watch.should_stop(3)
    assert signal.getsignal(signal.SIGTERM) is before
