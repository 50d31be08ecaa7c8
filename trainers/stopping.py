"""A clean stop for training loops on SIGINT (Ctrl-C) and SIGTERM (``kill``, a scheduler's
preemption): the loop finishes the step under way, saves, and exits, instead of dying
between two checkpoints. No TensorFlow here: ``trainers.compression_numpy`` uses it too.
"""

from __future__ import annotations

import signal
import threading

from absl import logging


class StopRequest:
    """While active (a ``with`` block in the main thread), SIGINT and SIGTERM set
    ``signal_number`` instead of stopping the process, for the training loop to check after
    each step; a second signal stops at once (KeyboardInterrupt). In another thread, or
    outside the block, signals keep their usual handlers.

    Example::

        with StopRequest() as stop:
            while step < steps and stop.signal_number is None:
                step = train_one_step()
        if stop.signal_number is not None:
            save_checkpoint()
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signal_number: int | None = None
        self._previous = {}

    @property
    def signal_name(self) -> str | None:
        """``"SIGINT"`` or ``"SIGTERM"`` once one arrived, else None."""
        return None if self.signal_number is None else signal.Signals(self.signal_number).name

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            self._previous = {number: signal.signal(number, self._handle) for number in self.SIGNALS}
        return self

    def __exit__(self, *exc_info) -> bool:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}
        return False

    def _handle(self, number, frame) -> None:
        del frame
        if self.signal_number is not None:
            raise KeyboardInterrupt
        self.signal_number = number
        logging.warning("%s: stopping after the step under way (a checkpoint and model.keras first); "
                        "send it again to stop at once.", self.signal_name)
