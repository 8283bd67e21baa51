"""Lab 01's definition of done: the shape of a traced request's lifecycle.

``trace_request`` runs the engine one step at a time and records every live
request after each step. For one prompt of P tokens and ``max_tokens`` M the
lab pins: the first record is RUNNING with ``num_computed_tokens == P``
(prefill done in step 0), the statuses go RUNNING...→FINISHED, and
``num_computed_tokens`` grows by exactly 1 per step (decode) until finish.
"""

from __future__ import annotations

import math

import pytest

from lifecycle_trace.lab import Event
from lifecycle_trace.lab import decode_growth
from lifecycle_trace.lab import first_event
from lifecycle_trace.lab import is_monotonic
from lifecycle_trace.lab import prefill_step
from lifecycle_trace.lab import status_sequence
from lifecycle_trace.lab import trace_request
from minivllm.sampling_params import SamplingParams
from minivllm.tokenizer import ByteTokenizer

PROMPT = "The KV cache is paged."
P = len(ByteTokenizer().encode(PROMPT))


@pytest.mark.parametrize("max_tokens", [1, 2, 8, 24])
def test_trace_shape(max_tokens: int) -> None:
    trace = trace_request({}, PROMPT, SamplingParams(max_tokens=max_tokens))

    assert all(isinstance(e, Event) for e in trace)
    assert len(trace) == max_tokens  # one record per step, the finishing step included
    first = first_event(trace)
    if max_tokens > 1:
        assert (first.status, first.num_computed_tokens, first.num_tokens) == ("RUNNING", P, P + 1)
    assert status_sequence(trace) == (["RUNNING"] if max_tokens > 1 else []) + [
        "FINISHED_LENGTH_CAPPED"
    ]
    assert is_monotonic(trace)
    assert prefill_step(trace, P) == 0
    assert decode_growth(trace, P) == [1] * (max_tokens - 1)
    last = trace[-1]
    assert (last.num_computed_tokens, last.num_tokens) == (P + max_tokens - 1, P + max_tokens)


def test_chunked_prefill_delays_the_first_token() -> None:
    budget = 8
    trace = trace_request(
        {"max_num_batched_tokens": budget, "max_num_seqs": 4}, PROMPT, SamplingParams(max_tokens=3)
    )
    chunks = math.ceil(P / budget)
    assert prefill_step(trace, P) == chunks - 1
    assert [e.num_computed_tokens for e in trace[:chunks]] == [
        min(budget * (i + 1), P) for i in range(chunks)
    ]
    assert all(e.num_tokens == P for e in trace[: chunks - 1])  # nothing sampled mid-prefill
    assert decode_growth(trace, P) == [1, 1]
    assert status_sequence(trace) == ["RUNNING", "FINISHED_LENGTH_CAPPED"]


def test_eos_finishes_as_stopped() -> None:
    # The default model echoes the prompt, so a prompt ending in EOS samples EOS as its 3rd token.
    eos = ByteTokenizer.eos_token_id
    trace = trace_request({}, [65, 66, eos], SamplingParams(max_tokens=10))
    assert status_sequence(trace) == ["RUNNING", "FINISHED_STOPPED"]
    assert trace[-1].num_tokens == 3 + 3


def test_helpers_need_a_request_id_for_several_requests() -> None:
    trace = [Event("a", "RUNNING", 4, 5), Event("b", "RUNNING", 2, 3)]
    with pytest.raises(ValueError, match="pass request_id"):
        status_sequence(trace)
    with pytest.raises(ValueError, match="'c' is not in the trace"):
        status_sequence(trace, "c")
    assert prefill_step(trace, 4, "a") == 0
    assert not is_monotonic([Event("a", "RUNNING", 4, 5), Event("a", "PREEMPTED", 0, 5)])
