"""Lab 01 under async scheduling: the same trace, shifted by the batch in flight.

Each step schedules a batch and processes the one scheduled a step earlier.
For one prompt of P tokens and ``max_tokens`` M: the prefill is scheduled in
step 0 (``num_computed_tokens == P``) but its token lands in step 1; between
steps a decoding request has ``num_computed_tokens == num_tokens`` (one
placeholder in flight); the engine does not schedule past ``max_tokens``, so
the last step only processes, and the trace has M + 1 records.
"""

from __future__ import annotations

import pytest

from lifecycle_trace.lab import Event
from lifecycle_trace.lab import decode_growth
from lifecycle_trace.lab import first_event
from lifecycle_trace.lab import first_token_step
from lifecycle_trace.lab import is_monotonic
from lifecycle_trace.lab import prefill_step
from lifecycle_trace.lab import status_sequence
from lifecycle_trace.lab import trace_request
from minivllm.sampling_params import SamplingParams
from minivllm.tokenizer import ByteTokenizer

PROMPT = "The KV cache is paged."
P = len(ByteTokenizer().encode(PROMPT))
ASYNC = {"async_scheduling": True}


@pytest.mark.parametrize("max_tokens", [1, 2, 8, 24])
def test_trace_shape(max_tokens: int) -> None:
    trace = trace_request(ASYNC, PROMPT, SamplingParams(max_tokens=max_tokens))

    assert len(trace) == max_tokens + 1  # the last step only processes the last batch
    assert first_event(trace) == Event("0", "RUNNING", P, P, 1)
    assert status_sequence(trace) == ["RUNNING", "FINISHED_LENGTH_CAPPED"]
    assert is_monotonic(trace)
    assert prefill_step(trace, P) == 0
    assert first_token_step(trace, P) == 1
    assert decode_growth(trace, P) == [1] * (max_tokens - 1) + [0]
    # Between steps num_computed_tokens == num_tokens + num_output_placeholders - 1.
    assert all(e.num_computed_tokens == e.num_tokens + e.num_output_placeholders - 1 for e in trace)
    assert [e.num_output_placeholders for e in trace] == [1] * max_tokens + [0]
    last = trace[-1]
    assert (last.num_computed_tokens, last.num_tokens) == (P + max_tokens - 1, P + max_tokens)


def test_a_prefill_chunk_gets_no_placeholder() -> None:
    kwargs = {**ASYNC, "max_num_batched_tokens": 8, "max_num_seqs": 4}
    trace = trace_request(kwargs, PROMPT, SamplingParams(max_tokens=3))
    # 22 tokens in chunks of 8, 8, 6: only the last chunk samples, one step later.
    assert [(e.num_computed_tokens, e.num_tokens, e.num_output_placeholders) for e in trace] == [
        (8, P, 0),
        (16, P, 0),
        (P, P, 1),
        (P + 1, P + 1, 1),
        (P + 2, P + 2, 1),
        (P + 2, P + 3, 0),
    ]
    assert (prefill_step(trace, P), first_token_step(trace, P)) == (2, 3)


def test_a_stop_leaves_the_batch_in_flight_unread() -> None:
    # The default model echoes the prompt, so a prompt ending in EOS samples EOS as its 3rd token.
    eos = ByteTokenizer.eos_token_id
    trace = trace_request(ASYNC, [65, 66, eos], SamplingParams(max_tokens=10))
    assert status_sequence(trace) == ["RUNNING", "FINISHED_STOPPED"]
    # EOS lands in step 3, when the batch scheduled in step 3 is already computing a 4th token.
    assert trace[-1] == Event("0", "FINISHED_STOPPED", 6, 6, 1)
    assert len(trace) == 4


def test_synchronous_records_have_no_placeholders() -> None:
    trace = trace_request({}, PROMPT, SamplingParams(max_tokens=4))
    assert {e.num_output_placeholders for e in trace} == {0}
    assert first_token_step(trace, P) == prefill_step(trace, P) == 0
