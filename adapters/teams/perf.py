"""A documented fix for botbuilder's per-activity CPU cost, without forking it.

CloudAdapter builds a new msrest ConnectorClient for every activity. Each one constructs a
`msrest.universal_http.requests.ClientRetryPolicy`, whose `__init__` computes
`[i for i in range(999) if i not in self.safe_codes]` with `safe_codes` a ~500-item *list*:
about 500,000 comparisons, ~16 ms of CPU per request on this class of machine, which capped a
stock CloudAdapter at ~60 activities/s. The class attribute made a frozenset gives the same
retry codes in microseconds. The fix is idempotent and changes no behaviour.
"""

from __future__ import annotations

from msrest.universal_http.requests import ClientRetryPolicy


def speed_up_msrest() -> None:
    if not isinstance(ClientRetryPolicy.safe_codes, frozenset):
        ClientRetryPolicy.safe_codes = frozenset(ClientRetryPolicy.safe_codes)  # type: ignore[assignment]
