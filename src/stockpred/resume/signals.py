"""SIGTERM and Ctrl-C during a run: raise ``Terminated`` so the run unwinds, ends KILLED and keeps
its checkpoints for a resume."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


class Terminated(BaseException):
    """SIGTERM (``kill``, a scheduler, a Prefect cancellation) or Ctrl-C arrived during a run:
    unwind it, ending the MLflow run KILLED with its checkpoints kept for a resume.

    A ``BaseException`` so ``except Exception`` blocks do not swallow it, and deliberately not a
    ``KeyboardInterrupt``: Lightning turns a ``KeyboardInterrupt`` inside ``fit`` into
    ``sys.exit(1)`` (leaving SIGINT ignored), but re-raises any other exception.
    ``run_training`` re-raises a Ctrl-C as ``KeyboardInterrupt`` once the run is ended.
    """

    def __init__(self, message: str = "terminated by SIGTERM", signum: int = signal.SIGTERM):
        super().__init__(message)
        self.signum = int(signum)


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """While inside, SIGTERM and Ctrl-C (SIGINT) raise ``Terminated`` in the main thread, so the
    run is recorded as KILLED, its checkpoints stay, and ``fit`` unwinds like any error.

    Installed only from the main thread, and only over Python's own handlers (SIGTERM's default,
    SIGINT's ``default_int_handler``, which Jupyter kernels also use while a cell runs): an
    orchestrator's handler (Prefect raises its ``TerminationSignal``) stays in charge. Both
    handlers are restored on the way out, whatever happened inside (Lightning ignores SIGINT
    after a ``KeyboardInterrupt`` in ``fit``; a notebook must get its Ctrl-C back). Lightning
    adds its SIGTERM notice in front of this handler during ``fit`` and restores it afterwards.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum: int, _frame: object) -> None:
        if signum == signal.SIGINT:
            raise Terminated("interrupted by Ctrl-C (SIGINT)", signum)
        raise Terminated(f"terminated by {signal.Signals(signum).name}", signum)

    ours = {signal.SIGTERM: signal.SIG_DFL, signal.SIGINT: signal.default_int_handler}
    previous = {signum: signal.getsignal(signum) for signum in ours}
    try:
        for signum, default in ours.items():
            if previous[signum] is default:
                signal.signal(signum, _raise)
        yield
    finally:
        for signum, handler in previous.items():
            if handler is not None:  # None: installed from C; cannot be put back from Python
                signal.signal(signum, handler)
