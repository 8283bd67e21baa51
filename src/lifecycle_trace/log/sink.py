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

import contextlib
import io
import os
import weakref
from typing import IO
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from minivllm.bus import Handler

from collections.abc import Mapping
from typing import Any
from typing import cast

from lifecycle_trace.log._codec import encode_serialised_lines
from minivllm.context import EndsOnExit
from minivllm.events import Event
from minivllm.events import StatusChanged
from minivllm.events import StepFinished
from minivllm.events import to_serialised

__all__ = ["JsonlWriter"]

_BUFFER = 1 << 16


def _close(file: IO[bytes], owned: bool, pending: list[Any]) -> None:
    """Write what is pending, flush ``file`` and close it if the writer opened it (idempotent).

    The file is closed even when writing fails (a full disk); the error is raised.
    """
    if file.closed:
        return
    try:
        if pending:
            file.write(encode_serialised_lines(pending))
            pending.clear()
        if not owned:
            file.flush()
    finally:
        if owned:
            file.close()


def _close_quietly(file: IO[bytes], owned: bool, pending: list[Any]) -> None:
    """:func:`_close` at garbage collection or exit, where an error has no one to go to."""
    with contextlib.suppress(OSError, ValueError):
        _close(file, owned, pending)


def _binary(target: Any) -> IO[bytes]:
    """``target`` as a binary stream: a text stream's buffer, or refused if it has none."""
    if not callable(getattr(target, "write", None)):
        raise TypeError(f"target must be a path or a binary stream, got {target!r}")
    if isinstance(target, io.TextIOBase):
        buffer = getattr(target, "buffer", None)
        if buffer is None:
            raise TypeError(
                f"target must be a path or a binary stream (JSON Lines are bytes), got the text "
                f"stream {type(target).__name__}: use io.BytesIO, or a file opened with 'wb'"
            )
        return cast(IO[bytes], buffer)
    try:
        target.write(b"")
    except TypeError:
        raise TypeError(
            f"target must be a path or a binary stream (JSON Lines are bytes), got "
            f"{type(target).__name__}, which does not take bytes"
        ) from None
    return cast(IO[bytes], target)


class JsonlWriter(EndsOnExit):
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
            self._file = _binary(target)  # a text stream's buffer (sys.stdout's), or refused
            owned = False
        self._write = self._file.write
        self._flush = self._file.flush
        self._pending: list[Any] = []  # the step in progress, in serialised form
        self.num_written = 0
        # Runs at close(), at garbage collection or at interpreter exit, whichever is first;
        # it holds the file and the pending events, not the writer, so it does not keep
        # the writer alive.
        self._finalizer = weakref.finalize(self, _close_quietly, self._file, owned, self._pending)
        self._owned = owned

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
        """Flush, and close the file if this writer opened it (idempotent).

        The file is closed even if the last write fails (a full disk); that
        error is raised.
        """
        if self.closed:
            return
        self._finalizer.detach()
        try:
            if not self._file.closed:
                self.flush()
        finally:
            if self._owned:
                self._file.close()

    def end_on_exit(self, exc: BaseException | None) -> None:
        """Leaving the ``with`` block closes; an error closing is raised unless one already is."""
        if exc is None:
            self.close()
        else:  # already failing: that error is the one to report
            with contextlib.suppress(OSError, ValueError):
                self.close()
