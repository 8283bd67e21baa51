"""How every rule reports: a :class:`Violation`, formatted one per line."""

from __future__ import annotations

from collections.abc import Iterable

import attrs

__all__ = ["Violation", "format_violations"]


@attrs.frozen
class Violation:
    """One broken rule: which, for which request, at which step, seen in which events.

    ``invariant`` is the rule's name (a key of
    :data:`~lifecycle_trace.check.RULES`, or of the reference's
    :data:`~lifecycle_trace.testing.reference.REFERENCE_RULES`).
    """

    invariant: str
    request_id: str | None
    step: int
    seqs: tuple[int, ...]
    message: str

    def __str__(self) -> str:
        who = f" request {self.request_id}" if self.request_id is not None else ""
        seqs = f" (events {', '.join(map(str, self.seqs))})" if self.seqs else ""
        return f"[{self.invariant}] step {self.step}{who}{seqs}: {self.message}"


def format_violations(violations: Iterable[Violation]) -> str:
    """One line per violation, for assertion messages and terminal output."""
    return "\n".join(str(v) for v in violations)
