"""Which requests a picture draws: the first ones added, so a picture of a long log stays legible.

A timeline picture of a million requests is a grey smear and a file too big
to open. :class:`FirstRequests` filters a log's events down to what draws its
first ``limit`` requests, streaming, and counts the requests it leaves out.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from minivllm.events import EngineConfigured, Event, RequestAdded, StatusChanged
from minivllm.request import RequestStatus

__all__ = ["FirstRequests"]


class FirstRequests:
    """The events that draw the first ``limit`` requests of a log (``limit=0``: every event).

    It passes the engine's configuration, the chosen requests' own events,
    and the step events until every chosen request has finished; after that
    it only counts the requests it leaves out, so memory does not follow the
    log. :attr:`num_requests` and :attr:`num_kept` are final once it has been
    iterated.
    """

    def __init__(self, events: Iterable[Event], limit: int) -> None:
        if limit < 0:
            raise ValueError(f"limit must be 0 (all) or more, got {limit}")
        self._events = events
        self.limit = limit
        self.num_requests = 0
        self.num_kept = 0

    @property
    def num_left_out(self) -> int:
        """Requests of the log the picture does not draw."""
        return self.num_requests - self.num_kept

    def __iter__(self) -> Iterator[Event]:
        limit = self.limit
        live: set[str] = set()
        for e in self._events:
            if type(e) is RequestAdded:
                self.num_requests += 1
                if not limit or self.num_kept < limit:
                    self.num_kept += 1
                    live.add(e.request_id)
                    yield e
                continue
            if not limit:
                yield e
                continue
            rid = getattr(e, "request_id", None)
            if rid is None:
                # Step events set the picture's last step: wanted while a chosen request lives.
                if live or self.num_kept < limit or type(e) is EngineConfigured:
                    yield e
            elif rid in live:
                yield e
                if type(e) is StatusChanged and RequestStatus.is_finished(e.new_status):
                    live.discard(rid)
