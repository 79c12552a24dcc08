"""Platform-neutral text handling: long answers become several messages, never cut; a streamed
answer is shown only in pieces that render whole."""

from __future__ import annotations

import re


def split_markdown(markdown: str, limit: int) -> list[str]:
    """Split at paragraph (then line) boundaries; a code fence cut in two is closed and reopened."""
    if len(markdown) <= limit:
        return [markdown]
    pieces: list[str] = []
    for paragraph in markdown.split("\n\n"):
        pieces.extend([paragraph] if len(paragraph) <= limit else _hard_split(paragraph, limit))
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        candidate = f"{current}\n\n{piece}" if current else piece
        if current and len(candidate) > limit:
            chunks.append(current)
            current = piece
        else:
            current = candidate
    if current:
        chunks.append(current)
    return _close_fences(chunks)


def _hard_split(text: str, limit: int) -> list[str]:
    out: list[str] = []
    current = ""
    lines = text.splitlines(keepends=True)
    for line in lines:
        while len(line) > limit:  # one enormous line: cut it, nothing is dropped
            out.append(current + line[: limit - len(current)])
            line, current = line[limit - len(current):], ""
        if len(current) + len(line) > limit:
            out.append(current)
            current = ""
        current += line
    if current:
        out.append(current)
    return out


def _close_fences(chunks: list[str]) -> list[str]:
    """A chunk that ends inside ``` closes it, and the next one reopens it."""
    fixed: list[str] = []
    carry = False
    for chunk in chunks:
        text = ("```\n" + chunk) if carry else chunk
        carry = text.count("```") % 2 == 1
        fixed.append(text + "\n```" if carry else text)
    return fixed


_FENCE = re.compile(r"^\s*```", re.M)


def safe_prefix(text: str) -> str:
    """The longest start of `text` that renders whole: not inside a code fence, no table still
    growing, and a line still being written only up to its last space."""
    fences = [m.start() for m in _FENCE.finditer(text)]
    if len(fences) % 2:  # an open fence: only what came before it
        return _without_open_table(text[:fences[-1]])
    cut = text.rfind("\n") + 1
    done, tail = text[:cut], text[cut:]
    if not tail.strip() or tail.lstrip().startswith("|"):
        return _without_open_table(done)  # a table may still be growing
    space = max(tail.rfind(" "), tail.rfind("\t"))  # a line after a table: the table is whole
    return done + (tail[:space + 1] if space >= 0 else "")


def _without_open_table(text: str) -> str:
    lines = text.splitlines(keepends=True)
    while lines and lines[-1].lstrip().startswith("|"):
        lines.pop()
    return "".join(lines)


def sentence(words: str) -> str:
    """A stage ("asking the cost agent…") as a line of its own: its first letter capitalised."""
    return words[:1].upper() + words[1:]


_ZW = "\u200b"  # zero-width space: invisible, but no link, mention or markup pattern matches across it
_LINK_STARTS = re.compile(r"(?i)(?<=[a-z0-9])(?=://)|(?<=www)(?=\.)|(?<=mailto)(?=:)")
_LOOKALIKES = str.maketrans({"<": "‹", ">": "›", "*": "∗", "~": "∼", "`": "ˋ", "|": "∣", "[": "［", "]": "］"})
_LINE_STARTS = ("#", "-", "+", "=", "!")
_EDGE_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")  # `_italic_`; snake_case stays


def inert(text: str) -> str:
    """Outside text (alert, job, run, endpoint and model names, messages from Databricks) as text that
    no renderer turns into anything else: no live link, mention or markup in Slack mrkdwn, Slack's
    markdown block or a Teams card (DESIGN.md "Who may see what"). Every renderer that puts such text
    into markdown passes it through here; it reads the same, and only what would act is changed:
    `<` `>` (Slack's `<!channel>`, `<@U…>`, `<url|label>`; Teams' `<at>`), markdown emphasis, code,
    tables, link brackets and underscores at a word's edge become look-alikes; URL schemes, `www.` and `@` get an
    invisible break (a bare host name is left as it is: Slack's mrkdwn that shows outside text is
    `verbatim`, so Slack does not link it); control characters and line breaks become spaces (a name is one line)."""
    text = "".join(" " if ch < " " or "\u007f" <= ch <= "\u009f" or ch in "\u2028\u2029" else ch for ch in text)
    text = _EDGE_UNDERSCORE.sub("＿", text.translate(_LOOKALIKES))
    text = _LINK_STARTS.sub(_ZW, text)
    text = text.replace("@", "@" + _ZW)
    if text.lstrip().startswith(_LINE_STARTS) or re.match(r"\s*\d+[.)]\s", text):
        text = _ZW + text  # not a heading, list or quote at the start of a line
    return text
