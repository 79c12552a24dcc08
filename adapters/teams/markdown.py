"""Markdown → an Adaptive Card body: paragraphs as TextBlocks (Teams' markdown subset: no headings),
pipe tables as a card Table, code fences as monospace."""

from __future__ import annotations

import re
from typing import Any

from bot.tables import MarkdownTable, segments


def _table(table: MarkdownTable) -> dict[str, Any]:
    header, rows, width = table.header, table.rows, len(table.header)

    def row(cells: list[str], bold: bool = False) -> dict[str, Any]:
        return {"type": "TableRow", "cells": [
            {"type": "TableCell", "items": [{"type": "TextBlock", "text": cell, "wrap": True,
                                             **({"weight": "Bolder"} if bold else {})}]} for cell in cells]}

    columns = [{"width": _weight([header[i]] + [r[i] for r in rows])} for i in range(width)]
    return {"type": "Table", "columns": columns, "firstRowAsHeader": True,
            "showGridLines": True, "rows": [row(header, bold=True)] + [row(r) for r in rows]}


def _weight(cells: list[str]) -> int:
    """A column's share of the card's width (Adaptive Cards' relative `width`): its longest word, so a
    SKU like PREMIUM_SERVERLESS_SQL_COMPUTE is not broken mid-word ("PREMI/UM_AL/L_PUR…") while "$607"
    takes little room; longer prose wraps between words from 24 characters on."""
    longest_word = max((len(word) for cell in cells for word in re.sub(r"[*`_]{2,}|`", "", cell).split()), default=0)
    longest_cell = max((len(cell) for cell in cells), default=0)
    return max(3, longest_word, min(longest_cell, 24))


def markdown_body(markdown: str) -> list[dict[str, Any]]:
    """Paragraphs → TextBlocks (Teams' markdown subset), pipe tables → Table, fences → monospace."""
    body: list[dict[str, Any]] = []
    for segment in segments(markdown):
        if isinstance(segment, MarkdownTable):
            body.append(_table(segment))
        else:
            body += _text_blocks(segment)
    return body


def _text_blocks(markdown: str) -> list[dict[str, Any]]:
    body: list[dict[str, Any]] = []
    lines = markdown.splitlines()
    text: list[str] = []

    def flush() -> None:
        joined = "\n".join(text).strip()
        if joined:
            joined = re.sub(r"^#{1,6}\s+(.+)$", r"**\1**", joined, flags=re.M)  # no headings in TextBlock
            body.append({"type": "TextBlock", "text": joined, "wrap": True})
        text.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        if line.strip().startswith("```"):
            flush()
            end = i + 1
            while end < len(lines) and not lines[end].strip().startswith("```"):
                end += 1
            body.append({"type": "TextBlock", "text": "\n".join(lines[i + 1:end]), "wrap": True,
                         "fontType": "Monospace"})
            i = end + 1
            continue
        text.append(line)
        i += 1
    flush()
    return body
