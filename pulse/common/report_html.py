"""The self-contained HTML page every Pulse report uses (the memo, the ML report): one style, images inline."""

from __future__ import annotations

import base64
import html

STYLE = (
    "body{font:15px/1.5 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
    "pre{background:#f5f5f5;padding:.6em;overflow:auto;font-size:12px}img{max-width:100%}"
    ".t td,.t th{padding:2px 8px;text-align:right}"
)


def page(title: str, parts: list[str]) -> str:
    """A whole HTML document: ``title`` in its head, then ``parts`` (HTML) in order."""
    head = f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title><style>{STYLE}</style>"
    return "\n".join([head, *parts])


def img(png: bytes, alt: str = "") -> str:
    """A PNG embedded as a data URI, so the page needs no other file."""
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"
