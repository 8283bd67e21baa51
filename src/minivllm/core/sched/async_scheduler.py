"""The scheduler under async scheduling (vLLM's ``AsyncScheduler``).

The engine schedules step N+1 while the model still runs step N, so a request
whose batch will sample a token holds an *output placeholder* for it from
schedule time until that batch's output is processed. ``num_computed_tokens``
therefore runs ahead of ``num_tokens``: a decoding request sits at
``num_computed_tokens == num_tokens + num_output_placeholders - 1``.
"""

from __future__ import annotations

from minivllm.core.sched.output import SchedulerOutput
from minivllm.core.sched.scheduler import Scheduler
from minivllm.request import Request
from minivllm.request import RequestStatus

# Looking an enum member up on its class costs about 150 ns in Python 3.11.
_RUNNING = RequestStatus.RUNNING


def _unplace(scheduler_output: SchedulerOutput) -> None:
    """Undo the output placeholders a batch gave its requests at schedule time."""
    for request in scheduler_output.scheduled_reqs:
        if not request.is_prefill_chunk:
            request.num_output_placeholders -= 1


class AsyncScheduler(Scheduler):
    """``Scheduler`` plus output placeholders."""

    def _update_after_schedule(self, scheduler_output: SchedulerOutput) -> None:
        super()._update_after_schedule(scheduler_output)
        # Undone before the advance is, while is_prefill_chunk still says who got one.
        if (notes := self.journal.entries) is not None:
            notes.append((_unplace, scheduler_output))
        for req_id in scheduler_output.num_scheduled_tokens:
            request = self.requests[req_id]
            if request.is_prefill_chunk:
                continue

            # The request will generate a new token in this scheduling step.
            request.num_output_placeholders += 1
            if self._on_counter.handlers:
                self._emit_counter(
                    request, "num_output_placeholders", request.num_output_placeholders - 1
                )

    def _update_request_with_output(
        self, request: Request, new_token_ids: list[int]
    ) -> tuple[list[int], bool]:
        status_before_update = request.status
        new_token_ids, stopped = super()._update_request_with_output(request, new_token_ids)

        # Update the number of output placeholders.
        request.num_output_placeholders -= len(new_token_ids)
        assert request.num_output_placeholders >= 0
        if self._on_counter.handlers:
            self._emit_counter(
                request,
                "num_output_placeholders",
                request.num_output_placeholders + len(new_token_ids),
            )

        # Cache the new tokens. Preempted requests should be skipped.
        if status_before_update == _RUNNING:
            self.kv_cache_manager.cache_blocks(
                request, request.num_computed_tokens - request.num_output_placeholders
            )
        return new_token_ids, stopped

    def _take_back_tokens(self, requests: list[Request]) -> None:
        super()._take_back_tokens(requests)
        for request in requests:
            request.num_output_placeholders += 1
