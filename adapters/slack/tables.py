"""Tables in Slack answers: a markdown pipe table becomes a `data_table` block (Block Kit, changelog
2026-05-20: sorting and paging), markdown again where Slack refuses the block.

Documented limits (docs.slack.dev reference/block-kit/blocks/data-table-block): a required caption, a
header row plus 1–100 rows, every row as wide, header cells `raw_text`; cells `raw_text`, `raw_number`
(a value and its text, so "$1,392" sorts as a number) or `rich_text`; page_size 1–100. The page cuts
off the total character limit across cells; healthbot keeps under 10,000 (the limit of Slack's older
`table` block) and keeps one data table a message (as that block must), leaving any other as markdown.
"""

from __future__ import annotations

import re
from typing import Any

from bot.tables import MarkdownTable, segments

MAX_ROWS, MAX_COLUMNS, MAX_CHARACTERS, PAGE_SIZE, CAPTION_MAX = 100, 20, 10_000, 10, 150
_NUMBER = re.compile(r"^([+-])?\$?(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?%?$")
_MARKUP = re.compile(r"\*\*|__|`")


def _cell_text(cell: str) -> str:
    return _MARKUP.sub("", cell).strip()


def _cell(cell: str) -> dict[str, Any]:
    text = _cell_text(cell) or "—"
    number = _NUMBER.match(text.replace("−", "-").replace("-$", "-").replace("+$", "+"))
    if number:
        sign, whole, fraction = number.groups()
        value = float(whole.replace(",", "") + (fraction or ""))
        return {"type": "raw_number", "value": -value if sign == "-" else value, "text": text}
    return {"type": "raw_text", "text": text}


def data_table(table: MarkdownTable, caption: str) -> dict[str, Any] | None:
    """The table as a data_table block, or None when it is beyond the documented limits."""
    characters = sum(len(c) for row in [table.header, *table.rows] for c in row)
    if not table.rows or len(table.rows) > MAX_ROWS or not 1 <= len(table.header) <= MAX_COLUMNS \
            or characters > MAX_CHARACTERS:
        return None
    header = [{"type": "raw_text", "text": _cell_text(c) or " "} for c in table.header]
    return {"type": "data_table", "caption": caption, "page_size": min(PAGE_SIZE, len(table.rows)),
            "rows": [header, *[[_cell(c) for c in row] for row in table.rows]]}


def _caption(text: str) -> str:
    """What the table shows, for screen readers: the line before it, without markup."""
    lines = [line for line in text.strip().splitlines() if line.strip() and not line.strip().startswith("```")]
    caption = _MARKUP.sub("", lines[-1]).strip(" #*_:") if lines else ""
    return (caption[: CAPTION_MAX - 1] + "…" if len(caption) > CAPTION_MAX else caption) or "Table"


def content_blocks(markdown: str) -> list[dict[str, Any]]:
    """The answer's markdown as blocks: markdown blocks around (at most) one data_table."""
    blocks: list[dict[str, Any]] = []
    text: list[str] = []
    tabled = False

    def flush() -> None:
        joined = "\n".join(text)
        if joined.strip():
            blocks.append({"type": "markdown", "text": joined.strip("\n")})
        text.clear()

    for segment in segments(markdown):
        table = None
        if isinstance(segment, MarkdownTable) and not tabled:
            table = data_table(segment, _caption("\n".join(text)))
        if table is None:
            text.append(segment.source if isinstance(segment, MarkdownTable) else segment)
            continue
        flush()
        blocks.append(table)
        tabled = True
    if not blocks and not "\n".join(text).strip():
        return [{"type": "markdown", "text": "\n".join(text).strip("\n")}]  # an empty answer: one block, as ever
    flush()
    return blocks


def as_markdown(block: dict[str, Any]) -> str:
    """A data_table back as a markdown table (for a workspace that refuses the block)."""
    rows = [[str(cell.get("text", "")).replace("|", "\\|") for cell in row] for row in block["rows"]]
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows[1:]])


def without_data_tables(blocks: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """The blocks with each data_table as markdown again, merged into its neighbours; None if there was none."""
    if not any(block.get("type") == "data_table" for block in blocks):
        return None
    out: list[dict[str, Any]] = []
    for block in blocks:
        kind = block.get("type")
        text = as_markdown(block) if kind == "data_table" else block.get("text") if kind == "markdown" else None
        if text is not None and out and out[-1].get("type") == "markdown":
            out[-1] = {"type": "markdown", "text": out[-1]["text"] + "\n\n" + text}
        elif text is not None:
            out.append({"type": "markdown", "text": text})
        else:
            out.append(block)
    return out
