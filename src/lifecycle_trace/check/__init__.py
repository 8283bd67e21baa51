"""The checker: a table of named rules, checked from events alone and reported from one place.

:data:`RULES` names every rule with what it requires. Two kinds:

- **event rules** (:mod:`~lifecycle_trace.check.invariants`, :data:`EVENT_RULES`):
  each event against the bounds of the scheduler (legal transitions,
  counters that add up, budgets, KV accounting, stop bounds);
- **decision rules** (:mod:`~lifecycle_trace.check.decisions`,
  :data:`DECISION_RULES`): what the scheduler chose, on the one fold's view
  of its queues (FCFS and priority order, admission stopping only for a
  shown reason, whole prompts with chunked prefill off, the full-sequence
  gate, ``num_cached_tokens``).

:class:`InvariantChecker` runs both as one bus handler
(``engine.bus.subscribe(checker)``) or as an offline fold (:func:`check` over
a stored log). Each finding is a :class:`Violation` naming the rule, the
request, the step and the sequence numbers of the events involved. It never
raises, so it is safe on a live engine. Cost: O(1) per event plus
O(running requests) at each ``StepFinished`` (the decision rules' fold adds
a constant).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from lifecycle_trace.check.decisions import DECISION_RULES, DecisionRules
from lifecycle_trace.check.invariants import (
    EVENT_RULES,
    FINISHED_KEPT,
    LEGAL_TRANSITIONS,
    EventRules,
)
from lifecycle_trace.check.report import Violation, format_violations
from minivllm.events import Event

__all__ = [
    "DECISION_RULES",
    "EVENT_RULES",
    "FINISHED_KEPT",
    "INVARIANTS",
    "LEGAL_TRANSITIONS",
    "RULES",
    "InvariantChecker",
    "Violation",
    "check",
    "format_violations",
]

RULES: Mapping[str, str] = MappingProxyType({**EVENT_RULES, **DECISION_RULES})
"""Every rule the checker reports, by name, with what it requires."""

INVARIANTS = RULES
"""The former name of :data:`RULES`."""


class InvariantChecker(EventRules):
    """A bus handler that checks every event against every rule of :data:`RULES`.

    Subscribe it before the first request (``engine.bus.subscribe(checker)``)
    or feed it a stored log; read ``violations`` at any time and call
    :meth:`finish` once the stream is complete (the engine drained) for the
    end-of-stream checks. ``decisions=False`` checks the event rules only: for
    a slice of a log, whose scheduler weighed requests the slice left out.
    """

    def __init__(self, decisions: bool = True) -> None:
        super().__init__()
        self._decisions = DecisionRules(self._add) if decisions else None

    def __call__(self, event: Event) -> None:
        """Check one event against the event rules, then the decision rules."""
        super().__call__(event)
        if self._decisions is not None:
            self._decisions(event)


def check(events: Iterable[Event], *, decisions: bool = True) -> list[Violation]:
    """Check a complete event stream (a drained engine's log) and return every violation.

    ``decisions=False`` checks the event rules only (for a slice of a log).
    """
    checker = InvariantChecker(decisions)
    for event in events:
        checker(event)
    return checker.finish()
