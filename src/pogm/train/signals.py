"""Stopping on a signal: SIGINT (Ctrl-C) and SIGTERM stop training at the next step boundary
with a checkpoint (`StopSignals`), and `train` then raises `TrainingInterrupted`."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

from pogm.train.distributed import resume_command


class TrainingInterrupted(Exception):
    """Training stopped by SIGINT or SIGTERM after saving a checkpoint; ``exit_code`` is 128 + the
    signal's number (130 for Ctrl-C, 143 for SIGTERM), as shells report a signal's end."""

    every_process = True  # with several processes, all of them stop at the same step

    def __init__(self, run_dir: Path, step: int, signum: int, world_size: int = 1) -> None:
        self.run_dir, self.step, self.signum, self.world_size = run_dir, step, signum, world_size
        self.exit_code = 128 + int(signum)
        super().__init__(
            f"training stopped by {signal.Signals(signum).name} at step {step}; checkpoint saved in {run_dir}. "
            f"Continue with: {resume_command(run_dir, world_size)}"
        )

    def __reduce__(self):
        # rebuilt from its fields, so that it crosses a process pool (`pogm reproduce --jobs 2`) intact
        return type(self), (self.run_dir, self.step, self.signum, self.world_size)


class StopSignals:
    """While active (in the main thread), SIGINT and SIGTERM only set ``received``, so that training
    stops at a step boundary with a checkpoint; a second signal raises KeyboardInterrupt at once
    (every file is written atomically, so even that leaves the last checkpoint usable)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signum

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        self._previous.clear()
