"""Plain words for each failure an asker can meet; the adapter adds the Retry affordance and request id."""

from __future__ import annotations

from agent.errors import ErrorKind


def describe_error(kind: ErrorKind, *, endpoint: str, timeout_s: float, retry_after: float | None = None,
                   detail: str = "", as_user: bool = False) -> str:
    """Only the agent's own failure carries its message (already clipped to one line by agent.errors).
    `as_user`: the question was asked with the asker's own token (HEALTHBOT_IDENTITY=user), so a
    refused token or permission is theirs, not healthbot's."""
    wait = f" Try again in {max(1, round(retry_after))} s." if retry_after else ""
    if kind == ErrorKind.AGENT_FAILED:
        return f"The Health Monitor agent failed while answering: {detail or 'no reason given'}"
    if as_user and kind == ErrorKind.PERMISSION_DENIED:
        return (f"Your Databricks account may not query the serving endpoint `{endpoint}`. Ask a workspace admin "
                "for CAN_QUERY on it.")
    if as_user and kind == ErrorKind.AUTH:
        return ("Databricks did not accept your connected account's token. Try again; if it keeps happening, say "
                "`disconnect` and connect again.")
    return {
        ErrorKind.TIMEOUT: f"The Health Monitor did not answer within {timeout_s:g} s.",
        ErrorKind.WAKING_UP: "The Health Monitor endpoint is still waking up from scale-to-zero and was not ready in time.",
        ErrorKind.RATE_LIMITED: f"The Health Monitor endpoint is rate limited right now.{wait}",
        ErrorKind.PERMISSION_DENIED: f"healthbot is not allowed to query the serving endpoint `{endpoint}`. An admin must grant it CAN_QUERY.",
        ErrorKind.NOT_FOUND: f"The serving endpoint `{endpoint}` does not exist in this workspace. Check HEALTHBOT_ENDPOINT_NAME.",
        ErrorKind.BAD_REQUEST: "The Health Monitor endpoint rejected the request (it may expect another HEALTHBOT_ENDPOINT_FORMAT).",
        ErrorKind.BAD_RESPONSE: "The Health Monitor endpoint answered, but not in a format healthbot can read.",
        ErrorKind.UNAVAILABLE: "The Health Monitor endpoint is unavailable right now.",
        ErrorKind.AUTH: "healthbot has no working Databricks credentials. Check DATABRICKS_HOST and DATABRICKS_TOKEN (or another databricks-sdk login).",
        ErrorKind.THROTTLED: f"You are asking faster than I can answer.{wait}",
        ErrorKind.STORE: "healthbot cannot reach its own database right now, so it could not take your question. "
                         "Please try again in a minute.",
        ErrorKind.SIGN_IN: "Databricks sign-in is not answering right now, so healthbot cannot ask as you. Please try "
                           "again in a minute.",
    }[kind]
