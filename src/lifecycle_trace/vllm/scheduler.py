"""vLLM 0.22.1 schedulers that write the project's event log: name one as the scheduler class.

``TracingScheduler`` (synchronous) and ``AsyncTracingScheduler`` (async
scheduling) are vLLM's ``Scheduler`` and ``AsyncScheduler`` with every method
that moves a request wrapped: they behave exactly as vLLM's, and emit
minivllm's events through a :class:`~minivllm.bus.EventBus`. Give vLLM the
class (``SchedulerConfig.scheduler_cls`` or ``--scheduler-cls
lifecycle_trace.vllm.TracingScheduler``) and the log path in
``LIFECYCLE_TRACE_VLLM_LOG``; it is written from inside vLLM's engine-core
process. :func:`attach` traces a scheduler object that already exists.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from collections.abc import Iterable
from typing import Any

from vllm.v1.core.sched.async_scheduler import AsyncScheduler
from vllm.v1.core.sched.scheduler import Scheduler

from lifecycle_trace.log.sink import JsonlWriter
from lifecycle_trace.vllm._tracer import SchedulerTracer
from minivllm.bus import EventBus
from minivllm.bus import Handler

__all__ = ["LOG_ENV", "AsyncTracingScheduler", "TracingScheduler", "attach", "tracer_of"]

LOG_ENV = "LIFECYCLE_TRACE_VLLM_LOG"
"""Where a tracing scheduler built by vLLM writes its log; ``{pid}`` becomes the process id."""

_SchedulerClass = type[Any]


class _TracingMethods:
    """The methods a traced scheduler class overrides (copied into it; never a base class).

    Each calls the vLLM class it wraps (``_lifecycle_base``) explicitly rather
    than through ``super()``: a traced class must have the wrapped class as its
    only base, so :func:`attach` can retype an existing scheduler object.
    """

    _lifecycle_base: _SchedulerClass
    _lifecycle_tracer: SchedulerTracer | None = None
    _lifecycle_sink: JsonlWriter | None = None

    def _trace(self, hook: Callable[[SchedulerTracer], None]) -> None:
        tracer = self._lifecycle_tracer
        if tracer is not None:
            tracer.run_hook(hook, tracer)

    def has_requests(self) -> bool:
        """vLLM's ``has_requests``; the engine asking it closes a step that only scheduled."""
        self._trace(SchedulerTracer.on_has_requests)
        return self._lifecycle_base.has_requests(self)  # type: ignore[no-any-return]

    def schedule(self) -> Any:
        """vLLM's ``schedule``, opening a step."""
        self._trace(SchedulerTracer.before_schedule)
        output = self._lifecycle_base.schedule(self)
        self._trace(lambda t: t.after_schedule(output))
        return output

    def _update_after_schedule(self, scheduler_output: Any) -> None:
        self._trace(SchedulerTracer.before_update_after_schedule)
        self._lifecycle_base._update_after_schedule(self, scheduler_output)
        self._trace(lambda t: t.after_update_after_schedule(scheduler_output))

    def _preempt_request(self, request: Any, timestamp: float) -> None:
        self._trace(lambda t: t.before_preempt(request))
        self._lifecycle_base._preempt_request(self, request, timestamp)
        self._trace(lambda t: t.after_preempt(request))

    def update_from_output(self, scheduler_output: Any, model_runner_output: Any) -> Any:
        """vLLM's ``update_from_output``, closing the step."""
        self._trace(SchedulerTracer.before_update)
        outputs = self._lifecycle_base.update_from_output(
            self, scheduler_output, model_runner_output
        )
        self._trace(lambda t: t.after_update(scheduler_output))
        return outputs

    def _update_request_with_output(self, request: Any, new_token_ids: list[int]) -> Any:
        result = self._lifecycle_base._update_request_with_output(self, request, new_token_ids)
        self._trace(lambda t: t.after_tokens(request))
        return result

    def _free_request(self, request: Any, delay_free_blocks: bool = False) -> Any:
        self._trace(lambda t: t.before_free(request))
        result = self._lifecycle_base._free_request(self, request, delay_free_blocks)
        self._trace(lambda t: t.after_free(request))
        return result

    def add_request(self, request: Any) -> None:
        """vLLM's ``add_request``, emitting RequestAdded for a new request."""
        is_new = request.request_id not in self.requests  # type: ignore[attr-defined]
        self._lifecycle_base.add_request(self, request)
        self._trace(lambda t: t.after_add(request, is_new))

    def shutdown(self) -> None:
        """vLLM's ``shutdown``; ends the open step and closes the log."""
        self._trace(SchedulerTracer.close)
        if self._lifecycle_sink is not None:
            self._lifecycle_sink.close()
        self._lifecycle_base.shutdown(self)


_METHODS = {
    name: value
    for name, value in vars(_TracingMethods).items()
    if not name.startswith("__") or name == "__annotations__"
}
_METHODS.pop("__annotations__", None)
_TRACED: dict[_SchedulerClass, _SchedulerClass] = {}


def _traced_class(cls: _SchedulerClass) -> _SchedulerClass:
    """``cls`` with the tracing methods: its only base is ``cls`` (cached per class)."""
    traced = _TRACED.get(cls)
    if traced is None:
        namespace = {**_METHODS, "_lifecycle_base": cls, "__module__": __name__}
        namespace["__doc__"] = f"vLLM's {cls.__name__}, emitting the project's lifecycle events."
        traced = type(f"Traced{cls.__name__}", (cls,), namespace)
        _TRACED[cls] = traced
    return traced


def _is_traced(scheduler: Any) -> bool:
    return getattr(type(scheduler), "_lifecycle_base", None) is not None


def _log_from_env(scheduler: Any) -> None:
    path = os.environ.get(LOG_ENV)
    if not path:
        raise ValueError(
            f"{type(scheduler).__name__} writes its event log to the path in {LOG_ENV}, "
            f"which is not set"
        )
    sink = JsonlWriter(path.replace("{pid}", str(os.getpid())))
    scheduler._lifecycle_sink = sink
    attach(scheduler, [sink])


class TracingScheduler(_traced_class(Scheduler)):  # type: ignore[misc]
    """vLLM's ``Scheduler``, writing the event log to the path in ``LIFECYCLE_TRACE_VLLM_LOG``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _log_from_env(self)


class AsyncTracingScheduler(_traced_class(AsyncScheduler)):  # type: ignore[misc]
    """vLLM's ``AsyncScheduler``, writing the event log to ``LIFECYCLE_TRACE_VLLM_LOG``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _log_from_env(self)


def attach(
    scheduler: Any,
    observers: Iterable[Handler] = (),
    *,
    engine_id: str = "vllm",
    clock: Callable[[], int] = time.monotonic_ns,
    strict: bool = False,
) -> EventBus:
    """Trace an already built vLLM scheduler (any ``Scheduler`` subclass); return its event bus.

    Call it before the scheduler sees its first request. ``observers`` are
    subscribed to every event (``JsonlWriter(path)`` writes the log);
    ``clock`` stamps events in nanoseconds; with ``strict`` a failing hook
    raises instead of switching tracing off.
    """
    if not isinstance(scheduler, Scheduler):
        raise TypeError(f"scheduler must be a vLLM Scheduler, got {type(scheduler).__name__}")
    if _is_traced(scheduler) and tracer_of(scheduler) is not None:
        raise ValueError("this scheduler is already traced")
    if scheduler.requests:
        raise ValueError(
            f"attach the tracer before the first request: the scheduler already holds "
            f"{len(scheduler.requests)} request(s)"
        )
    if not _is_traced(scheduler):
        scheduler.__class__ = _traced_class(type(scheduler))
    bus = EventBus(clock=clock, raise_errors=strict)
    for observer in observers:
        bus.subscribe(observer)
    tracer = SchedulerTracer(scheduler, bus, engine_id=engine_id, strict=strict)
    tracer.install_kv_hooks()
    scheduler._lifecycle_tracer = tracer
    return bus


def tracer_of(scheduler: Any) -> SchedulerTracer | None:
    """The tracer of a traced scheduler (None if it is not traced or tracing was switched off)."""
    tracer: SchedulerTracer | None = getattr(scheduler, "_lifecycle_tracer", None)
    return tracer if tracer is not None and tracer.active else None
