"""The demo: a small mixed workload that shows chunked prefill, a preemption and an abort.

``--async`` runs it under async scheduling (a batch in flight while the next
is scheduled); ``--policy priority`` gives the requests priorities, so a late
urgent request is admitted first and the preemption victim is the least
urgent running request rather than the last one.
"""

from __future__ import annotations

from collections.abc import Callable

from lifecycle_trace.fold.timeline import Timeline
from lifecycle_trace.log.eventlog import EventLog
from minivllm.engine.llm_engine import LLMEngine
from minivllm.request import RequestStatus
from minivllm.sampling_params import SamplingParams
from minivllm.workload import Workload
from minivllm.workload import WorkloadRequest
from minivllm.workload import run_workload

DEMO_ENGINE = {
    "max_num_seqs": 4,
    "max_num_batched_tokens": 32,
    "block_size": 8,
    "num_gpu_blocks": 11,
    "max_model_len": 80,
}


DEMO_PRIORITIES = {"r0": 1, "r1": 2, "r2": 1, "r3": 0, "r4": 0}
"""The requests' priorities under ``--policy priority`` (lower runs first)."""


def _request(
    rid: str, prompt_len: int, max_tokens: int, priority: bool, **kw: int
) -> WorkloadRequest:
    token = 100 + int(rid[1:])
    params = SamplingParams(max_tokens=max_tokens, ignore_eos=True)
    return WorkloadRequest(
        rid, [token] * prompt_len, params, priority=DEMO_PRIORITIES[rid] if priority else 0, **kw
    )


def demo_workload(async_scheduling: bool = False, policy: str = "fcfs") -> Workload:
    """Five requests on a tight engine: a 32-token step budget and 10 KV blocks of 8 tokens.

    Under ``policy="priority"`` the requests get :data:`DEMO_PRIORITIES`.
    """
    priority = policy == "priority"
    return Workload(
        {**DEMO_ENGINE, "async_scheduling": async_scheduling, "policy": policy},
        [
            _request("r0", 12, 16, priority),
            _request("r1", 50, 6, priority),
            _request("r2", 6, 20, priority, arrival=1),
            _request("r3", 9, 8, priority, arrival=3),
            _request("r4", 20, 10, priority, arrival=4, abort=9),
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


ASYNC_NOTE = """\
Async scheduling: each step schedules a batch and starts the model on it, then processes
the output of the batch scheduled one step earlier. A request's sampled token therefore
lands one step after the batch that computes it was scheduled; until then it is an output
placeholder (num_output_placeholders, the 'in flight' rows), already counted in
num_computed_tokens. Between steps a decoding request has
num_computed_tokens == num_tokens + num_output_placeholders - 1."""

PRIORITY_NOTE = """\
Priority policy: the waiting queue is ordered by (priority, arrival), lower first, and
when the KV cache is full the victim is the running request with the largest
(priority, arrival), not the last one admitted."""


def intro(workload: Workload) -> str:
    """What the demo runs, in words."""
    kw = workload.engine_kwargs
    usable = kw["num_gpu_blocks"] - 1
    modes = []
    if kw.get("async_scheduling"):
        modes.append("async scheduling")
    if kw.get("policy", "fcfs") == "priority":
        modes.append("priority policy")
    lines = [
        "lifecycle-trace demo: five requests through minivllm's scheduler (vLLM 0.22.1 rules)",
        f"engine: at most {kw['max_num_seqs']} running requests, {kw['max_num_batched_tokens']} "
        f"tokens per step, {usable} KV blocks of {kw['block_size']} tokens "
        f"({usable * kw['block_size']} token slots)" + "".join(f", {m}" for m in modes),
    ]
    priority = kw.get("policy", "fcfs") == "priority"
    for r in workload.requests:
        extra = f", priority {r.priority}" if priority else ""
        extra += f", arrives before step {r.arrival}" if r.arrival else ""
        if r.abort is not None:
            extra += f", aborted before step {r.abort}"
        lines.append(
            f"  {r.id}: prompt {len(r.prompt_token_ids)} tokens, "
            f"max_tokens {r.sampling_params.max_tokens}{extra}"
        )
    return "\n".join(lines)


def notes(workload: Workload) -> list[str]:
    """What the chosen modes change, one paragraph each (none for the default engine)."""
    kw = workload.engine_kwargs
    out = []
    if kw.get("async_scheduling"):
        out.append(ASYNC_NOTE)
    if kw.get("policy", "fcfs") == "priority":
        out.append(PRIORITY_NOTE)
    return out


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
    token = t.first_token_step
    if token is not None:
        if t.prefill_step is not None and token > t.prefill_step:
            parts.append(
                f"prefill scheduled at step {t.prefill_step}, its first token landed at step "
                f"{token} when that batch was processed;"
            )
        else:
            parts.append(f"first token at step {token};")
    samples = {s.step: s for s in t.samples}
    preempted = [s for s in t.segments if s.status == RequestStatus.PREEMPTED]
    for seg in preempted:
        parts.append(
            f"preempted at step {seg.first_step} (KV cache full): its blocks were freed and "
            f"num_computed_tokens reset to 0, it resumed at step {seg.last_step + 1} by "
            f"recomputing prompt and outputs;"
        )
        before = samples.get(seg.first_step - 1)
        if before is not None and samples[seg.first_step].num_tokens > before.num_tokens:
            parts.append("the batch in flight when it was preempted still delivered its token;")
    if t.finish_status is None:
        parts.append("still live when the log ended.")
    elif t.finish_status == RequestStatus.FINISHED_ABORTED:
        parts.append(f"aborted before step {t.last_step} after {t.num_output_tokens} token(s).")
    else:
        end = (
            f"finished at step {t.last_step} ({t.finish_reason}) with {t.num_output_tokens} tokens"
        )
        if t.num_output_placeholders:
            end += "; the batch still in flight for it samples a token nobody will read"
        parts.append(end + ".")
    return " ".join(parts)
