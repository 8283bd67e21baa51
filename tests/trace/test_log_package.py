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


def test_every_public_name_of_the_log_is_exported_by_the_package_too() -> None:
    for name in log.__all__:
        assert getattr(log, name) is not None
        if name not in ("ENGINE_KEY", "SOURCE_SEQ_KEY"):  # keys of the JSON form
            assert getattr(lifecycle_trace, name) is getattr(log, name), name
            assert name in lifecycle_trace.__all__
