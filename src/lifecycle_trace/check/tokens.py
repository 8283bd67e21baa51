"""Rules on sampled tokens and the stops they cause, from the token ids the events carry.

Every ``CounterUpdated`` of ``num_tokens`` names the token sampled, so the stop
rules can be checked from the log alone (:data:`TOKEN_RULES`):

- ``stop_tokens``: once a request has ``min_tokens`` outputs, sampling EOS
  (unless ``ignore_eos``) or one of its ``stop_token_ids`` finishes it in that
  update as ``FINISHED_STOPPED`` (the stop token as ``stop_reason``, None for
  EOS); and it finishes so only for such a token;
- ``stop_string``: a request stopped by a stop string has more than
  ``min_tokens`` outputs, and the string ends in the text its newest token
  completed (the text decoded as an incremental detokenizer shows it).

A log whose counters carry no token ids (an older schema) is not judged.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar

from lifecycle_trace.check.decisions import Report
from lifecycle_trace.fold.audit import AuditFold
from lifecycle_trace.fold.audit import AuditState
from minivllm.events import CounterUpdated
from minivllm.events import Event
from minivllm.events import StatusChanged
from minivllm.events import StepFinished
from minivllm.request import RequestStatus
from minivllm.tokenizer import ByteTokenizer

__all__ = ["TOKEN_RULES", "TokenRules"]

TOKEN_RULES: Mapping[str, str] = MappingProxyType(
    {
        "stop_tokens": "with min_tokens outputs, EOS (unless ignore_eos) or a stop token id "
        "finishes the request as FINISHED_STOPPED at once, and only such a token does",
        "stop_string": "a stop string stops a request only after min_tokens outputs, in the text "
        "its newest token completed",
    }
)
"""The sampled-token rules, by name."""

_STOPPED = RequestStatus.FINISHED_STOPPED
_EOS = ByteTokenizer.eos_token_id
_decode = ByteTokenizer().decode


def shown(token_ids: list[int]) -> str:
    """The text an incremental detokenizer shows: an incomplete last character held back.

    That is the decoding of the longest prefix that does not end in U+FFFD
    (written apart from the engine's own, which this checks).
    """
    for end in range(len(token_ids), 0, -1):
        text = _decode(token_ids[:end])
        if not text.endswith("\ufffd"):
            return text
    return ""


class TokenRules:
    """A bus handler that judges each request's sampled tokens and stops, from the fold.

    Call it with each event before ``fold`` takes it.
    """

    EVENT_TYPES: ClassVar[tuple[type[Event], ...]] = (CounterUpdated, StatusChanged, StepFinished)
    """The events it reads."""

    def __init__(self, report: Report, fold: AuditFold) -> None:
        self.report = report
        self.fold = fold
        self.judging = True
        # Sampled stop tokens whose stop the log has not shown yet (one at a time, at most,
        # per request): each with its request.
        self._pending: list[tuple[AuditState, CounterUpdated]] = []

    def __call__(self, event: Event) -> None:
        """Judge one event."""
        if isinstance(event, CounterUpdated):
            if event.counter == "num_tokens":
                self._sampled(event)
        elif isinstance(event, StatusChanged):
            if RequestStatus.is_finished(event.new_status):
                self._finished(event)
        elif isinstance(event, StepFinished):
            for t, sampled in self._pending:
                self._missed_stop(t, sampled, event)
            self._pending.clear()

    def _unfinished(self, e: CounterUpdated | StatusChanged) -> AuditState | None:
        t = self.fold.state(e.request_id)
        return t if t is not None and t.finish_status is None and self.judging else None

    def _take_pending(self, t: AuditState) -> CounterUpdated | None:
        for i, (pending, sampled) in enumerate(self._pending):
            if pending is t:
                del self._pending[i]
                return sampled
        return None

    def _sampled(self, e: CounterUpdated) -> None:
        t = self._unfinished(e)
        if t is None:
            return
        if e.token_id is None:
            self.judging = False  # an older log: no token ids to judge by
            return
        pending = self._take_pending(t)
        if pending is not None:
            self._missed_stop(t, pending, e)
        if len(t.output_token_ids) + 1 >= t.min_tokens and (
            (e.token_id == _EOS and not t.ignore_eos) or e.token_id in t.stop_token_ids
        ):
            self._pending.append((t, e))

    def _missed_stop(self, t: AuditState, sampled: CounterUpdated, now: Event) -> None:
        self.report(
            "stop_tokens",
            sampled.request_id,
            now,
            (sampled.seq, now.seq),
            f"sampled {sampled.token_id} as output {len(t.output_token_ids)} (min_tokens "
            f"{t.min_tokens}) and did not stop",
        )

    def _finished(self, e: StatusChanged) -> None:
        t = self._unfinished(e)
        if t is None:
            return
        pending = self._take_pending(t)
        stopped_here = e.new_status is _STOPPED
        if pending is not None and not stopped_here:
            self._missed_stop(t, pending, e)
            return
        if not stopped_here:
            return
        reason = e.stop_reason
        outputs = t.output_token_ids
        if isinstance(reason, str):
            self._stop_string(t, e, reason)
            return
        last = outputs[-1] if outputs else None
        want = _EOS if reason is None else reason
        if pending is None or last != want:
            self.report(
                "stop_tokens",
                e.request_id,
                e,
                (e.seq,),
                f"FINISHED_STOPPED with stop_reason {reason!r} after sampling {last!r} as "
                f"output {len(outputs)} (min_tokens {t.min_tokens})",
            )

    def _stop_string(self, t: AuditState, e: StatusChanged, stop: str) -> None:
        outputs = t.output_token_ids
        problem = None
        if len(outputs) <= t.min_tokens:
            problem = f"only {len(outputs)} outputs, min_tokens {t.min_tokens}"
        else:
            before, text = shown(outputs[:-1]), shown(outputs)
            added = len(text) - len(before)
            start = max(0, len(text) - added - len(stop) + 1)
            if added <= 0 or text.find(stop, start) == -1:
                problem = f"the newest token's text does not complete it in {text!r}"
        if problem is not None:
            self.report(
                "stop_string",
                e.request_id,
                e,
                (e.seq,),
                f"stopped by {stop!r} with {problem}",
            )
