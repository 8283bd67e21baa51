"""The environment variables minivllm reads, each validated where it is read (vLLM's ``envs.py``).

- ``MINIVLLM_LOGGING_LEVEL``: ``DEBUG`` logs every event as a JSON line,
  ``INFO`` only the status changes (``WARNING``, ``ERROR`` and ``CRITICAL``
  log none). Set to ``DEBUG`` or ``INFO``, it attaches the ``json-log``
  observer to every new engine, as ``VLLM_LOGGING_LEVEL`` does on vLLM.
- ``MINIVLLM_CONFIGURE_LOGGING``: ``1`` (the default) lets the event logger
  print to stderr when the application has configured no logging, and lets
  ``MINIVLLM_LOGGING_LEVEL`` decide the level; ``0`` leaves everything to the
  application's logging configuration (vLLM's ``VLLM_CONFIGURE_LOGGING=0``).
- ``MINIVLLM_OBSERVERS``: comma-separated observer names attached to every new engine.
"""

from __future__ import annotations

import logging
import os

__all__ = [
    "CONFIGURE_LOGGING",
    "LOGGING_LEVEL",
    "LOGGING_LEVELS",
    "OBSERVERS",
    "configure_logging",
    "logging_level",
    "observer_names",
]

LOGGING_LEVEL = "MINIVLLM_LOGGING_LEVEL"
CONFIGURE_LOGGING = "MINIVLLM_CONFIGURE_LOGGING"
OBSERVERS = "MINIVLLM_OBSERVERS"

LOGGING_LEVELS = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARNING": logging.WARNING,
    "ERROR": logging.ERROR,
    "CRITICAL": logging.CRITICAL,
}
"""The level names ``MINIVLLM_LOGGING_LEVEL`` takes (any case), as stdlib numbers."""


def logging_level() -> int | None:
    """``MINIVLLM_LOGGING_LEVEL`` as a stdlib level, or None when unset or empty.

    Raises ``ValueError`` naming the variable for anything but a level name.
    """
    raw = os.environ.get(LOGGING_LEVEL, "").strip()
    if not raw:
        return None
    try:
        return LOGGING_LEVELS[raw.upper()]
    except KeyError:
        raise ValueError(
            f"{LOGGING_LEVEL} must be one of {', '.join(LOGGING_LEVELS)}, got {raw!r}"
        ) from None


def configure_logging() -> bool:
    """``MINIVLLM_CONFIGURE_LOGGING``: whether minivllm may configure its own logging (default 1).

    Raises ``ValueError`` naming the variable for anything but ``0`` or ``1``.
    """
    raw = os.environ.get(CONFIGURE_LOGGING, "1").strip() or "1"
    if raw not in ("0", "1"):
        raise ValueError(f"{CONFIGURE_LOGGING} must be 0 or 1, got {raw!r}")
    return raw == "1"


def observer_names() -> list[str]:
    """``MINIVLLM_OBSERVERS`` as a list of names (empty entries dropped)."""
    return [n.strip() for n in os.environ.get(OBSERVERS, "").split(",") if n.strip()]
