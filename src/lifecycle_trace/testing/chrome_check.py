"""A validator for Chrome Trace Event JSON: what a trace viewer silently gets wrong.

Viewers accept malformed traces and draw nonsense (a slice hidden under
another, a counter that jumps back in time). :func:`trace_problems` lists
every problem found; :func:`validate_chrome_trace` raises
:class:`InvalidTraceError` listing them. It checks:

- the container: a list of events, or an object with a ``traceEvents`` list;
- well-formed phases: each event is an object with a known ``ph``, a string
  ``name``, integer ``pid``/``tid``, a finite ``ts`` >= 0 (not for metadata),
  ``X`` with a ``dur`` >= 0, instants with scope ``g``/``p``/``t``, counters
  with numeric ``args``, metadata with the ``args`` its name needs, and
  ``B``/``E`` pairs that match on their row;
- no overlapping slices on a row: ``X`` slices (and ``B``/``E`` spans) of one
  ``(pid, tid)`` may touch but never overlap, nesting included;
- counters in time order: the samples of one counter track (``pid``, ``name``
  and ``id``) appear with non-decreasing ``ts``;
- thread ids as Perfetto reads them: no ``tid`` 0 (older Perfetto versions
  merge thread 0 with another) and no ``tid`` in two processes (Perfetto
  keys threads by id, so their rows would mix).

Times are microseconds; ``tolerance_us`` (default 1 ns) absorbs float
rounding of nanosecond timestamps.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from typing import Any
from typing import TypeGuard

import attrs

__all__ = ["InvalidTraceError", "TraceProblem", "trace_problems", "validate_chrome_trace"]

_PHASES = frozenset("XBEiICM")
_METADATA_ARGS = {
    "process_name": "name",
    "thread_name": "name",
    "process_sort_index": "sort_index",
    "thread_sort_index": "sort_index",
    "process_labels": "labels",
}


@attrs.frozen
class TraceProblem:
    """One thing wrong with a trace: the index of the offending event (or -1) and why."""

    index: int
    message: str

    def __str__(self) -> str:
        where = f"event {self.index}" if self.index >= 0 else "trace"
        return f"{where}: {self.message}"


class InvalidTraceError(ValueError):
    """A Chrome trace failed validation; ``problems`` lists every reason."""

    def __init__(self, problems: list[TraceProblem]) -> None:
        self.problems = problems
        shown = "\n  ".join(map(str, problems[:20]))
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(f"invalid Chrome trace ({len(problems)} problem(s)):\n  {shown}{more}")


def _number(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _events(trace: Any) -> tuple[list[Any] | None, list[TraceProblem]]:
    if isinstance(trace, list):
        return trace, []
    if isinstance(trace, Mapping):
        events = trace.get("traceEvents")
        if isinstance(events, list):
            return events, []
        return None, [TraceProblem(-1, "object form without a 'traceEvents' list")]
    return None, [TraceProblem(-1, f"expected a list or an object, got {type(trace).__name__}")]


def _shape(i: int, e: Any) -> list[TraceProblem]:
    """Problems with one event on its own."""
    if not isinstance(e, Mapping):
        return [TraceProblem(i, f"not an object: {e!r}")]
    ph = e.get("ph")
    if ph not in _PHASES:
        return [TraceProblem(i, f"unknown or missing phase 'ph': {ph!r}")]
    out: list[TraceProblem] = []
    if not isinstance(e.get("name"), str):
        out.append(TraceProblem(i, f"{ph}: 'name' must be a string"))
    for key in ("pid", "tid"):
        if not isinstance(e.get(key), int) or isinstance(e.get(key), bool):
            out.append(TraceProblem(i, f"{ph}: {key!r} must be an integer"))
    if ph == "M":
        needed = _METADATA_ARGS.get(e.get("name"))  # type: ignore[arg-type]
        args = e.get("args")
        if needed is None:
            out.append(TraceProblem(i, f"M: unknown metadata name {e.get('name')!r}"))
        elif not isinstance(args, Mapping) or needed not in args:
            out.append(TraceProblem(i, f"M {e.get('name')}: args must hold {needed!r}"))
        return out
    ts = e.get("ts")
    if not _number(ts) or ts < 0:
        out.append(TraceProblem(i, f"{ph}: 'ts' must be a finite number >= 0, got {ts!r}"))
    if ph == "X":
        dur = e.get("dur")
        if not _number(dur) or dur < 0:
            out.append(TraceProblem(i, f"X: 'dur' must be a finite number >= 0, got {dur!r}"))
    elif ph in "iI" and e.get("s", "t") not in ("g", "p", "t"):
        out.append(TraceProblem(i, f"{ph}: scope 's' must be 'g', 'p' or 't', got {e.get('s')!r}"))
    elif ph == "C":
        args = e.get("args")
        if not isinstance(args, Mapping) or not args:
            out.append(TraceProblem(i, "C: 'args' must be a non-empty object of series values"))
        elif not all(_number(v) for v in args.values()):
            out.append(TraceProblem(i, f"C: every series value must be a number, got {args!r}"))
    return out


def trace_problems(trace: Any, tolerance_us: float = 1e-3) -> list[TraceProblem]:
    """Every problem with ``trace`` (parsed JSON); an empty list means it is valid."""
    events, problems = _events(trace)
    if events is None:
        return problems
    slices: dict[tuple[int, int], list[tuple[float, float, int]]] = defaultdict(list)
    stacks: dict[tuple[int, int], list[tuple[float, int]]] = defaultdict(list)
    counters: dict[tuple[Any, ...], tuple[float, int]] = {}
    owners: dict[int, tuple[int, int]] = {}  # each tid's process, and where it was first seen
    for i, e in enumerate(events):
        shape = _shape(i, e)
        problems.extend(shape)
        if shape:
            continue
        ph, row = e["ph"], (e["pid"], e["tid"])
        if e["tid"] == 0:
            problems.append(TraceProblem(i, "tid 0: older Perfetto versions merge it with another"))
        first_pid, first_seen = owners.setdefault(e["tid"], (e["pid"], i))
        if first_pid != e["pid"]:
            problems.append(
                TraceProblem(
                    i,
                    f"tid {e['tid']} of pid {e['pid']} is also in pid {first_pid} (event "
                    f"{first_seen}): Perfetto keys threads by id",
                )
            )
        if ph == "X":
            slices[row].append((e["ts"], e["ts"] + e["dur"], i))
        elif ph == "B":
            stacks[row].append((e["ts"], i))
        elif ph == "E":
            if not stacks[row]:
                problems.append(TraceProblem(i, f"E on row {row} without a matching B"))
            else:
                start, begin = stacks[row].pop()
                if e["ts"] < start:
                    problems.append(TraceProblem(i, f"E before its B (event {begin})"))
                else:
                    slices[row].append((start, e["ts"], begin))
        elif ph == "C":
            key = (e["pid"], e["name"], e.get("id"))
            previous = counters.get(key)
            if previous is not None and e["ts"] < previous[0]:
                problems.append(
                    TraceProblem(
                        i,
                        f"counter {e['name']!r} goes back in time: ts {e['ts']} after "
                        f"ts {previous[0]} (event {previous[1]})",
                    )
                )
            counters[key] = (e["ts"], i)
    for row, open_ in stacks.items():
        problems.extend(TraceProblem(i, f"B on row {row} is never ended") for _, i in open_)
    for row, spans in slices.items():
        spans.sort()
        # Compare with the furthest end so far: a long slice can cover several later ones.
        reach, owner = -math.inf, -1
        for start, end, i in spans:
            if start < reach - tolerance_us:
                problems.append(
                    TraceProblem(
                        i, f"slice overlaps event {owner} on row {row} ({start} < {reach})"
                    )
                )
            if end > reach:
                reach, owner = end, i
    return sorted(problems, key=lambda p: p.index)


def validate_chrome_trace(trace: Any, tolerance_us: float = 1e-3) -> None:
    """Raise :class:`InvalidTraceError` unless ``trace`` (parsed JSON) is a valid Chrome trace."""
    problems = trace_problems(trace, tolerance_us)
    if problems:
        raise InvalidTraceError(problems)
