"""``EndsOnExit``: the ``with`` protocol of an object that a block ends.

A subscription, a recorder and a file sink are each used as
``with thing: ...``, entering gives the thing itself and leaving ends it (an
unsubscribe, a stop, a close). They say only how they end.
"""

from __future__ import annotations

from types import TracebackType
from typing import Self

__all__ = ["EndsOnExit"]


class EndsOnExit:
    """Entering returns the object; leaving the block calls :meth:`end_on_exit`."""

    __slots__ = ()

    def end_on_exit(self, exc: BaseException | None) -> None:
        """End this object as its ``with`` block is left (``exc``: what the block raised)."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.end_on_exit(exc)
