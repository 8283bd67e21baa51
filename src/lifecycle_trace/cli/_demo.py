"""The demo: a small mixed workload that shows chunked prefill, a preemption and an abort."""

from __future__ import annotations

from collections.abc import Callable

from lifecycle_trace.eventlog import EventLog
from lifecycle_trace.fold.timeline import Timeline
from minivllm.engine.llm_engine import LLMEngine
from minivllm.request import RequestStatus
from minivllm.sampling_params import SamplingParams
from minivllm.workload import Workload, WorkloadRequest, run_workload

DEMO_ENGINE = {
    "max_num_seqs": 4,
    "max_num_batched_tokens": 32,
    "block_size": 8,
    "num_gpu_blocks": 11,
    "max_model_len": 80,
}


def _request(rid: str, prompt_len: int, max_tokens: int, **kw: int) -> WorkloadRequest:
    token = 100 + int(rid[1:])
    params = SamplingParams(max_tokens=max_tokens, ignore_eos=True)
    return WorkloadRequest(rid, [token] * prompt_len, params, **kw)


def demo_workload() -> Workload:
    """Five requests on a tight engine: a 32-token step budget and 10 KV blocks of 8 tokens."""
    return Workload(
        DEMO_ENGINE,
        [
            _request("r0", 12, 16),
            _request("r1", 50, 6),
            _request("r2", 6, 20, arrival=1),
            _request("r3", 9, 8, arrival=3),
            _request("r4", 20, 10, arrival=4, abort=9),
        ],
    )


def run_traced(workload: Workload, observers: tuple[Callable[..., None], ...] = ()) -> EventLog:
    """Run ``workload`` to the end and return its event log."""
    log = EventLog()

    def attach(engine: LLMEngine) -> None:
        engine.bus.subscribe(log)
        for observer in observers:
            engine.bus.subscribe(observer)

    for _ in run_workload(workload, on_engine=attach):
        pass
    return log


def intro(workload: Workload) -> str:
    """What the demo runs, in words."""
    kw = workload.engine_kwargs
    usable = kw["num_gpu_blocks"] - 1
    lines = [
        "lifecycle-trace demo: five requests through minivllm's scheduler (vLLM 0.22.1 rules)",
        f"engine: at most {kw['max_num_seqs']} running requests, {kw['max_num_batched_tokens']} "
        f"tokens per step, {usable} KV blocks of {kw['block_size']} tokens "
        f"({usable * kw['block_size']} token slots)",
    ]
    for r in workload.requests:
        extra = f", arrives before step {r.arrival}" if r.arrival else ""
        if r.abort is not None:
            extra += f", aborted before step {r.abort}"
        lines.append(
            f"  {r.id}: prompt {len(r.prompt_token_ids)} tokens, "
            f"max_tokens {r.sampling_params.max_tokens}{extra}"
        )
    return "\n".join(lines)


def narrate(t: Timeline) -> str:
    """One sentence per notable thing in a request's life."""
    parts = [f"{t.request_id}:"]
    first = t.first_running_step
    if first is None:
        parts.append("never scheduled;")
    elif first > t.added_step:
        parts.append(f"waited {first - t.added_step} step(s) for room, scheduled at step {first};")
    else:
        parts.append(f"scheduled at once (step {first});")
    chunks = t.chunk_sizes
    if len(chunks) > 1:
        parts.append(f"prompt prefilled in chunks {'+'.join(map(str, chunks))};")
    if t.prefill_step is not None:
        parts.append(f"first token at step {t.prefill_step};")
    preempted = [s for s in t.segments if s.status == RequestStatus.PREEMPTED]
    for seg in preempted:
        parts.append(
            f"preempted at step {seg.first_step} (KV cache full): its blocks were freed and "
            f"num_computed_tokens reset to 0, it resumed at step {seg.last_step + 1} by "
            f"recomputing prompt and outputs;"
        )
    if t.finish_status is None:
        parts.append("still live when the log ended.")
    elif t.finish_status == RequestStatus.FINISHED_ABORTED:
        parts.append(f"aborted before step {t.last_step} after {t.num_output_tokens} token(s).")
    else:
        parts.append(
            f"finished at step {t.last_step} ({t.finish_reason}) with {t.num_output_tokens} tokens."
        )
    return " ".join(parts)
