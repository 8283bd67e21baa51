"""The event log as two Parquet tables: every event, and one row per request (extra ``parquet``).

:func:`write_parquet` writes a directory that DuckDB, pandas and polars read
directly (``read_parquet('out/events.parquet')``):

- ``events.parquet``: one row per event, in log order. Every event has
  ``engine`` (the engine id: a merged log's record, else the log's
  ``EngineConfigured.engine_id``), ``seq``, ``step``, ``ts_ns``, ``type``
  (the event's tag, as in the JSON log) and ``v`` (its schema version); the
  other columns are the union of the event types' fields, null where a type
  has no such field. Statuses are their names, ``num_scheduled_tokens`` a map,
  id lists lists. ``stop_reason`` is the stop string, ``stop_reason_token``
  the stop token id (the JSON log holds either in one key).
- ``requests.parquet``: one row per life of a request (a reused id starts a
  new life), written when the life ends (at the end of the step it finished
  in; still live at the log's end: written last, with null finish columns):
  what it asked for, its final counters and status, its times in
  nanoseconds on the events' clock and vLLM's intervals (``queue_time_ns``,
  ``ttft_ns``, ``prefill_time_ns``, ``decode_time_ns``, ``inference_time_ns``,
  ``e2e_time_ns``, ``tpot_ns``) as :class:`~lifecycle_trace.fold.timeline.Timeline`
  defines them.

Both are written as the log is read, a row group per ``batch_size`` rows, so
memory follows the batch size and the log's live requests, never its length.
"""

from __future__ import annotations

import os
import types
import typing
from collections.abc import Iterable
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from typing import Literal
from typing import cast

import pyarrow as pa
import pyarrow.parquet as pq

from lifecycle_trace.fold.requests import LogFold
from lifecycle_trace.fold.requests import Record
from lifecycle_trace.fold.requests import RequestState
from lifecycle_trace.fold.requests import Source
from lifecycle_trace.fold.requests import peek_records
from minivllm.events import EVENT_TYPES
from minivllm.events import EngineConfigured
from minivllm.events import Event
from minivllm.events import event_to_dict
from minivllm.request import RequestStatus

__all__ = [
    "EVENTS_FILE",
    "REQUESTS_FILE",
    "event_schema",
    "request_schema",
    "write_parquet",
]

EVENTS_FILE = "events.parquet"
"""The events table's file name in the output directory."""

REQUESTS_FILE = "requests.parquet"
"""The per-request table's file name in the output directory."""

DEFAULT_BATCH_SIZE = 65536
"""Rows per row group: large enough for fast scans, small enough to bound memory."""

_LEADING = ("engine", "seq", "step", "ts_ns", "type", "v")


def _arrow_type(name: str, annotation: Any) -> pa.DataType:
    """The Arrow type of an event field's annotation."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:  # a constrained int (Count, Int64): its base type
        return _arrow_type(name, args[0])
    if annotation is bool:
        return pa.bool_()
    if annotation is int or origin is Literal:
        return pa.int64()
    if annotation is float:
        return pa.float64()
    if annotation is str or annotation is RequestStatus:
        return pa.string()
    if origin is tuple and args and args[-1] is Ellipsis:
        return pa.list_(_arrow_type(name, args[0]))
    if origin is Mapping or origin is dict:
        return pa.map_(_arrow_type(name, args[0]), _arrow_type(name, args[1]))
    present = [a for a in args if a is not type(None)]
    if origin in (types.UnionType, typing.Union) and len(present) == 1:
        return _arrow_type(name, present[0])  # X | None: Arrow columns are nullable
    raise TypeError(
        f"event field {name!r} has a type the Parquet export does not map: {annotation}"
    )


def event_schema() -> pa.Schema:
    """The events table's schema: the common columns, then every event type's fields."""
    fields: dict[str, pa.DataType] = {
        "engine": pa.string(),
        "seq": pa.int64(),
        "step": pa.int64(),
        "ts_ns": pa.int64(),
        "type": pa.string(),
        "v": pa.int64(),
    }
    for cls in EVENT_TYPES:
        for name, annotation in typing.get_type_hints(cls).items():
            if name in fields or typing.get_origin(annotation) is typing.ClassVar:
                continue
            if name == "stop_reason":  # int | str | None: one column per kind
                fields["stop_reason"] = pa.string()
                fields["stop_reason_token"] = pa.int64()
                continue
            fields[name] = _arrow_type(name, annotation)
    return pa.schema(list(fields.items()))


_REQUEST_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("engine", pa.string()),
    ("request_id", pa.string()),
    ("life", pa.int64()),
    ("added_step", pa.int64()),
    ("num_prompt_tokens", pa.int64()),
    ("max_tokens", pa.int64()),
    ("min_tokens", pa.int64()),
    ("ignore_eos", pa.bool_()),
    ("priority", pa.int64()),
    ("temperature", pa.float64()),
    ("top_p", pa.float64()),
    ("n", pa.int64()),
    ("status", pa.string()),
    ("finish_reason", pa.string()),
    ("stop_reason", pa.string()),
    ("stop_reason_token", pa.int64()),
    ("finished_step", pa.int64()),
    ("num_output_tokens", pa.int64()),
    ("num_computed_tokens", pa.int64()),
    ("num_cached_tokens", pa.int64()),
    ("num_preemptions", pa.int64()),
    ("arrival_ns", pa.int64()),
    ("first_scheduled_ns", pa.int64()),
    ("first_token_ns", pa.int64()),
    ("last_token_ns", pa.int64()),
    ("finished_ns", pa.int64()),
    ("queue_time_ns", pa.int64()),
    ("ttft_ns", pa.int64()),
    ("prefill_time_ns", pa.int64()),
    ("decode_time_ns", pa.int64()),
    ("inference_time_ns", pa.int64()),
    ("e2e_time_ns", pa.int64()),
    ("tpot_ns", pa.float64()),
)


def request_schema() -> pa.Schema:
    """The per-request table's schema."""
    return pa.schema(list(_REQUEST_COLUMNS))


def _diff(later: int | None, earlier: int | None) -> int | None:
    return None if later is None or earlier is None else later - earlier


def _request_row(t: RequestState) -> dict[str, Any]:
    stop = t.stop_reason
    decode = _diff(t.last_token_ns, t.first_token_ns)
    outputs = t.num_output_tokens
    return {
        "engine": t.engine_id,
        "request_id": t.request_id,
        "life": t.life,
        "added_step": t.added_step,
        "num_prompt_tokens": t.num_prompt_tokens,
        "max_tokens": t.max_tokens,
        "min_tokens": t.min_tokens,
        "ignore_eos": t.ignore_eos,
        "priority": t.priority,
        "temperature": t.temperature,
        "top_p": t.top_p,
        "n": t.n,
        "status": t.status.name,
        "finish_reason": t.finish_reason,
        "stop_reason": stop if isinstance(stop, str) else None,
        "stop_reason_token": stop if isinstance(stop, int) else None,
        "finished_step": t.finished_step,
        "num_output_tokens": outputs,
        "num_computed_tokens": t.num_computed_tokens,
        "num_cached_tokens": t.num_cached_tokens,
        "num_preemptions": t.num_preemptions,
        "arrival_ns": t.arrival_ns,
        "first_scheduled_ns": t.first_scheduled_ns,
        "first_token_ns": t.first_token_ns,
        "last_token_ns": t.last_token_ns,
        "finished_ns": t.finished_ns,
        "queue_time_ns": _diff(t.first_scheduled_ns, t.arrival_ns),
        "ttft_ns": _diff(t.first_token_ns, t.arrival_ns),
        "prefill_time_ns": _diff(t.first_token_ns, t.first_scheduled_ns),
        "decode_time_ns": decode,
        "inference_time_ns": _diff(t.last_token_ns, t.first_scheduled_ns),
        "e2e_time_ns": _diff(t.finished_ns, t.arrival_ns),
        "tpot_ns": decode / (outputs - 1) if decode is not None and outputs > 1 else None,
    }


class _Table:
    """Rows buffered and written to a Parquet file one row group at a time."""

    def __init__(self, path: Path, schema: pa.Schema, batch_size: int) -> None:
        self.path = path
        self.schema = schema
        self.batch_size = batch_size
        self.rows: list[dict[str, Any]] = []
        self.num_rows = 0
        self._writer = pq.ParquetWriter(path, schema)

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if len(self.rows) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self._writer.write_table(pa.Table.from_pylist(self.rows, schema=self.schema))
            self.num_rows += len(self.rows)
            self.rows.clear()

    def close(self) -> None:
        self.flush()
        self._writer.close()

    def discard(self) -> None:
        self._writer.close()
        self.path.unlink(missing_ok=True)


def write_parquet(
    source: Source, directory: str | os.PathLike[str], *, batch_size: int = DEFAULT_BATCH_SIZE
) -> tuple[int, int]:
    """Write ``events.parquet`` and ``requests.parquet`` into ``directory``; return the row counts.

    ``source`` is one engine's events or the ``(engine_id, event)`` records of
    a merged log. The directory is made if missing; each file is written under
    a temporary name and renamed when complete, so a failed export leaves no
    file that looks whole. Raises ``ValueError`` where the fold does (a log
    that starts mid-run).
    """
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    merged, source = peek_records(source)
    records: Iterable[Record] = (
        cast(Iterable[Record], source)
        if merged
        else (("", e) for e in cast(Iterable[Event], source))
    )
    temporary = {name: out / f".{name}.partial" for name in (EVENTS_FILE, REQUESTS_FILE)}
    events = _Table(temporary[EVENTS_FILE], event_schema(), batch_size)
    requests = _Table(temporary[REQUESTS_FILE], request_schema(), batch_size)
    try:
        folds = LogFold(
            on_retire=lambda t: requests.add(_request_row(t)),
            keep_finished=False,
            history=False,
        )
        engine_names: dict[str, str] = {}
        for engine, event in records:
            fold = folds.fold(engine)
            fold.feed(event)
            if type(event) is EngineConfigured and not engine:
                engine_names[engine] = event.engine_id
            row = event_to_dict(event)
            row["engine"] = engine or engine_names.get(engine, "")
            stop = row.get("stop_reason")
            if isinstance(stop, int):
                row["stop_reason"], row["stop_reason_token"] = None, stop
            events.add(row)
        folds.retire()
        for fold in folds.folds.values():
            for t in fold.states():
                requests.add(_request_row(t))
        events.close()
        requests.close()
    except BaseException:
        events.discard()
        requests.discard()
        raise
    for name, path in temporary.items():
        path.replace(out / name)
    return events.num_rows, requests.num_rows
