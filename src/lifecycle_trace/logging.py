"""Structured JSON logging of every engine event with structlog.

:class:`JsonLogObserver` turns each event into one structlog call:
``logger.debug(event.tag, **event_to_dict(event))``, so a rendered line is the
stored log's line plus structlog's ``event``, ``level`` and ``timestamp``
(and :func:`lifecycle_trace.log.read_jsonl` reads it back).

Three ways to attach it, as ``VLLM_LOGGING_LEVEL=DEBUG`` does on vLLM:

- from code: ``engine.bus.subscribe(make_json_logger(sys.stderr))``;
- from the command line: ``lifecycle-trace run --json-log`` or
  ``minivllm generate --observer json-log``;
- from the environment: ``MINIVLLM_LOGGING_LEVEL=DEBUG`` loads the
  ``json-log`` entry point, which is :func:`make_json_logger` with no arguments.

Without a stream the lines go through the stdlib logger
``lifecycle_trace.events`` (at DEBUG), so the application's logging
configuration decides where they land and whether they are emitted at all; if
nothing is configured, a bare-message handler on stderr is added. With a stream
they are written directly (the fast path). To capture them in tests, pass a
global-config structlog logger and use ``structlog.testing.capture_logs``::

    observer = JsonLogObserver(structlog.get_logger())
    with capture_logs() as logs:
        ...  # run the engine with observer subscribed

Cost: a few microseconds per event on the fast path; see the benchmark.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Mapping
from typing import IO, TYPE_CHECKING, Any

import msgspec
import structlog

from lifecycle_trace.log._codec import encode_dict, encode_object_with
from minivllm.events import Event, StepFinished

if TYPE_CHECKING:
    from minivllm.bus import EventBus, Handler, Subscription
    from minivllm.engine.llm_engine import LLMEngine

__all__ = [
    "EVENT_LOGGER_NAME",
    "EVENT_OBJECT_KEY",
    "EventBoundLogger",
    "JsonLogObserver",
    "attach_json_logger",
    "expand_event",
    "json_processors",
    "make_json_logger",
    "render_json",
    "render_json_str",
]

EVENT_LOGGER_NAME = "lifecycle_trace.events"
"""The stdlib logger the event lines go through when no stream is given."""


EVENT_OBJECT_KEY = "lifecycle_event"
"""The key under which :class:`JsonLogObserver` hands the event object to the processors."""

_JSON = msgspec.json.Encoder()
# structlog's add_log_level names: every method is its level, but for these two.
_LEVEL_NAMES = {"warn": "warning", "exception": "error"}


def expand_event(logger: Any, method_name: str, event_dict: Any) -> Any:
    """structlog processor: replace the event object under ``EVENT_OBJECT_KEY`` by its fields."""
    event = event_dict.pop(EVENT_OBJECT_KEY, None)
    if event is not None:
        event_dict.update(encode_dict(event))
    return event_dict


def render_json(logger: Any, method_name: str, event_dict: Any) -> bytes:
    """structlog processor, the whole chain in one call: a JSON object as bytes.

    It holds the fields of the event object under ``EVENT_OBJECT_KEY`` (encoded
    by msgspec, as in the stored log), then the rest of ``event_dict``, the
    log ``level`` and a ``timestamp`` in wall-clock UNIX seconds: what
    ``expand_event``, ``add_log_level``, ``TimeStamper(fmt=None)`` and
    ``JSONRenderer`` give, for one processor call instead of four (structlog's
    performance guide: every processor is a function call per line).
    """
    event = event_dict.pop(EVENT_OBJECT_KEY, None)
    event_dict["level"] = _LEVEL_NAMES.get(method_name, method_name)
    event_dict["timestamp"] = time.time()
    rest = _JSON.encode(event_dict)
    if event is None:
        return rest
    return encode_object_with(event, b"," + rest[1:])


def render_json_str(logger: Any, method_name: str, event_dict: Any) -> str:
    """:func:`render_json` as text, for loggers that write strings (stdlib, text streams)."""
    return render_json(logger, method_name, event_dict).decode()


def json_processors(as_bytes: bool = False) -> list[Any]:
    """The structlog processor chain used here: one renderer, bytes or text.

    The timestamp is wall-clock UNIX seconds (a float): formatting an ISO
    string would cost more than everything else in the chain together.
    """
    return [render_json if as_bytes else render_json_str]


class _LineLogger:
    """A structlog logger writing each line to a stream; the observer flushes at step ends.

    structlog's own ``BytesLogger`` flushes every line, a system call per event.
    """

    __slots__ = ("_newline", "_write", "flush")

    def __init__(self, stream: IO[Any], newline: str | bytes) -> None:
        self._write = stream.write
        self._newline = newline
        self.flush = stream.flush

    def msg(self, message: Any) -> None:
        """Write one line."""
        self._write(message + self._newline)

    debug = info = warning = error = critical = exception = msg


class EventBoundLogger(structlog.BoundLoggerBase):
    """A structlog bound logger for one job, logging events at debug level, and nothing else.

    structlog's performance guide recommends a wrapper class of one's own over
    the generic one: ``debug`` here runs the processor chain and hands the
    line to the logger, without the generic wrapper's two extra calls.
    """

    def debug(self, event: str | None = None, **kw: Any) -> Any:
        """Log ``event`` with ``kw`` at debug level."""
        args, kwargs = self._process_event("debug", event, kw)
        return self._logger.debug(*args, **kwargs)


class JsonLogObserver:
    """A bus handler that logs each event with a structlog logger, at debug level.

    ``logger`` is any structlog bound logger. By default each call carries the
    event's fields as keyword arguments. With ``expand=True`` it carries the
    event object alone under ``EVENT_OBJECT_KEY``, and the logger's chain must
    start with :func:`expand_event` or be :func:`json_processors`: the same
    output for less work, since structlog then copies one key instead of a
    dozen. ``enabled``, if given, is asked before each event, so a disabled
    logger costs one call, not a rendering. ``flush``, if given, is called at
    the end of every engine step.
    """

    __slots__ = ("_debug", "_enabled", "_expand", "_flush", "logger")

    def __init__(
        self,
        logger: Any,
        enabled: Callable[[], bool] | None = None,
        *,
        expand: bool = False,
        flush: Callable[[], object] | None = None,
    ) -> None:
        if not callable(getattr(logger, "debug", None)):
            raise TypeError(f"logger must have a debug() method, got {logger!r}")
        self.logger = logger
        self._debug = logger.debug
        self._enabled = enabled
        self._expand = expand
        self._flush = flush

    def __call__(self, event: Event) -> None:
        """Log one event."""
        if self._enabled is not None and not self._enabled():
            return
        if self._expand:
            self._debug(event.tag, lifecycle_event=event)  # the keyword is EVENT_OBJECT_KEY
        else:
            self._debug(event.tag, **encode_dict(event))
        if self._flush is not None and type(event) is StepFinished:
            self._flush()

    def handlers_for(self, event_types: tuple[type[Event], ...]) -> Mapping[type[Event], Handler]:
        """The bus's routing: on the fast path, skip the checks ``__call__`` makes per event."""
        if self._enabled is not None or not self._expand:
            return dict.fromkeys(event_types, self)
        routes: dict[type[Event], Handler] = dict.fromkeys(event_types, self._log)
        if StepFinished in routes and self._flush is not None:
            routes[StepFinished] = self
        return routes

    def _log(self, event: Event) -> None:
        self._debug(event.tag, lifecycle_event=event)


def _stdlib_logger() -> logging.Logger:
    stdlib = logging.getLogger(EVENT_LOGGER_NAME)
    if stdlib.level == logging.NOTSET:
        # Attaching this observer is asking for debug lines; handlers keep their own levels.
        stdlib.setLevel(logging.DEBUG)
    if not stdlib.hasHandlers():
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        stdlib.addHandler(handler)
    return stdlib


def make_json_logger(stream: IO[str] | IO[bytes] | None = None) -> JsonLogObserver:
    """Build a JSON-lines event logger: to ``stream`` directly, or through stdlib logging.

    This is the ``json-log`` observer entry point (called with no arguments).
    """
    wrapper = structlog.make_filtering_bound_logger(logging.DEBUG)
    if stream is None:
        stdlib = _stdlib_logger()
        logger = structlog.wrap_logger(stdlib, processors=json_processors(), wrapper_class=wrapper)
        return JsonLogObserver(
            logger, enabled=lambda: stdlib.isEnabledFor(logging.DEBUG), expand=True
        )
    binary = _is_binary(stream)
    sink = _LineLogger(stream, b"\n" if binary else "\n")
    logger = EventBoundLogger(sink, processors=json_processors(as_bytes=binary), context={})
    return JsonLogObserver(logger, expand=True, flush=sink.flush)


def _is_binary(stream: IO[Any]) -> bool:
    mode = getattr(stream, "mode", None)
    if isinstance(mode, str):
        return "b" in mode
    return not hasattr(stream, "encoding")


def attach_json_logger(
    source: LLMEngine | EventBus, stream: IO[str] | IO[bytes] | None = None
) -> Subscription:
    """Subscribe a JSON event logger to an engine (or bus); unsubscribe to detach."""
    bus: Any = getattr(source, "bus", source)
    return bus.subscribe(make_json_logger(stream))  # type: ignore[no-any-return]
