"""What the engine hands back to callers (vLLM's ``RequestOutput`` and ``CompletionOutput``)."""

from __future__ import annotations

import attrs

from minivllm.tokenizer import ByteTokenizer

_decode = ByteTokenizer().decode


@attrs.define(slots=True)
class CompletionOutput:
    """One generated sequence; ``text`` is decoded on first access."""

    index: int
    token_ids: list[int]
    finish_reason: str | None = None
    stop_reason: int | str | None = None
    _text: str | None = attrs.field(default=None, alias="text", repr=False)

    @property
    def text(self) -> str:
        """The decoded tokens (cut before a matched stop string)."""
        if self._text is None:
            self._text = _decode(self.token_ids)
        return self._text

    def finished(self) -> bool:
        """Whether this sequence has a finish reason."""
        return self.finish_reason is not None

    def __repr__(self) -> str:
        # vLLM's field order, the decoded text included.
        return (
            f"CompletionOutput(index={self.index}, text={self.text!r}, "
            f"token_ids={self.token_ids}, finish_reason={self.finish_reason}, "
            f"stop_reason={self.stop_reason})"
        )


@attrs.define(slots=True)
class RequestOutput:
    """A request's output after one step (or at the end, for ``LLM.generate``).

    Its repr shows each sequence's text, as vLLM's does.
    """

    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    outputs: list[CompletionOutput]
    finished: bool
    num_cached_tokens: int = 0

    @property
    def finish_reason(self) -> str | None:
        """The first sequence's finish reason (``"stop"``, ``"length"``, ``"abort"``) or None."""
        return self.outputs[0].finish_reason if self.outputs else None
