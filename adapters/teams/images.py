"""Charts for Teams cards: drawn small enough that the card stays under the Bot Framework's message size
limit (~28 KB for a bot's message, base64 images included): first at 480 × 270 px, then at 400 × 225;
a chart still too big is left out, with one log line. One chart per answer for the same reason."""

from __future__ import annotations

import logging
from typing import Any

from bot.charts import render_all

log = logging.getLogger(__name__)

MAX_PNG_BYTES = 14_000  # ~19 KB once base64-encoded, leaving room for the answer's text
SIZES = ((6.0, 80), (5.0, 80))  # (inches, dpi)


async def card_images(charts: list[Any], *, what: str) -> list[tuple[str, bytes]]:
    if not charts:
        return []
    for width_in, dpi in SIZES:
        drawn = await render_all(charts[:1], what=what, width_in=width_in, dpi=dpi)
        if not drawn:
            return []
        if len(drawn[0][1]) <= MAX_PNG_BYTES:
            return drawn
    log.warning("a chart of %s was left out of the Teams card: %d bytes even at %d px wide", what,
                len(drawn[0][1]), int(SIZES[-1][0] * SIZES[-1][1]))
    return []
