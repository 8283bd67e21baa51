"""Stop rules and list helpers (vLLM's ``core/sched/utils.py``)."""

from __future__ import annotations

import contextlib
from typing import TypeVar

from minivllm.request import Request
from minivllm.request import RequestStatus

_T = TypeVar("_T")


def remove_all(lst: list[_T], items_to_remove: set[_T]) -> list[_T]:
    """Remove all items from a list that are in the items_to_remove set.

    This method optimizes for the common case of removing a single item,
    falling back to list comprehension for multiple items.

    Note:
        For single item removal, this modifies the original list in-place
        and returns it. For multiple items, it creates and returns a new list.
        Callers should use the returned value.
    """
    if not items_to_remove:
        return lst

    if len(items_to_remove) == 1:
        # Fast path for single item removal (most common case)
        item = next(iter(items_to_remove))
        with contextlib.suppress(ValueError):
            lst.remove(item)
        return lst
    # For multiple items, use list comprehension
    return [item for item in lst if item not in items_to_remove]


def check_stop(request: Request, max_model_len: int) -> bool:
    """Apply vLLM's stop rules to the last sampled token; set the finished status if one hits.

    Order matters: ``min_tokens`` first (except at ``max_model_len``), then EOS, then stop
    token ids, then length.
    """
    sampling_params = request.sampling_params
    output_token_ids = request._output_token_ids
    num_output_tokens = len(output_token_ids)

    if num_output_tokens < sampling_params.min_tokens:
        # At max_model_len no further token can be scheduled, so min_tokens
        # cannot hold the request: vLLM 0.22.1 returns here and the request
        # hangs in `running` forever; minivllm caps it instead.
        if request.num_tokens >= max_model_len:
            request.status = RequestStatus.FINISHED_LENGTH_CAPPED
            return True
        return False

    last_token_id = output_token_ids[-1]
    if last_token_id == request.eos_token_id and not sampling_params.ignore_eos:
        request.status = RequestStatus.FINISHED_STOPPED
        return True

    stop_token_ids = sampling_params.stop_token_ids
    if stop_token_ids and last_token_id in stop_token_ids:
        request.status = RequestStatus.FINISHED_STOPPED
        request.stop_reason = last_token_id
        return True
    if request.num_tokens >= max_model_len or num_output_tokens >= request.max_tokens:
        request.status = RequestStatus.FINISHED_LENGTH_CAPPED
        return True

    return False
