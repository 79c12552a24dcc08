"""One line of `healthbot doctor`'s report: ✓, ✗ or ! with what it checked and, when not ✓, the fix.

A leaf, so every part that knows how to check itself (identity, alerts, access) can say so without
importing the command that prints the report."""

from __future__ import annotations

from dataclasses import dataclass

OK, FAIL, WARN = "✓", "✗", "!"


@dataclass
class Line:
    mark: str
    name: str
    detail: str
    fix: str = ""

    def __str__(self) -> str:
        return f"{self.mark} {self.name}: {self.detail}" + (f" — {self.fix}" if self.fix and self.mark != OK else "")
