"""Stop rules that the scheduler's step loop depends on to make progress."""

from minivllm import LLMEngine
from minivllm import RequestStatus
from minivllm import SamplingParams


def test_min_tokens_beyond_max_model_len_is_length_capped() -> None:
    """A request that reaches max_model_len before min_tokens finishes instead of hanging.

    Once ``num_tokens == max_model_len`` the scheduler can never give the
    request another token, so if ``min_tokens`` kept it alive it would sit in
    ``running`` forever, holding its blocks and a batch slot.
    """
    engine = LLMEngine(
        max_model_len=16, block_size=8, num_gpu_blocks=4, max_num_seqs=4, max_num_batched_tokens=16
    )
    rid = engine.add_request([1] * 10, SamplingParams(max_tokens=20, min_tokens=20))
    request = engine.scheduler.requests[rid]
    for _ in range(50):
        if not engine.has_unfinished_requests():
            break
        engine.step()
    assert not engine.has_unfinished_requests()
    assert request.status == RequestStatus.FINISHED_LENGTH_CAPPED
    assert request.num_tokens == 16
    assert request.num_output_tokens == 6
