"""A few helpers to write SVG by hand: escaped attributes and text, compact numbers."""

from __future__ import annotations

import html
import re

__all__ = ["element", "escape", "fmt", "text"]

# Characters XML 1.0 cannot hold, even as a character reference (C0 controls but tab,
# newline and return; surrogates; U+FFFE and U+FFFF), and the C1 controls it advises against.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape(content: str, quote: bool = True) -> str:
    """``content`` for XML text or an attribute, with what XML cannot hold written ``\\xNN``.

    Markup is escaped too; a control character (in a request id, say) becomes
    visible text instead of making the file invalid XML.
    """
    return html.escape(_NOT_XML.sub(_visible, content), quote=quote)


def fmt(value: float) -> str:
    """A coordinate with at most two decimals and no trailing zeros."""
    out = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if out == "-0" else out


def _attrs(attrs: dict[str, object]) -> str:
    parts = []
    for key, value in attrs.items():
        if value is None:
            continue
        shown = fmt(value) if isinstance(value, float) else str(value)
        # Python names cannot hold '-', so callers write stroke_width for stroke-width.
        parts.append(f' {key.rstrip("_").replace("_", "-")}="{escape(shown, quote=True)}"')
    return "".join(parts)


def element(tag: str, body: str = "", **attrs: object) -> str:
    """One SVG element; ``body`` is inserted as is (already-escaped markup)."""
    if body:
        return f"<{tag}{_attrs(attrs)}>{body}</{tag}>"
    return f"<{tag}{_attrs(attrs)}/>"


def text(content: str, **attrs: object) -> str:
    """A ``<text>`` element with escaped content."""
    return element("text", escape(content, quote=False), **attrs)
