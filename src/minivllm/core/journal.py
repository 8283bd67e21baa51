"""The undo journal that makes one engine step all or nothing.

While a step runs, the scheduler, the KV cache manager and the block pool note
how to undo each change they make to shared structures (queues, block tables,
the free queue, the prefix-cache map); the requests a step may touch are saved
whole before it touches them. If anything fails inside the step,
:meth:`Journal.undo` plays the notes back in reverse and puts every saved
request back, so the engine is exactly as it was before the step.

Outside a step the journal is idle (``entries`` is None) and the components
note nothing: ``add_request`` and ``abort_request`` validate before they change
anything, and cannot half-fail.

Why notes and not a copy: a copy of the block pool's free queue costs a walk
over every free block in every step, and saving every running request's
counters would cost a sixth of a decode step; a note is one ``append`` in the
few places that change rarely, and one per step for the changes every request
gets. The notes are exact at every point where a call can raise. An
asynchronous interrupt (Ctrl-C) can land between a change and its note, so the
engine undoes an interrupted step only when the interrupt came from inside the
model runner, where nothing of the engine's is half-changed (see
:meth:`minivllm.engine.core.EngineCore.execute_model`).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import MutableMapping
from typing import Any

from minivllm.request import Request

__all__ = ["Journal"]

_REQUEST_STATE = operator.attrgetter(
    "status",
    "num_computed_tokens",
    "num_tokens",
    "num_output_placeholders",
    "num_cached_tokens",
    "is_prefill_chunk",
    "num_preemptions",
    "stop_reason",
    "max_tokens",
)
"""The fields of a request a step can change (its token lists follow ``num_tokens``)."""


def _restore_request(request: Request, state: tuple[Any, ...]) -> None:
    (
        request.status,
        request.num_computed_tokens,
        num_tokens,
        request.num_output_placeholders,
        request.num_cached_tokens,
        request.is_prefill_chunk,
        request.num_preemptions,
        request.stop_reason,
        request.max_tokens,
    ) = state
    # Tokens are only ever appended: cutting the lists back undoes a step's.
    del request._all_token_ids[num_tokens:]
    del request._output_token_ids[num_tokens - request.num_prompt_tokens :]
    request.num_tokens = num_tokens


def _restore_requests(requests: list[Request], states: list[tuple[Any, ...]]) -> None:
    for request, state in zip(requests, states, strict=True):
        _restore_request(request, state)


def _cut(items: list[Any], length: int) -> None:
    del items[length:]


def _restore_mapping(mapping: MutableMapping[Any, Any], saved: dict[Any, Any]) -> None:
    mapping.clear()
    mapping.update(saved)


class Journal:
    """Undo notes for the step in progress; idle (``entries is None``) between steps.

    A note is a tuple ``(undo, *args)``; :meth:`undo` calls ``undo(*args)`` for
    each note, last first. Components write notes only while ``entries`` is
    a list, so they read it once per change: ``if (notes := j.entries) is not None``.
    """

    __slots__ = ("_copied", "entries")

    def __init__(self) -> None:
        self.entries: list[tuple[Any, ...]] | None = None
        self._copied: set[int] | None = None  # ids of the mappings saved this step

    @property
    def active(self) -> bool:
        """Whether a step is in progress (changes are being noted)."""
        return self.entries is not None

    def begin(self) -> None:
        """Start noting changes (at the start of a step)."""
        self.entries = []
        self._copied = None

    def commit(self) -> None:
        """Forget the notes: the step succeeded."""
        self.entries = None
        self._copied = None

    def note(self, undo: Callable[..., object], *args: Any) -> None:
        """Note how to undo a change: ``undo(*args)``."""
        if self.entries is not None:
            self.entries.append((undo, *args))

    def save_requests(self, requests: Iterable[Request]) -> None:
        """Save these requests' whole state before a change the per-step notes do not cover."""
        if self.entries is not None:
            saved = list(requests)
            self.entries.append((_restore_requests, saved, list(map(_REQUEST_STATE, saved))))

    def save_length(self, items: list[Any]) -> None:
        """Note a list's length before the step appends to it (undone by cutting it back)."""
        if self.entries is not None:
            self.entries.append((_cut, items, len(items)))

    def save_mapping(self, mapping: MutableMapping[Any, Any]) -> None:
        """Save a whole mapping, once per step, before its first change (keeps its order)."""
        if self.entries is None:
            return
        if self._copied is None:
            self._copied = set()
        elif id(mapping) in self._copied:
            return
        self._copied.add(id(mapping))
        self.entries.append((_restore_mapping, mapping, dict(mapping)))

    def undo(self) -> None:
        """Undo every noted change, last first; go idle."""
        entries = self.entries or []
        self.commit()
        for undo, *args in reversed(entries):
            undo(*args)
