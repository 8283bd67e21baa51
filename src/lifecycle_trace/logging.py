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
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

import orjson
import structlog

from lifecycle_trace.log._codec import encode_dict
from minivllm.events import Event

if TYPE_CHECKING:
    from minivllm.bus import EventBus, Subscription
    from minivllm.engine.llm_engine import LLMEngine

__all__ = [
    "EVENT_LOGGER_NAME",
    "EVENT_OBJECT_KEY",
    "JsonLogObserver",
    "attach_json_logger",
    "expand_event",
    "json_processors",
    "make_json_logger",
]

EVENT_LOGGER_NAME = "lifecycle_trace.events"
"""The stdlib logger the event lines go through when no stream is given."""


def _dumps_str(obj: Any, **kwargs: Any) -> str:
    return orjson.dumps(obj).decode()


EVENT_OBJECT_KEY = "lifecycle_event"
"""The key under which :class:`JsonLogObserver` hands the event object to :func:`expand_event`."""


def expand_event(logger: Any, method_name: str, event_dict: Any) -> Any:
    """structlog processor: replace the event object under ``EVENT_OBJECT_KEY`` by its fields."""
    event = event_dict.pop(EVENT_OBJECT_KEY, None)
    if event is not None:
        event_dict.update(encode_dict(event))
    return event_dict


def json_processors(as_bytes: bool = False) -> list[Any]:
    """The structlog processor chain used here: log level, timestamp, orjson rendering.

    The timestamp is wall-clock UNIX seconds (a float): formatting an ISO
    string would cost more than everything else in the chain together.
    """
    serializer: Callable[..., Any] = orjson.dumps if as_bytes else _dumps_str
    return [
        expand_event,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt=None, utc=True),
        structlog.processors.JSONRenderer(serializer=serializer),
    ]


class JsonLogObserver:
    """A bus handler that logs each event with a structlog logger, at debug level.

    ``logger`` is any structlog bound logger. By default each call carries the
    event's fields as keyword arguments. With ``expand=True`` it carries the
    event object alone and the logger's chain must start with
    :func:`expand_event`, which adds the fields: the same output, a couple of
    microseconds cheaper, since structlog then copies one key instead of a
    dozen. ``enabled``, if given, is asked before each event, so a disabled
    logger costs one call, not a rendering.
    """

    __slots__ = ("_debug", "_enabled", "_expand", "logger")

    def __init__(
        self, logger: Any, enabled: Callable[[], bool] | None = None, *, expand: bool = False
    ) -> None:
        if not callable(getattr(logger, "debug", None)):
            raise TypeError(f"logger must have a debug() method, got {logger!r}")
        self.logger = logger
        self._debug = logger.debug
        self._enabled = enabled
        self._expand = expand

    def __call__(self, event: Event) -> None:
        """Log one event."""
        if self._enabled is not None and not self._enabled():
            return
        if self._expand:
            self._debug(event.tag, lifecycle_event=event)  # the keyword is EVENT_OBJECT_KEY
        else:
            self._debug(event.tag, **encode_dict(event))


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
    if _is_binary(stream):
        sink: Any = structlog.BytesLogger(stream)  # type: ignore[arg-type]
        processors = json_processors(as_bytes=True)
    else:
        sink = structlog.WriteLogger(stream)  # type: ignore[arg-type]
        processors = json_processors()
    return JsonLogObserver(
        structlog.wrap_logger(
            sink, processors=processors, wrapper_class=wrapper, cache_logger_on_first_use=True
        ),
        expand=True,
    )


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
