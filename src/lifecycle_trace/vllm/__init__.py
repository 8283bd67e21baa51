"""The same event log from the real vLLM 0.22.1 scheduler (the optional extra ``vllm``).

- :class:`TracingScheduler` / :class:`AsyncTracingScheduler`: name one as vLLM's
  scheduler class (``--scheduler-cls lifecycle_trace.vllm.TracingScheduler``)
  and set ``LIFECYCLE_TRACE_VLLM_LOG`` to the log path;
- :func:`attach`: trace a vLLM scheduler object that already exists;
- :mod:`lifecycle_trace.vllm.driver`: run a workload on vLLM's scheduler and
  KV cache manager on the CPU with a scripted model (``lifecycle-trace run
  --engine vllm``).

Importing this package needs vLLM; :func:`vllm_missing_reason` says why it is
not importable without raising.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = [
    "LOG_ENV",
    "VLLM_LOG_DEFAULTS",
    "VLLM_VERSION",
    "AsyncTracingScheduler",
    "TracingScheduler",
    "attach",
    "quiet_vllm_logging",
    "tracer_of",
    "vllm_missing_reason",
]

VLLM_VERSION = "0.22.1"
"""The vLLM release this package reproduces and traces."""

VLLM_LOG_DEFAULTS = {"VLLM_LOGGING_LEVEL": "CRITICAL", "VLLM_LOGGING_STREAM": "ext://sys.stderr"}
"""What a command line run sets unless the user did: vLLM logs INFO lines to stdout otherwise,
and on a CPU without triton it logs an irrelevant error about triton kernels."""


def quiet_vllm_logging() -> None:
    """Send vLLM's log to stderr, critical messages only, unless ``VLLM_LOGGING_*`` say otherwise.

    Takes effect only before vLLM is first imported (it configures its logger then).
    """
    for name, value in VLLM_LOG_DEFAULTS.items():
        os.environ.setdefault(name, value)


_FROM_SCHEDULER = ("LOG_ENV", "AsyncTracingScheduler", "TracingScheduler", "attach", "tracer_of")


def vllm_missing_reason() -> str | None:
    """Why vLLM cannot be used here (not installed, or another version), or None if it can."""
    try:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version

        installed = version("vllm")
    except PackageNotFoundError:
        return (
            "vLLM is not installed (pip install 'minivllm-lifecycle-trace[vllm]', "
            "or make test-vllm)"
        )
    if installed != VLLM_VERSION:
        return f"vLLM {installed} is installed; lifecycle_trace.vllm needs {VLLM_VERSION}"
    try:
        import vllm.v1.core.sched.scheduler  # noqa: F401
    except ImportError as exc:
        return f"vLLM {installed} is installed but its scheduler does not import: {exc}"
    return None


def __getattr__(name: str) -> Any:
    # vLLM (and torch) are imported on first use, so the reason check above stays cheap.
    if name in _FROM_SCHEDULER:
        from lifecycle_trace.vllm import scheduler

        return getattr(scheduler, name)
    raise AttributeError(f"module 'lifecycle_trace.vllm' has no attribute {name!r}")
