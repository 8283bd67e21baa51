"""A byte-level tokenizer: every UTF-8 byte is a token, plus BOS and EOS."""

from __future__ import annotations


class ByteTokenizer:
    """Tokens 0-255 are bytes; 256 is BOS and 257 is EOS (vocabulary of 258)."""

    bos_token_id = 256
    eos_token_id = 257
    vocab_size = 258

    def encode(self, text: str) -> list[int]:
        """The UTF-8 bytes of ``text`` (no BOS: prompts start with their first byte)."""
        return list(text.encode("utf-8"))

    def decode(self, token_ids: list[int] | tuple[int, ...]) -> str:
        """Bytes back to text; special tokens are dropped, broken UTF-8 is replaced."""
        return bytes(t for t in token_ids if 0 <= t < 256).decode("utf-8", errors="replace")
