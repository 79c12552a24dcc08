"""Markdown pipe tables, found once for every renderer: Teams turns them into a card Table, Slack into
a `data_table` block. Tables inside code fences are text, as a markdown renderer would leave them."""

from __future__ import annotations

import re
from dataclasses import dataclass

TABLE_RULE = re.compile(r"^\|?\s*:?-{3,}")


@dataclass(frozen=True)
class MarkdownTable:
    header: list[str]
    rows: list[list[str]]  # each as wide as the header
    source: str  # the table's markdown, as it came


def cells(line: str) -> list[str]:
    return [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def segments(markdown: str) -> list[str | MarkdownTable]:
    """The markdown as text pieces and tables, in order (text pieces keep their fences)."""
    out: list[str | MarkdownTable] = []
    lines = markdown.splitlines()
    text: list[str] = []
    i, fenced = 0, False
    while i < len(lines):
        line = lines[i]
        if line.strip().startswith("```"):
            fenced = not fenced
        elif not fenced and line.strip().startswith("|") and i + 1 < len(lines) and TABLE_RULE.match(lines[i + 1].strip()):
            end = i + 2
            while end < len(lines) and lines[end].strip().startswith("|"):
                end += 1
            header = cells(line)
            rows = [(cells(row) + [""] * len(header))[:len(header)] for row in lines[i + 2:end]]
            if text:
                out.append("\n".join(text))
                text = []
            out.append(MarkdownTable(header, rows, "\n".join(lines[i:end])))
            i = end
            continue
        text.append(line)
        i += 1
    if text:
        out.append("\n".join(text))
    return out
