"""The package's layout: public names in each package, and the import paths users had still work."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

# Each old path, where its contents went, and the names it had.
MOVED = {
    "lifecycle_trace.timeline": (
        "lifecycle_trace.fold.timeline",
        "Sample Segment Timeline TimelineBuilder build_timelines iter_timelines",
    ),
    "lifecycle_trace.stats": (
        "lifecycle_trace.fold.stats",
        "METRICS StatsAccumulator Summary summarize summarize_timelines",
    ),
    "lifecycle_trace.slicing": (
        "lifecycle_trace.log.slice",
        "SOURCE_SEQ_KEY StepRange parse_step_range slice_log slice_records",
    ),
    "lifecycle_trace.merging": ("lifecycle_trace.log.merge", "DuplicateEngineError merge_logs"),
    "lifecycle_trace.export.intervals": (
        "lifecycle_trace.fold.intervals",
        "Finish IntervalFold RequestIntervals StatusInterval status_intervals",
    ),
    "lifecycle_trace.export.phases": (
        "lifecycle_trace.fold.phases",
        "PHASE_NAMES Phase request_phases",
    ),
    "lifecycle_trace.export.finished": ("lifecycle_trace.fold.finished", "finished_requests"),
    "lifecycle_trace.export.chrome_check": (
        "lifecycle_trace.testing.chrome_check",
        "InvalidTraceError TraceProblem trace_problems validate_chrome_trace",
    ),
    "lifecycle_trace.export.plot_layout": (
        "lifecycle_trace.export.plot.layout",
        "FINISHED_COLOR REQUEST_PALETTE STATUS_COLORS Layout nice_step status_color",
    ),
}


@pytest.mark.parametrize(("old", "new", "names"), [(k, *v) for k, v in sorted(MOVED.items())])
def test_an_old_path_gives_the_same_objects(old: str, new: str, names: str) -> None:
    before, after = importlib.import_module(old), importlib.import_module(new)
    for name in names.split():
        assert name in before.__all__, name
        assert getattr(before, name) is getattr(after, name), name


@pytest.mark.parametrize(
    "package",
    [
        "lifecycle_trace",
        "lifecycle_trace.fold",
        "lifecycle_trace.log",
        "lifecycle_trace.export",
        "lifecycle_trace.export.plot",
        "lifecycle_trace.testing",
        "lifecycle_trace.streaming",
    ],
)
def test_every_public_name_resolves(package: str) -> None:
    module = importlib.import_module(package)
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert not missing


def test_the_exporters_and_the_trace_validator_load_without_hypothesis() -> None:
    code = (
        "import sys\n"
        "sys.modules['hypothesis'] = None\n"  # an import of it now fails
        "import lifecycle_trace, lifecycle_trace.export, lifecycle_trace.fold\n"
        "from lifecycle_trace.testing import validate_chrome_trace\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
