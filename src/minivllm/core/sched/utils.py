"""Stop rules (vLLM's ``core/sched/utils.py``)."""

from __future__ import annotations

from minivllm.request import Request, RequestStatus


def check_stop(request: Request, max_model_len: int) -> bool:
    """Apply vLLM's stop rules to the last sampled token; set the finished status if one hits.

    Order matters: ``min_tokens`` first (except at ``max_model_len``), then EOS, then stop
    token ids, then length.
    """
    params = request.sampling_params
    num_output_tokens = len(request._output_token_ids)
    if num_output_tokens < params.min_tokens:
        # At max_model_len no further token can be scheduled, so min_tokens
        # cannot hold the request: vLLM 0.22.1 returns here and the request
        # hangs in `running` forever; minivllm caps it instead.
        if len(request._all_token_ids) >= max_model_len:
            request.status = RequestStatus.FINISHED_LENGTH_CAPPED
            return True
        return False
    last_token_id = request._output_token_ids[-1]
    if last_token_id == request.eos_token_id and not params.ignore_eos:
        request.status = RequestStatus.FINISHED_STOPPED
        return True
    if params.stop_token_ids and last_token_id in params.stop_token_ids:
        request.status = RequestStatus.FINISHED_STOPPED
        request.stop_reason = last_token_id
        return True
    if len(request._all_token_ids) >= max_model_len or num_output_tokens >= request.max_tokens:
        request.status = RequestStatus.FINISHED_LENGTH_CAPPED
        return True
    return False
