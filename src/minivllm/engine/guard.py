"""One call at a time: the engine refuses a call made while another one is running.

``add_request``, ``abort_request`` and ``step`` change the engine and emit
events; a second such call while one is running would interleave two
sequences of changes (and of events). Two ways that happens, both refused
with :class:`EngineBusyError` before anything changes:

- an observer calls back into the engine from its handler (re-entrancy): the
  handler runs inside the call that emitted the event;
- another thread calls while one is inside (the engine is not thread-safe,
  as vLLM's ``LLMEngine`` is not).

Read-only methods (``has_unfinished_requests``, ``get_num_unfinished_requests``,
``has_work``) stay allowed everywhere.

An engine whose state can no longer be trusted (a step interrupted where it
cannot be undone exactly) refuses every call with :class:`EngineDeadError`,
as vLLM's engine does once its core died.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Concatenate
from typing import ParamSpec
from typing import Protocol
from typing import TypeVar

__all__ = ["CallGuard", "EngineBusyError", "EngineDeadError", "exclusive"]

_P = ParamSpec("_P")
_R = TypeVar("_R")


class EngineBusyError(RuntimeError):
    """An engine call made while another one was running (from an observer or another thread)."""


class EngineDeadError(RuntimeError):
    """The engine's state can no longer be trusted; make a new engine (vLLM's name)."""


class CallGuard:
    """A lock that knows who holds it, so a refusal can say what was running where.

    ``dead`` is set, with the reason, once the engine cannot go on.
    """

    __slots__ = ("_lock", "_owner", "dead")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owner: tuple[int, str] | None = None  # (thread ident, method)
        self.dead: str | None = None

    def enter(self, method: str) -> None:
        """Take the engine for ``method``, or raise why it cannot (busy, or dead)."""
        if self.dead is not None:
            raise EngineDeadError(f"LLMEngine.{method}() refused: {self.dead}; make a new engine")
        if not self._lock.acquire(False):
            raise EngineBusyError(self._refusal(method))
        self._owner = (threading.get_ident(), method)

    def exit(self) -> None:
        """Give the engine back."""
        self._owner = None
        self._lock.release()

    def _refusal(self, method: str) -> str:
        owner = self._owner
        if owner is None:  # the other call is just starting or ending
            return (
                f"LLMEngine.{method}() was called while another call was running; the engine "
                f"serves one call at a time"
            )
        ident, running = owner
        if ident == threading.get_ident():
            return (
                f"LLMEngine.{method}() was called while {running}() was running on the same "
                f"thread, from an observer's handler: observers must not call add_request, "
                f"abort_request or step; note what to do and do it after {running}() returns"
            )
        return (
            f"LLMEngine.{method}() was called from thread {threading.current_thread().name!r} "
            f"while thread {_thread_name(ident)!r} was inside {running}(): an engine is not "
            f"thread-safe; "
            f"use it from one thread, or hold a lock around every call"
        )


def _thread_name(ident: int) -> str:
    for thread in threading.enumerate():
        if thread.ident == ident:
            return thread.name
    return f"#{ident}"


class _Guarded(Protocol):
    _guard: CallGuard


_G = TypeVar("_G", bound=_Guarded)


def exclusive(method: Callable[Concatenate[_G, _P], _R]) -> Callable[Concatenate[_G, _P], _R]:
    """Make an engine method refuse to run while another exclusive method is running.

    Refusals name the public method (``_add_request`` is ``add_request``'s body).
    """
    name = method.__name__.lstrip("_")

    def guarded(self: _G, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        guard = self._guard
        guard.enter(name)
        try:
            return method(self, *args, **kwargs)
        finally:
            guard.exit()

    functools.update_wrapper(guarded, method)
    return guarded
