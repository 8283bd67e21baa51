"""A few helpers to write SVG by hand: escaped attributes and text, compact numbers."""

from __future__ import annotations

from html import escape

__all__ = ["element", "fmt", "text"]


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
