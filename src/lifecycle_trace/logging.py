"""Structured JSON logging of engine events with structlog: status changes at INFO, else DEBUG.

Each event becomes one structlog call, ``logger.debug(event.tag, **fields)``
(``logger.info`` for a ``StatusChanged``), so a rendered line is the stored
log's line (its keys in the same order: ``type``, the header ``seq``, ``step``,
``ts_ns``, the event's fields, the schema version ``v``) followed by
structlog's ``event``, ``level`` and ``timestamp`` (wall-clock UNIX
seconds), and :func:`lifecycle_trace.log.read_jsonl` reads it back.

Three ways to attach it, as ``VLLM_LOGGING_LEVEL`` does on vLLM:

- from code: ``engine.bus.subscribe(make_json_logger(sys.stderr))``, or
  ``make_json_logger()`` to go through the application's logging;
- from the command line: ``lifecycle-trace run --json-log`` or
  ``minivllm generate --observer json-log``;
- from the environment: ``MINIVLLM_LOGGING_LEVEL=DEBUG`` (every event) or
  ``INFO`` (status changes) loads the ``json-log`` entry point, which is
  :func:`make_json_logger` with no arguments.

With a stream the lines are written to it directly (the fast path). Without
one, :class:`ApplicationJsonLogger` behaves as structlog's documentation asks
of a library: it renders through the application's structlog configuration
if there is one, else hands records to the application's stdlib handlers
(a structlog ``ProcessorFormatter`` there gets the fields, not a JSON
string), adds no handler and sets no level; only when nothing is configured
does it print the lines to stderr itself, and not even then with
``MINIVLLM_CONFIGURE_LOGGING=0``. To capture the events in a test, use
``structlog.testing.capture_logs`` around the run: it is a structlog
configuration, so the events go to it.

An observer names the stream its lines go to (``output_streams()``), so
``LLM.generate`` never draws its progress bar there.

Cost: a few microseconds per event on the fast path; see the benchmark.
"""

from __future__ import annotations

import functools
import logging
import sys
import time
from collections.abc import Callable
from collections.abc import Mapping
from typing import IO
from typing import TYPE_CHECKING
from typing import Any

import msgspec
import structlog
from structlog.stdlib import ProcessorFormatter

from lifecycle_trace.log._codec import encode_dict
from lifecycle_trace.log._codec import encode_with_members
from minivllm import envs
from minivllm.events import EngineConfigured
from minivllm.events import Event
from minivllm.events import RequestAdded
from minivllm.events import StatusChanged
from minivllm.events import StepFinished
from minivllm.events import StepStarted

if TYPE_CHECKING:
    from minivllm.bus import EventBus
    from minivllm.bus import Handler
    from minivllm.bus import Subscription
    from minivllm.engine.llm_engine import LLMEngine

__all__ = [
    "EVENT_LOGGER_NAME",
    "EVENT_OBJECT_KEY",
    "ApplicationJsonLogger",
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


def render_json(logger: Any, method_name: str, event_dict: Any) -> bytes | bytearray:
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
    if event is None:
        return _JSON.encode(event_dict)
    return encode_with_members(event, event_dict)


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
    """A structlog bound logger for one job, logging events at debug or info level, nothing else.

    structlog's performance guide recommends a wrapper class of one's own over
    the generic one. :meth:`log_event` is the call :class:`JsonLogObserver`
    routes every event to: structlog's ``_process_event`` for a chain whose
    last processor renders the line (as :func:`json_processors` do), without
    the keyword arguments of a ``debug`` call and their repacking. A processor
    raising ``structlog.DropEvent`` drops the line, as in structlog.
    """

    def debug(self, event: str, **kw: Any) -> Any:
        """Log ``event`` with ``kw`` at debug level."""
        return self._proxy("debug", event, kw)

    def info(self, event: str, **kw: Any) -> Any:
        """Log ``event`` with ``kw`` at info level."""
        return self._proxy("info", event, kw)

    def _proxy(self, method_name: str, event: str, kw: dict[str, Any]) -> Any:
        try:
            args, kwargs = self._process_event(method_name, event, kw)
        except structlog.DropEvent:
            return None
        return getattr(self._logger, method_name)(*args, **kwargs)

    def log_event(self, method_name: str, event: Event) -> Any:
        """``<method_name>(event.tag, lifecycle_event=event)``, in one call per event."""
        event_dict: Any = {**self._context, "event": event.tag, EVENT_OBJECT_KEY: event}
        logger = self._logger
        try:
            for processor in self._processors:
                event_dict = processor(logger, method_name, event_dict)
        except structlog.DropEvent:
            return None
        return getattr(logger, method_name)(event_dict)


class JsonLogObserver:
    """A bus handler logging each event with a structlog logger: status changes at INFO, else DEBUG.

    ``logger`` is any structlog bound logger. By default each call carries the
    event's fields as keyword arguments. With ``expand=True`` it carries the
    event object alone under ``EVENT_OBJECT_KEY``, and the logger's chain must
    start with :func:`expand_event` or be :func:`json_processors`: the same
    output for less work, since structlog then copies one key instead of a
    dozen. ``level`` (DEBUG by default) leaves out the events below it: at
    INFO only status changes are logged, and the bus does not even deliver
    the others. ``enabled``, if given, is asked before each event, so a
    disabled logger costs one call, not a rendering. ``flush``, if given, is
    called at the end of every engine step. ``stream`` names where the lines
    go, for :meth:`output_streams`.
    """

    __slots__ = (
        "_all",
        "_debug",
        "_enabled",
        "_expand",
        "_flush",
        "_info",
        "level",
        "logger",
        "stream",
    )

    def __init__(
        self,
        logger: Any,
        enabled: Callable[[], bool] | None = None,
        *,
        expand: bool = False,
        flush: Callable[[], object] | None = None,
        level: int = logging.DEBUG,
        stream: Any = None,
    ) -> None:
        if not callable(getattr(logger, "debug", None)):
            raise TypeError(f"logger must have a debug() method, got {logger!r}")
        self.logger = logger
        self._debug = logger.debug
        self._info = getattr(logger, "info", logger.debug)
        self._enabled = enabled
        self._expand = expand
        self._flush = flush
        self.level = level
        self._all = level <= logging.DEBUG
        self.stream = stream

    def __call__(self, event: Event) -> None:
        """Log one event (if its level reaches the observer's)."""
        if self._enabled is not None and not self._enabled():
            return
        if type(event) is StatusChanged:
            log = self._info
        elif self._all:
            log = self._debug
        else:
            log = None
        if log is not None:
            if self._expand:
                log(event.tag, lifecycle_event=event)  # the keyword is EVENT_OBJECT_KEY
            else:
                log(event.tag, **encode_dict(event))
        if self._flush is not None and type(event) is StepFinished:
            self._flush()

    def handlers_for(self, event_types: tuple[type[Event], ...]) -> Mapping[type[Event], Handler]:
        """The bus's routing: on the fast path, skip the checks ``__call__`` makes per event."""
        if self._enabled is not None or not self._expand or self.level > logging.INFO:
            return dict.fromkeys(event_types, self)
        routes: dict[type[Event], Handler] = {}
        for t in event_types:
            if t is StatusChanged:
                routes[t] = self._log_info  # a few per request: not worth a route of its own
            elif self.level <= logging.DEBUG:
                routes[t] = self._log_debug
        if StepFinished in event_types and self._flush is not None:
            routes[StepFinished] = self
        return routes

    def output_streams(self) -> list[Any]:
        """The stream the lines are written to, if known."""
        return [] if self.stream is None else [self.stream]

    def _log(self, event: Event) -> None:
        self._debug(event.tag, lifecycle_event=event)

    def _log_info(self, event: Event) -> None:
        self._info(event.tag, lifecycle_event=event)

    @property
    def _log_debug(self) -> Handler:
        """The handler of a debug-level event: the logger's ``log_event``, if it has one.

        A ``partial`` of it is a C callable: the bus calls the logger directly,
        one Python call per event fewer than through :meth:`_log`.
        """
        log_event = getattr(self.logger, "log_event", None)
        return self._log if log_event is None else functools.partial(log_event, "debug")


class ApplicationJsonLogger:
    """The ``json-log`` observer without a stream: events through the application's logging.

    As structlog's documentation asks of a library, it configures nothing
    and adds no handler. Each event goes, by the first of these that holds:

    1. through **structlog's global configuration**, if the application made
       one (``structlog.configure``, or ``capture_logs`` in a test): a call
       ``logger.<level>(event.tag, **fields)`` on ``structlog.get_logger(
       "lifecycle_trace.events")``, rendered wherever and however the
       application's processors say;
    2. through **stdlib logging**, if a handler would receive a record of the
       logger ``lifecycle_trace.events``: a handler whose formatter is
       structlog's ``ProcessorFormatter`` gets the event's fields as the
       record's event dict (so a JSON renderer there writes one object, the
       fields at its top level, never JSON inside JSON); other handlers get
       the JSON line as the message;
    3. as a **JSON line on stderr**, written directly, when nothing is
       configured and ``configure`` holds (``MINIVLLM_CONFIGURE_LOGGING=1``,
       the default); with ``configure`` false, nowhere.

    The route is looked at again before each step's first and last event and
    each added request's, so logging configured after the engine exists takes
    over from then on, and no line is ever written twice. Status changes are
    logged at INFO, every other event at DEBUG. Through the application's
    stdlib handlers its levels decide (the effective level of
    ``lifecycle_trace.events``: a parent at WARNING silences the events), and
    ``level`` only narrows them (not even that with ``configure`` false);
    otherwise ``level`` decides, unless a level was set on the library's
    loggers, and the application's structlog configuration filters further.
    Handler levels and filters always count.
    """

    __slots__ = (
        "_first",
        "_pf",
        "_pre_chain",
        "_route",
        "_stdlib",
        "_structlog",
        "_threshold",
        "configure",
        "level",
    )

    def __init__(self, level: int = logging.DEBUG, *, configure: bool = True) -> None:
        self.level = level
        self.configure = configure
        self._stdlib = logging.getLogger(EVENT_LOGGER_NAME)
        self._structlog: Any = None
        self._first = True
        self._refresh()

    # -- where the lines go -----------------------------------------------------------

    def _handlers(self) -> list[logging.Handler]:
        """The handlers stdlib logging would call for a record of the events logger."""
        found: list[logging.Handler] = []
        logger: logging.Logger | None = self._stdlib
        while logger is not None:
            found.extend(logger.handlers)
            if not logger.propagate:
                break
            logger = logger.parent
        return found

    def _compute_threshold(self) -> int:
        if self._route is _STDERR or self._route is _STRUCTLOG:
            # This observer's level, unless a level was set on the library's own loggers
            # (a parent at WARNING silences the events). Under the application's structlog
            # its own configuration filters further (stdlib levels too, if it logs there).
            logger: logging.Logger | None = self._stdlib
            explicit = logging.NOTSET
            while logger is not None and logger.name.startswith("lifecycle_trace"):
                if logger.level != logging.NOTSET:
                    explicit = logger.level
                    break
                logger = logger.parent
            return max(self.level, explicit)
        # The application's stdlib configuration decides; the observer's level only narrows it.
        effective = self._stdlib.getEffectiveLevel()
        return max(effective, self.level) if self.configure else effective

    def _refresh(self) -> None:
        self._pf = False
        self._pre_chain: list[Any] = []
        handlers = self._handlers()
        if structlog.is_configured():
            self._route = _STRUCTLOG
            self._structlog = structlog.get_logger(EVENT_LOGGER_NAME)
        elif handlers:
            self._route = _STDLIB
            formatters = [
                h.formatter for h in handlers if isinstance(h.formatter, ProcessorFormatter)
            ]
            self._pf = bool(formatters)
            self._pre_chain = list(formatters[0].foreign_pre_chain or ()) if formatters else []
        elif self.configure:
            self._route = _STDERR
        else:
            self._route = _NOWHERE
        self._threshold = self._compute_threshold()

    def output_streams(self) -> list[Any]:
        """The streams the lines go to now (stderr, or the stdlib handlers' streams)."""
        if self._first:
            self._refresh()
        if self._route is _STDERR:
            return [sys.stderr]
        streams = [getattr(h, "stream", None) for h in self._handlers()]
        if self._route is _STRUCTLOG:
            factory = structlog.get_config().get("logger_factory")
            streams.append(getattr(factory, "_file", None))
        return [s for s in streams if s is not None]

    # -- logging ------------------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        """Log one event at its level (INFO for status changes, DEBUG for the rest)."""
        kind = type(event)
        if kind in _LOOK_AGAIN or self._first:
            self._first = False
            self._refresh()
        level = logging.INFO if kind is StatusChanged else logging.DEBUG
        if level >= self._threshold:
            self._emit(event, level)

    def handlers_for(self, event_types: tuple[type[Event], ...]) -> Mapping[type[Event], Handler]:
        """The bus's routing: only status changes (and step ends) when no level could want more.

        With ``configure`` and a level above DEBUG, no debug event is ever
        logged unless the application lowers the threshold on its own loggers,
        which it may do later; so every type stays routed unless INFO is
        the floor everywhere.
        """
        return dict.fromkeys(event_types, self)

    def _emit(self, event: Event, level: int) -> None:
        method = "info" if level == logging.INFO else "debug"
        route = self._route
        if route is _STDERR:
            line = render_json_str(None, method, {EVENT_OBJECT_KEY: event, "event": event.tag})
            sys.stderr.write(line + "\n")
        elif route is _STDLIB:
            stdlib = self._stdlib
            if self._pf:
                fields: Any = {**encode_dict(event), "event": event.tag}
                # The entry comes from outside the application's structlog, so the
                # formatter's chain for such entries prepares it (level, time, ...).
                for processor in self._pre_chain:
                    fields = processor(stdlib, method, fields)
                record = stdlib.makeRecord(stdlib.name, level, "", 0, fields, (), None)
                # What structlog's wrap_for_formatter attaches for ProcessorFormatter.
                record._logger = stdlib
                record._name = method
            else:
                line = render_json_str(None, method, {EVENT_OBJECT_KEY: event, "event": event.tag})
                record = stdlib.makeRecord(stdlib.name, level, "", 0, line, (), None)
            stdlib.handle(record)
        elif route is _STRUCTLOG:
            getattr(self._structlog, method)(event.tag, **encode_dict(event))


# The events that begin something (the log, a request, a step): where the lines
# go is looked at again before each, so a configuration made between steps counts.
_LOOK_AGAIN = frozenset({EngineConfigured, RequestAdded, StepStarted, StepFinished})
_STRUCTLOG = "structlog"
_STDLIB = "stdlib"
_STDERR = "stderr"
_NOWHERE = "nowhere"


def make_json_logger(
    stream: IO[str] | IO[bytes] | None = None, *, level: int | str | None = None
) -> JsonLogObserver | ApplicationJsonLogger:
    """A JSON-lines event logger: to ``stream`` directly, or through the application's logging.

    ``level`` is ``"DEBUG"`` (every event) or ``"INFO"`` (status changes only),
    or a stdlib level number; by default ``MINIVLLM_LOGGING_LEVEL``, else DEBUG.
    Without a stream this is :class:`ApplicationJsonLogger`, which
    ``MINIVLLM_CONFIGURE_LOGGING`` configures; it is the ``json-log`` observer
    entry point (called with no arguments).
    """
    resolved = _level(level)
    if stream is None:
        return ApplicationJsonLogger(resolved, configure=envs.configure_logging())
    binary = _is_binary(stream)
    sink = _LineLogger(stream, b"\n" if binary else "\n")
    logger = EventBoundLogger(sink, processors=json_processors(as_bytes=binary), context={})
    return JsonLogObserver(logger, expand=True, flush=sink.flush, level=resolved, stream=stream)


def _level(level: int | str | None) -> int:
    if level is None:
        from_env = envs.logging_level()
        return logging.DEBUG if from_env is None else from_env
    if isinstance(level, str):
        try:
            return envs.LOGGING_LEVELS[level.strip().upper()]
        except KeyError:
            raise ValueError(
                f"level must be one of {', '.join(envs.LOGGING_LEVELS)}, got {level!r}"
            ) from None
    if isinstance(level, bool) or not isinstance(level, int):
        raise ValueError(f"level must be a level name or a stdlib level number, got {level!r}")
    return level


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
