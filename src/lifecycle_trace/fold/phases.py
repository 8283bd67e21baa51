"""vLLM's phases of a request: queued, prefill, decode and preempted, on the event clock.

vLLM measures a request in intervals (``vllm/v1/metrics/stats.py``): queued
until first scheduled, prefill until the first token, decode until the last.
:func:`request_phases` cuts a request's status intervals the same way: a
WAITING interval is ``queued``, a PREEMPTED one ``preempted``, and RUNNING
time is ``prefill`` before the first token and ``decode`` from it on. Time
spent recomputing after a preemption counts as decode, as in vLLM, whose
decode interval runs from the first token to the last. So vLLM's prefill
interval is the sum of the phases between the first ``prefill`` and the
first token (a preemption before the first token included), and its decode
interval that of the phases after the first token. A phase the first token
lands in (a preempted one, under async scheduling) is cut in two there.
"""

from __future__ import annotations

import attrs

from lifecycle_trace.fold.intervals import RequestIntervals
from minivllm.request import RequestStatus

__all__ = ["PHASE_NAMES", "Phase", "request_phases"]

PHASE_NAMES = ("queued", "prefill", "decode", "preempted")
"""Every phase name :func:`request_phases` gives."""


@attrs.frozen
class Phase:
    """One stretch of a request's life in one phase, ``[start_ns, end_ns)`` on the event clock."""

    name: str
    start_ns: int
    end_ns: int
    first_step: int
    last_step: int

    @property
    def duration_ns(self) -> int:
        """Length of the phase in nanoseconds."""
        return self.end_ns - self.start_ns


def request_phases(r: RequestIntervals) -> tuple[Phase, ...]:
    """The request's phases in time order; consecutive phases touch and never overlap."""
    out: list[Phase] = []
    token_ns, token_step = r.first_token_ns, r.first_token_step
    for iv in r.intervals:
        if iv.status == RequestStatus.WAITING:
            before, after = "queued", "queued"
        elif iv.status == RequestStatus.PREEMPTED:
            # Under async scheduling a batch in flight at the preemption may still
            # deliver the first token: the phase is cut there, so that vLLM's
            # prefill interval stays a sum of whole phases.
            before, after = "preempted", "preempted"
        else:
            before, after = "prefill", "decode"
        if token_ns is None or token_step is None or token_ns >= iv.end_ns:
            out.append(Phase(before, iv.start_ns, iv.end_ns, iv.first_step, iv.last_step))
        elif token_ns <= iv.start_ns:
            out.append(Phase(after, iv.start_ns, iv.end_ns, iv.first_step, iv.last_step))
        else:
            out.append(Phase(before, iv.start_ns, token_ns, iv.first_step, token_step))
            out.append(Phase(after, token_ns, iv.end_ns, token_step, iv.last_step))
    return tuple(out)
