"""What one ``schedule()`` call decided (vLLM's ``SchedulerOutput``)."""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from minivllm.core.block_pool import KVCacheBlock
from minivllm.request import Request


@attrs.frozen
class SchedulerOutput:
    """The requests and token counts to run in one step.

    ``num_computed_tokens`` of every scheduled request has already been advanced
    (as in vLLM), so a model runner computes positions
    ``[num_computed_tokens - n, num_computed_tokens)`` of each request, where
    ``n = num_scheduled_tokens[request_id]``. ``req_to_blocks`` is the KV cache
    manager's live map of block tables.
    """

    scheduled_new_reqs: list[Request]
    scheduled_resumed_reqs: list[Request]
    scheduled_running_reqs: list[Request]
    num_scheduled_tokens: dict[str, int]
    total_num_scheduled_tokens: int
    preempted_req_ids: set[str]
    finished_req_ids: set[str]
    req_to_blocks: Mapping[str, list[KVCacheBlock]]

    @property
    def scheduled_reqs(self) -> list[Request]:
        """Every scheduled request, in batch order (running, then resumed, then new)."""
        return self.scheduled_running_reqs + self.scheduled_resumed_reqs + self.scheduled_new_reqs
