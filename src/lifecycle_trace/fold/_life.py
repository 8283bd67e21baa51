"""What the fold's request states and the timelines frozen from them say alike about a finish."""

from __future__ import annotations

from minivllm.request import RequestStatus


class FinishedLife:
    """``finished`` and ``finish_reason`` for a class that has a ``finish_status``."""

    __slots__ = ()
    finish_status: RequestStatus | None

    @property
    def finished(self) -> bool:
        """Whether the request reached a FINISHED_* status."""
        return self.finish_status is not None

    @property
    def finish_reason(self) -> str | None:
        """vLLM's finish reason (``"stop"``, ``"length"``, ``"abort"``), or None if unfinished."""
        if self.finish_status is None:
            return None
        return RequestStatus.get_finished_reason(self.finish_status)
