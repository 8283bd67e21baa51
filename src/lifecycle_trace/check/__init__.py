"""The checker: a table of named rules, checked from events alone and reported from one place.

:data:`RULES` names every rule with what it requires. Four kinds:

- **event rules** (:mod:`~lifecycle_trace.check.invariants`, :data:`EVENT_RULES`):
  each event against the bounds of the scheduler (legal transitions,
  counters that add up, budgets, KV accounting, stop bounds);
- **decision rules** (:mod:`~lifecycle_trace.check.decisions`,
  :data:`DECISION_RULES`): what the scheduler chose, on the one fold's view
  of its queues (FCFS and priority order, admission stopping only for a
  shown reason, whole prompts with chunked prefill off, the full-sequence
  gate, ``num_cached_tokens``);
- **block rules** (:mod:`~lifecycle_trace.check.blocks`, :data:`BLOCK_RULES`):
  the block pool's LRU order and its prefix-cache hits, from block ids and hashes;
- **token rules** (:mod:`~lifecycle_trace.check.tokens`, :data:`TOKEN_RULES`):
  stops by EOS, stop token ids and stop strings, from the sampled token ids.

:class:`InvariantChecker` runs them all as one bus handler
(``engine.bus.subscribe(checker)``) or offline (:func:`check` over a stored
log). Every rule reads one fold of the log, an
:class:`~lifecycle_trace.fold.audit.AuditFold`: each event is checked against
the requests' state before it, then folded in; no rule keeps a record per
request of its own. Each finding is a :class:`Violation` naming the rule, the
request, the step and the sequence numbers of the events involved. It never
raises, so it is safe on a live engine. Cost: O(1) per event plus
O(running requests) at each ``StepFinished``; the fold keeps each live
request's sampled tokens and block ids.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from types import MappingProxyType

from lifecycle_trace.check.blocks import BLOCK_RULES
from lifecycle_trace.check.blocks import BlockRules
from lifecycle_trace.check.decisions import DECISION_RULES
from lifecycle_trace.check.decisions import DecisionRules
from lifecycle_trace.check.invariants import ASYNC_TRANSITIONS
from lifecycle_trace.check.invariants import EVENT_RULES
from lifecycle_trace.check.invariants import FINISHED_KEPT
from lifecycle_trace.check.invariants import LEGAL_TRANSITIONS
from lifecycle_trace.check.invariants import EventRules
from lifecycle_trace.check.report import Violation
from lifecycle_trace.check.report import format_violations
from lifecycle_trace.check.tokens import TOKEN_RULES
from lifecycle_trace.check.tokens import TokenRules
from minivllm.events import EVENT_TYPES
from minivllm.events import Event

__all__ = [
    "ASYNC_TRANSITIONS",
    "BLOCK_RULES",
    "DECISION_RULES",
    "EVENT_RULES",
    "FINISHED_KEPT",
    "INVARIANTS",
    "LEGAL_TRANSITIONS",
    "RULES",
    "TOKEN_RULES",
    "InvariantChecker",
    "Violation",
    "check",
    "format_violations",
]

RULES: Mapping[str, str] = MappingProxyType(
    {**EVENT_RULES, **DECISION_RULES, **BLOCK_RULES, **TOKEN_RULES}
)
"""Every rule the checker reports, by name, with what it requires."""

INVARIANTS = RULES
"""The former name of :data:`RULES`."""


class InvariantChecker(EventRules):
    """A bus handler that checks every event against every rule of :data:`RULES`.

    Subscribe it before the first request (``engine.bus.subscribe(checker)``)
    or feed it a stored log; read ``violations`` at any time and call
    :meth:`finish` once the stream is complete (the engine drained) for the
    end-of-stream checks. ``decisions=False`` leaves out the decision and block
    rules: for a slice of a log, whose scheduler and block pool also served
    requests the slice left out. ``ignore`` names rules not to report: those a
    scheduler changed on purpose.
    """

    def __init__(self, decisions: bool = True, ignore: Iterable[str] = ()) -> None:
        super().__init__()
        self.ignored = frozenset(ignore)
        unknown = self.ignored - RULES.keys()
        if unknown:
            raise ValueError(f"ignore names no rule: {sorted(unknown)}; the rules: {sorted(RULES)}")
        report = self._add
        tokens = TokenRules(report, self.fold)
        before: list[tuple[Callable[[Event], None], tuple[type[Event], ...]]] = [
            (tokens, TokenRules.EVENT_TYPES)
        ]
        after: list[tuple[Callable[[Event], None], tuple[type[Event], ...]]] = []
        if decisions:
            judge = DecisionRules(report, self.fold)
            blocks = BlockRules(report, self.fold)
            before += [(judge, DecisionRules.EVENT_TYPES), (blocks, BlockRules.EVENT_TYPES)]
            after.append((judge.after, DecisionRules.AFTER_EVENT_TYPES))
        # Each event type goes only to the rules that read it: nine events in ten
        # are counter updates, which the block rules and the step's end never see.
        self._before = _routes(before)
        self._after = _routes(after)

    def _report(
        self, invariant: str, request_id: str | None, step: int, seqs: tuple[int, ...], message: str
    ) -> None:
        if invariant not in self.ignored:
            super()._report(invariant, request_id, step, seqs, message)

    def __call__(self, event: Event) -> None:
        """Check one event against every kind of rule, then fold it in."""
        self.check_event(event)
        kind = type(event)
        for rule in self._before.get(kind, ()):
            rule(event)
        self.fold.feed(event)
        for rule in self._after.get(kind, ()):
            rule(event)


def _routes(
    rules: list[tuple[Callable[[Event], None], tuple[type[Event], ...]]],
) -> dict[type[Event], tuple[Callable[[Event], None], ...]]:
    """For each event type, the rules that read it, in order."""
    return {
        kind: tuple(rule for rule, kinds in rules if kind in kinds)
        for kind in EVENT_TYPES
        if any(kind in kinds for _, kinds in rules)
    }


def check(events: Iterable[Event], *, decisions: bool = True) -> list[Violation]:
    """Check a complete event stream (a drained engine's log) and return every violation.

    ``decisions=False`` checks the event rules only (for a slice of a log).
    """
    checker = InvariantChecker(decisions)
    for event in events:
        checker(event)
    return checker.finish()


class _CallablePackage(types.ModuleType):
    """This package, which calling runs :func:`check`.

    ``lifecycle_trace.check`` names this package (so ``import
    lifecycle_trace.check as c`` gives it), and code written when the name
    meant the function, ``from lifecycle_trace import check; check(log)``,
    still runs.
    """

    def __call__(self, events: Iterable[Event], *, decisions: bool = True) -> list[Violation]:
        """:func:`check`."""
        return check(events, decisions=decisions)


sys.modules[__name__].__class__ = _CallablePackage
