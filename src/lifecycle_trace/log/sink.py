"""The streaming sink: a bus handler that writes the log to JSON Lines as the engine runs.

Memory stays flat however long the run: the events of the step in progress
wait in a list, and at the end of the step (a ``StepFinished``) msgspec
encodes them in one call, the lines are written and flushed to the file, and
the events are forgotten. A reader following the file sees whole steps, and a
crash loses at most the step in progress (a write cut short leaves a last line
the reader reports). :meth:`JsonlWriter.close`,
leaving the ``with`` block, the writer being garbage collected or the
interpreter exiting normally all flush and close the file.
"""

from __future__ import annotations

import os
import weakref
from types import TracebackType
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from minivllm.bus import Handler

from collections.abc import Mapping
from typing import Any

from lifecycle_trace.log._codec import encode_serialised_lines
from minivllm.events import Event, StatusChanged, StepFinished, to_serialised

__all__ = ["JsonlWriter"]

_BUFFER = 1 << 16


def _close(file: IO[bytes], owned: bool, pending: list[Any]) -> None:
    """Write what is pending, flush ``file`` and close it if the writer opened it (idempotent)."""
    if file.closed:
        return
    if pending:
        file.write(encode_serialised_lines(pending))
        pending.clear()
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
        self._pending: list[Any] = []  # the step in progress, in serialised form
        self.num_written = 0
        # Runs at close(), at garbage collection or at interpreter exit, whichever is first;
        # it holds the file and the pending events, not the writer, so it does not keep
        # the writer alive.
        self._finalizer = weakref.finalize(self, _close, self._file, owned, self._pending)

    def __call__(self, event: Event) -> None:
        """Take one event; at the end of a step, write the step's lines to the file."""
        self._pending.append(to_serialised(event))
        if type(event) is StepFinished:
            self.flush()

    def handlers_for(self, event_types: tuple[type[Event], ...]) -> Mapping[type[Event], Handler]:
        """The bus's routing: most events to one list append, the step's end to the write."""
        routes: dict[type[Event], Handler] = dict.fromkeys(event_types, self._pending.append)
        if StatusChanged in routes:
            routes[StatusChanged] = self._status_changed
        if StepFinished in routes:
            routes[StepFinished] = self
        return routes

    def _status_changed(self, event: StatusChanged) -> None:
        self._pending.append(to_serialised(event))

    def discard_from(self, seq: int) -> None:
        """Forget the pending events from ``seq`` on: the engine undid the step they belong to.

        The bus calls this when a step fails; the step was never written (a
        step is written when its ``StepFinished`` arrives, the last thing it
        emits), so the file keeps only the steps that happened.
        """
        pending = self._pending
        for i, event in enumerate(pending):
            if event.seq >= seq:
                del pending[i:]
                return

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has run."""
        return not self._finalizer.alive

    def flush(self) -> None:
        """Write the events taken so far and push them to the file."""
        pending = self._pending
        if pending and not self._file.closed:
            self._write(encode_serialised_lines(pending))
            self.num_written += len(pending)
            pending.clear()  # the same list: the bus holds its append
        self._flush()

    def close(self) -> None:
        """Flush, and close the file if this writer opened it (idempotent)."""
        if not self.closed:
            self.flush()
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
