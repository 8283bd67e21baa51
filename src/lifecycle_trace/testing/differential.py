"""Differential tests: one scenario on two engines, and where their request lifecycles part.

Re-exported from :mod:`lifecycle_trace.diffing`, where the diff of two logs lives.
"""

from __future__ import annotations

from lifecycle_trace.diffing import LifecycleMismatch
from lifecycle_trace.diffing import assert_same_lifecycle

__all__ = ["LifecycleMismatch", "assert_same_lifecycle"]
