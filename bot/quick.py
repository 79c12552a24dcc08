"""The five quick questions of the original Streamlit page, and their short names.

Short names are what `/healthbot costs`, `/costs` in the console and Teams' command menu use.
"""

from __future__ import annotations

QUICK_QUESTIONS: dict[str, str] = {
    "costs": "Why did costs spike yesterday?",
    "jobs": "Which jobs failed today?",
    "queries": "Show me slow queries",
    "security": "Any security concerns?",
    "health": "Platform health overview",
}

# Slack shows at most 4 suggested prompts (assistant.threads.setSuggestedPrompts, the manifest's agent_view and
# assistant_view): the four that open a conversation best; slow queries stay a command (`/healthbot queries`).
SUGGESTED_PROMPTS: tuple[str, ...] = tuple(QUICK_QUESTIONS[name] for name in ("health", "costs", "jobs", "security"))


def normalize(text: str) -> str:
    return " ".join(text.lower().replace("?", " ").replace("!", " ").replace(".", " ").split())


_BY_TEXT = {normalize(question): question for question in QUICK_QUESTIONS.values()}


def quick_question(text: str) -> str | None:
    """The canonical quick question that `text` is (by short name or wording), if any."""
    cleaned = text.strip().lstrip("/").lower()
    if cleaned in QUICK_QUESTIONS:
        return QUICK_QUESTIONS[cleaned]
    return _BY_TEXT.get(normalize(text))
