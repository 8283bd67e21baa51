"""Plain-text pictures of timelines: the per-request table, the status chart, the stats table."""

from __future__ import annotations

import re
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence

from lifecycle_trace.fold.stats import Summary
from lifecycle_trace.fold.timeline import Timeline
from minivllm.request import RequestStatus

STATUS_LETTERS: Mapping[RequestStatus, str] = {
    RequestStatus.WAITING: "W",
    RequestStatus.RUNNING: "R",
    RequestStatus.PREEMPTED: "P",
    RequestStatus.FINISHED_STOPPED: "S",
    RequestStatus.FINISHED_LENGTH_CAPPED: "L",
    RequestStatus.FINISHED_ABORTED: "A",
    RequestStatus.FINISHED_IGNORED: "I",
}

LEGEND = (
    "W waiting  R running  P preempted  "
    "S finished (stop)  L finished (length)  A aborted  I ignored  . not live"
)

IN_FLIGHT_LABEL = "  in flight"
"""Label of the row under each request that counts its batches in flight (async scheduling)."""

IN_FLIGHT_LEGEND = (
    "in flight: num_output_placeholders at the end of the step, the tokens that batches "
    "scheduled for the request and not yet processed will sample (blank: none)"
)


def has_batches_in_flight(timelines: Iterable[Timeline]) -> bool:
    """Whether any request ever ended a step with a batch in flight (an async scheduling log)."""
    return any(any(t.change_placeholders) for t in timelines)


def has_priorities(timelines: Iterable[Timeline]) -> bool:
    """Whether any request has a priority other than 0."""
    return any(t.priority for t in timelines)


def _ms(ns: float | None) -> str:
    return "-" if ns is None else f"{ns / 1e6:.3f}"


def table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    """Left-aligned first column, right-aligned others, two spaces apart."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        cells = [
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def _step(step: int | None) -> str:
    return "-" if step is None else str(step)


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with control characters as ``\\xNN``: a request id cannot steer a terminal."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def timeline_table(timelines: Mapping[str, Timeline]) -> str:
    """One row per request (named by its key): sizes, steps that matter, finish, latencies (ms).

    A log with priorities other than 0 adds ``prio``; one with batches in
    flight (async scheduling) adds ``token@``, the step the first sampled
    token arrived in, a step after ``prefill@``.
    """
    priorities = has_priorities(timelines.values())
    in_flight = has_batches_in_flight(timelines.values())
    header = [
        "request",
        *(["prio"] if priorities else []),
        "prompt",
        "out",
        "added",
        "sched",
        "prefill@",
        *(["token@"] if in_flight else []),
        "chunks",
        "done@",
        "preempt",
        "finish",
        "queue_ms",
        "ttft_ms",
        "tpot_ms",
        "e2e_ms",
    ]
    rows = []
    for label, t in _printable_keys(timelines).items():
        rows.append(
            [
                label,
                *([str(t.priority)] if priorities else []),
                str(t.num_prompt_tokens),
                str(t.num_output_tokens),
                str(t.added_step),
                _step(t.first_running_step),
                _step(t.prefill_step),
                *([_step(t.first_token_step)] if in_flight else []),
                "+".join(map(str, t.chunk_sizes)) or "-",
                _step(t.finished_step),
                str(t.num_preemptions),
                t.finish_reason or "-",
                _ms(t.queue_time_ns),
                _ms(t.ttft_ns),
                _ms(t.tpot_ns),
                _ms(t.e2e_time_ns),
            ]
        )
    return table(rows, header)


def _in_flight_cell(placeholders: int) -> str:
    return " " if placeholders == 0 else str(placeholders) if placeholders < 10 else "+"


def _printable_keys(timelines: Mapping[str, Timeline]) -> dict[str, Timeline]:
    return {printable(label): t for label, t in timelines.items()}


def status_chart(timelines: Mapping[str, Timeline], width: int = 80) -> str:
    """One row per request, one column per step, one letter per end-of-step status.

    Long runs are cut into blocks of ``width`` steps. When a batch was ever
    in flight (async scheduling), each request's row is followed by an
    ``in flight`` row: its ``num_output_placeholders`` at the end of each
    step (blank for none).
    """
    timelines = _printable_keys(timelines)
    if not timelines:
        return "(no requests)"
    first = min(t.added_step for t in timelines.values())
    last = max(t.last_step for t in timelines.values())
    in_flight = has_batches_in_flight(timelines.values())
    name_width = max(
        len("step"), *(len(rid) for rid in timelines), len(IN_FLIGHT_LABEL) if in_flight else 0
    )
    rows: list[tuple[str, list[str]]] = []
    for rid, t in timelines.items():
        cells = ["."] * (last - first + 1)
        flight = [" "] * (last - first + 1)
        for s in t.samples:
            cells[s.step - first] = STATUS_LETTERS[s.status]
            flight[s.step - first] = _in_flight_cell(s.num_output_placeholders)
        rows.append((rid, cells))
        if in_flight:
            rows.append((IN_FLIGHT_LABEL, flight))
    blocks = []
    width = max(10, width)
    for start in range(first, last + 1, width):
        stop = min(start + width, last + 1)
        ruler = "".join(
            str(step // 10 % 10) if step % 10 == 0 else " " for step in range(start, stop)
        )
        units = "".join(str(step % 10) for step in range(start, stop))
        lines = [f"{'step':<{name_width}}  {ruler}".rstrip(), f"{'':<{name_width}}  {units}"]
        for rid, cells in rows:
            line = f"{rid:<{name_width}}  {''.join(cells[start - first : stop - first])}"
            lines.append(line.rstrip())
        blocks.append("\n".join(lines))
    legend = LEGEND + ("\n" + IN_FLIGHT_LEGEND if in_flight else "")
    return "\n\n".join(blocks) + "\n\n" + legend


def stats_table(summaries: Mapping[str, Summary | None]) -> str:
    """One row per metric: count, mean and percentiles in milliseconds."""
    header = ["metric", "count", "mean_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms"]
    rows = []
    for name, s in summaries.items():
        if s is None:
            rows.append([name, "0", "-", "-", "-", "-", "-"])
        else:
            rows.append(
                [name, str(s.count), *(_ms(v) for v in (s.mean, s.p50, s.p90, s.p99, s.max))]
            )
    return table(rows, header)
