"""Drive an engine and the reference scheduler in lockstep and name every difference.

:class:`Lockstep` wraps an :class:`~minivllm.engine.llm_engine.LLMEngine` and a
:class:`~lifecycle_trace.testing.reference.ReferenceScheduler` built from the same
configuration and model. ``add_request``, ``abort_request`` and ``step`` go to
both; after each step :meth:`Lockstep.step` compares what the engine did (its
events, its returned outputs, its queues and request counters) with what the
reference did, and returns the differences as
:class:`~lifecycle_trace.check.Violation` s named by
:data:`~lifecycle_trace.testing.reference.REFERENCE_RULES`. If the engine raises, the
reference still takes its step and the report says what the reference decided
and where the engine's partial step already differed.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Sequence
from typing import Any

from lifecycle_trace.check import Violation
from lifecycle_trace.testing.reference import ReferenceScheduler
from lifecycle_trace.testing.reference import ReferenceStep
from minivllm.engine.llm_engine import LLMEngine
from minivllm.events import Event
from minivllm.events import StatusChanged
from minivllm.events import StepFinished
from minivllm.outputs import RequestOutput
from minivllm.request import RequestStatus
from minivllm.sampling_params import SamplingParams

__all__ = ["Lockstep", "StepObserver"]

_R = RequestStatus.RUNNING
_P = RequestStatus.PREEMPTED


class StepObserver:
    """A bus handler that keeps what the engine decided in the current step, from its events."""

    def __init__(self) -> None:
        self.admitted: list[str] = []
        self.preempted: list[str] = []
        self.finished: dict[str, tuple[RequestStatus, int | str | None]] = {}
        self.step_finished: StepFinished | None = None

    def reset(self) -> None:
        """Forget the last step."""
        self.admitted = []
        self.preempted = []
        self.finished = {}
        self.step_finished = None

    def __call__(self, event: Event) -> None:
        """Record one event."""
        if isinstance(event, StatusChanged):
            new = event.new_status
            if new is _R:
                self.admitted.append(event.request_id)
            elif new is _P:
                self.preempted.append(event.request_id)
            elif RequestStatus.is_finished(new):
                self.finished[event.request_id] = (new, event.stop_reason)
        elif isinstance(event, StepFinished):
            self.step_finished = event


def _finishes(finished: dict[str, tuple[RequestStatus, int | str | None]]) -> str:
    shown = (f"{rid}: {status.name} ({reason!r})" for rid, (status, reason) in finished.items())
    return "{" + ", ".join(shown) + "}"


def _show(mapping: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in mapping.items()) + "}"


class Lockstep:
    """An engine and a reference, fed the same inputs, compared after every step.

    ``reference`` defaults to a :class:`ReferenceScheduler` on the engine's
    configuration; ``sample`` is the engine's model as a function of the request
    (the ``sample_fn`` of its ``DummyModelRunner``).
    """

    def __init__(
        self,
        engine: LLMEngine,
        sample: Callable[[Any], int],
        reference: ReferenceScheduler | None = None,
    ) -> None:
        self.engine = engine
        self.reference = (
            reference if reference is not None else ReferenceScheduler(engine.config, sample)
        )
        self.observer = StepObserver()
        engine.bus.subscribe(self.observer)
        self.violations: list[Violation] = []

    def add_request(
        self,
        prompt: str | Sequence[int],
        sampling_params: SamplingParams,
        request_id: str | None = None,
        priority: int = 0,
    ) -> str:
        """Add the request to the engine, then the same tokens to the reference."""
        request_id = self.engine.add_request(
            prompt, sampling_params, request_id=request_id, priority=priority
        )
        tokens = self.engine.scheduler.requests[request_id].prompt_token_ids
        self.reference.add_request(request_id, tokens, sampling_params, priority=priority)
        return request_id

    def abort_request(self, request_ids: Iterable[str]) -> None:
        """Abort in both."""
        ids = list(request_ids)
        self.engine.abort_request(ids)
        self.reference.abort(ids)

    def has_unfinished_requests(self) -> bool:
        """Whether the engine has live requests."""
        return self.engine.has_unfinished_requests()

    def step(self) -> list[Violation]:
        """One step of each; the differences found (also kept in ``violations``)."""
        step = self.engine.step_index
        self.observer.reset()
        try:
            outputs = self.engine.step()
        except Exception as error:
            want = self.reference.step()
            found = self._decisions(step, want, partial=True)
            found.append(
                Violation(
                    "reference.step_completes",
                    None,
                    step,
                    (),
                    f"the engine raised {type(error).__name__}: {error}; the reference "
                    f"scheduled {_show(dict(want.scheduled))}, preempted "
                    f"{list(want.preempted)}, admitted {list(want.admitted)}",
                )
            )
            self.violations.extend(found)
            return found
        want = self.reference.step()
        found = self._decisions(step, want, partial=False)
        found += self._outputs(step, outputs, want)
        found += self._state(step)
        self.violations.extend(found)
        return found

    # -- comparisons ---------------------------------------------------------------

    def _decisions(self, step: int, want: ReferenceStep, partial: bool) -> list[Violation]:
        seen = self.observer
        out = []

        def differ(rule: str, have: object, expected: object, what: str) -> None:
            out.append(
                Violation(
                    rule, None, step, (), f"the engine {what} {have}, the reference {expected}"
                )
            )

        # Preemptions and admissions happen in order, so a crashed step is
        # compared on the prefix it got through.
        expected_preempted = list(want.preempted)
        if partial:
            expected_preempted = expected_preempted[: len(seen.preempted)]
        if seen.preempted != expected_preempted:
            differ("reference.preempted", seen.preempted, list(want.preempted), "preempted")
        expected_admitted = list(want.admitted)
        if partial:
            expected_admitted = expected_admitted[: len(seen.admitted)]
        if seen.admitted != expected_admitted:
            differ("reference.admitted", seen.admitted, list(want.admitted), "admitted")
        if partial:
            return out
        finished = seen.step_finished
        scheduled = dict(finished.num_scheduled_tokens) if finished is not None else {}
        if scheduled != dict(want.scheduled):
            differ(
                "reference.scheduled", _show(scheduled), _show(dict(want.scheduled)), "scheduled"
            )
        if seen.finished != dict(want.finished):
            differ(
                "reference.finished",
                _finishes(seen.finished),
                _finishes(dict(want.finished)),
                "finished",
            )
        free = finished.num_free_blocks if finished is not None else None
        if free != self.reference.kv.num_free_blocks:
            differ(
                "reference.kv_blocks",
                f"{free} free blocks",
                f"{self.reference.kv.num_free_blocks}",
                "left",
            )
        return out

    def _outputs(
        self, step: int, outputs: list[RequestOutput], want: ReferenceStep
    ) -> list[Violation]:
        have = []
        for o in outputs:
            for c in o.outputs:
                have.append(
                    (
                        o.request_id,
                        tuple(c.token_ids),
                        c.text,
                        o.finished,
                        c.finish_reason,
                        c.stop_reason,
                        o.num_cached_tokens,
                    )
                )
        expected = [
            (
                w.request_id,
                w.token_ids,
                w.text,
                w.finished,
                w.finish_reason,
                w.stop_reason,
                w.num_cached_tokens,
            )
            for w in want.outputs
        ]
        if have == expected:
            return []
        return [
            Violation(
                "reference.outputs",
                None,
                step,
                (),
                "the engine returned (id, tokens, text, finished, finish_reason, stop_reason, "
                f"cached) {have}, the reference {expected}",
            )
        ]

    def _state(self, step: int) -> list[Violation]:
        out = []
        scheduler = self.engine.scheduler
        reference = self.reference
        live = scheduler.requests
        for rid in sorted(set(live) | set(reference.requests)):
            have_request = live.get(rid)
            want_request = reference.requests.get(rid)
            have, want = _request_state(have_request), _request_state(want_request)
            if have != want:
                out.append(
                    Violation(
                        "reference.request_state",
                        rid,
                        step,
                        (),
                        "(status, computed, tokens, cached, preemptions): the engine has "
                        f"{have}, the reference {want}",
                    )
                )
        waiting = list(scheduler.waiting)
        expected_waiting = list(reference.waiting)
        if reference.config.policy == "priority":
            # A heap: compare in the order admission would take the requests.
            waiting = sorted(waiting)
            expected_waiting = sorted(expected_waiting, key=reference.admission_key)
        queues = (
            [r.request_id for r in scheduler.running],
            [r.request_id for r in waiting],
        )
        expected = (
            [r.request_id for r in reference.running],
            [r.request_id for r in expected_waiting],
        )
        if queues != expected:
            out.append(
                Violation(
                    "reference.queues",
                    None,
                    step,
                    (),
                    f"(running, waiting): the engine has {queues}, the reference {expected}",
                )
            )
        return out


def _request_state(request: Any) -> tuple[str, int, int, int, int] | None:
    """(status, computed, tokens, cached, preemptions) of an engine's or the reference's request."""
    if request is None:
        return None
    return (
        request.status.name,
        request.num_computed_tokens,
        request.num_tokens,
        request.num_cached_tokens,
        request.num_preemptions,
    )
