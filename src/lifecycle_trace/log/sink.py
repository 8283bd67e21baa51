"""The streaming sink: a bus handler that writes the log to JSON Lines as the engine runs.

Memory stays flat however long the run: each event becomes one line in a
write buffer and is then forgotten. The buffer is flushed to the file at the
end of every engine step (a ``StepFinished``), so a reader following the file
sees whole steps, and a crash loses at most the step in progress (its last
line possibly cut short, which the reader reports). :meth:`JsonlWriter.close`,
leaving the ``with`` block, the writer being garbage collected or the
interpreter exiting normally all flush and close the file.
"""

from __future__ import annotations

import os
import weakref
from types import TracebackType
from typing import IO

from lifecycle_trace.log._codec import encode_line
from minivllm.events import Event, StepFinished

__all__ = ["JsonlWriter"]

_BUFFER = 1 << 16


def _close(file: IO[bytes], owned: bool) -> None:
    """Flush ``file`` and close it if the writer opened it (idempotent)."""
    if file.closed:
        return
    if owned:
        file.close()
    else:
        file.flush()


class JsonlWriter:
    """A bus handler that appends each event to a JSON Lines file, flushing at step ends.

    ``target`` is a path (opened for writing, replacing the file) or a binary
    stream (flushed but left open on close). Subscribe it to every event type:
    ``LLMEngine(observers=[writer])`` or ``engine.bus.subscribe(writer)``.
    """

    def __init__(self, target: str | os.PathLike[str] | IO[bytes]) -> None:
        if isinstance(target, str | os.PathLike):
            self._file: IO[bytes] = open(target, "wb", buffering=_BUFFER)  # noqa: SIM115
            owned = True
        else:
            if not callable(getattr(target, "write", None)):
                raise TypeError(f"target must be a path or a binary stream, got {target!r}")
            self._file = target
            owned = False
        self._write = self._file.write
        self._flush = self._file.flush
        self.num_written = 0
        # Runs at close(), at garbage collection or at interpreter exit, whichever is first;
        # it holds the file, not the writer, so it does not keep the writer alive.
        self._finalizer = weakref.finalize(self, _close, self._file, owned)

    def __call__(self, event: Event) -> None:
        """Append one event; at the end of a step, push the step's lines to the file."""
        self._write(encode_line(event))
        self.num_written += 1
        if type(event) is StepFinished:
            self._flush()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has run."""
        return not self._finalizer.alive

    def flush(self) -> None:
        """Push buffered lines to the file."""
        self._flush()

    def close(self) -> None:
        """Flush, and close the file if this writer opened it (idempotent)."""
        self._finalizer()

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
