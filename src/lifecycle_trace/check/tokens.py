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

from lifecycle_trace.check.decisions import Report
from minivllm.events import CounterUpdated
from minivllm.events import Event
from minivllm.events import RequestAdded
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
    """The text an incremental detokenizer shows: an incomplete last character held back."""
    end = len(token_ids)
    text = _decode(token_ids)
    while text.endswith("\ufffd") and end > 0:
        end -= 1
        text = _decode(token_ids[:end])
    return text


class _Sampling:
    __slots__ = ("added", "outputs", "pending")

    def __init__(self, added: RequestAdded) -> None:
        self.added = added
        self.outputs: list[int] = []
        self.pending: CounterUpdated | None = None
        """A sampled stop token whose stop the log has not shown yet."""


class TokenRules:
    """A bus handler that follows each request's sampled tokens and judges its stops."""

    def __init__(self, report: Report) -> None:
        self.report = report
        self.requests: dict[str, _Sampling] = {}
        self.judging = True

    def __call__(self, event: Event) -> None:
        """Judge one event."""
        if isinstance(event, CounterUpdated):
            if event.counter == "num_tokens":
                self._sampled(event)
        elif isinstance(event, StatusChanged):
            if RequestStatus.is_finished(event.new_status):
                self._finished(event)
        elif isinstance(event, RequestAdded):
            self.requests[event.request_id] = _Sampling(event)
        elif isinstance(event, StepFinished):
            for s in self.requests.values():
                if s.pending is not None:
                    self._missed_stop(s, s.pending, event)

    def _sampled(self, e: CounterUpdated) -> None:
        s = self.requests.get(e.request_id)
        if s is None or not self.judging:
            return
        if e.token_id is None:
            self.judging = False  # an older log: no token ids to judge by
            return
        if s.pending is not None:
            self._missed_stop(s, s.pending, e)
        s.outputs.append(e.token_id)
        a = s.added
        if len(s.outputs) >= a.min_tokens and (
            (e.token_id == _EOS and not a.ignore_eos) or e.token_id in a.stop_token_ids
        ):
            s.pending = e

    def _missed_stop(self, s: _Sampling, sampled: CounterUpdated, now: Event) -> None:
        s.pending = None
        self.report(
            "stop_tokens",
            sampled.request_id,
            now,
            (sampled.seq, now.seq),
            f"sampled {sampled.token_id} as output {len(s.outputs)} (min_tokens "
            f"{s.added.min_tokens}) and did not stop",
        )

    def _finished(self, e: StatusChanged) -> None:
        s = self.requests.pop(e.request_id, None)
        if s is None or not self.judging:
            return
        pending, s.pending = s.pending, None
        stopped_here = e.new_status is _STOPPED
        if pending is not None and not stopped_here:
            self._missed_stop(s, pending, e)
            return
        if not stopped_here:
            return
        reason = e.stop_reason
        if isinstance(reason, str):
            self._stop_string(s, e, reason)
            return
        last = s.outputs[-1] if s.outputs else None
        want = _EOS if reason is None else reason
        if pending is None or last != want:
            self.report(
                "stop_tokens",
                e.request_id,
                e,
                (e.seq,),
                f"FINISHED_STOPPED with stop_reason {reason!r} after sampling {last!r} as "
                f"output {len(s.outputs)} (min_tokens {s.added.min_tokens})",
            )

    def _stop_string(self, s: _Sampling, e: StatusChanged, stop: str) -> None:
        outputs = s.outputs
        problem = None
        if len(outputs) <= s.added.min_tokens:
            problem = f"only {len(outputs)} outputs, min_tokens {s.added.min_tokens}"
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
