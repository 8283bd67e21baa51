"""The log package's public names, and the old module paths that still import them."""

from __future__ import annotations

import importlib

import pytest

import lifecycle_trace
from lifecycle_trace import log


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("lifecycle_trace.eventlog", "lifecycle_trace.log.eventlog"),
        ("lifecycle_trace.store", "lifecycle_trace.log.store"),
        ("lifecycle_trace.reader", "lifecycle_trace.log.reader"),
        ("lifecycle_trace.sink", "lifecycle_trace.log.sink"),
    ],
)
def test_old_module_paths_give_the_same_objects(old: str, new: str) -> None:
    old_module, new_module = importlib.import_module(old), importlib.import_module(new)
    assert old_module.__all__
    for name in old_module.__all__:
        assert getattr(old_module, name) is getattr(new_module, name), name


def test_the_log_names_the_package_exports_are_the_log_packages_own() -> None:
    exported = set(lifecycle_trace.__all__) & set(log.__all__)
    assert {"EventLog", "JsonlWriter", "LogReader", "iter_jsonl", "read_jsonl"} <= exported
    for name in exported:
        assert getattr(lifecycle_trace, name) is getattr(log, name), name
