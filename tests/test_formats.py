"""Table-driven: every response shape in the fixtures parses to the same kind of answer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.base import AgentRequest, Answer, ChatMessage
from agent.demo.endpoint import read_request, write_response
from agent.formats import (
    FORMATS,
    UnreadableResponse,
    build_request,
    format_for_task,
    parse_response,
)

FIXTURES = Path(__file__).parent / "fixtures"


def load(name: str) -> object:
    return json.loads((FIXTURES / name).read_text())


@pytest.mark.parametrize(
    "name",
    [
        "databricks/serving_invocations_chat_agent_response.json",
        "databricks/serving_invocations_responses_agent_response.json",
        "databricks/serving_invocations_responses_agent_response_with_tools.json",
        "databricks/serving_invocations_chat_completions_response.json",
        "databricks/serving_invocations_pyfunc_response.json",
        "mlflow/local_invocations_response_chat_agent_unwrapped.json",
        "mlflow/local_invocations_response_responses_agent_unwrapped.json",
        "mlflow/local_invocations_response_wrapped.json",
    ],
)
def test_fixture_responses_parse(name: str) -> None:
    answer = parse_response(load(name))
    assert answer.content.startswith("Costs rose 42% day over day")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"predictions": [{"content": "x", "sources": [{"title": "Billing", "url": "https://d/b"}, "t2"],
                           "confidence": 87, "domains": "costs, jobs"}]},
         Answer("x", ["Billing (https://d/b)", "t2"], 0.87, ["costs", "jobs"])),
        ({"predictions": {"content": "y", "confidence": "n/a"}}, Answer("y")),
        ({"predictions": [{"messages": [{"role": "assistant", "content": "z"}]}]}, Answer("z")),
        ({"choices": [{"message": {"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}}]},
         Answer("ab")),
        ({"messages": [{"role": "assistant", "content": "first"}, {"role": "tool", "content": "{}"},
                       {"role": "assistant", "content": "final"}], "custom_outputs": {"confidence": 0.5}},
         Answer("first\n\nfinal", confidence=0.5)),  # every assistant message, as the stream shows them
    ],
)
def test_shapes_and_tolerant_fields(body: object, expected: Answer) -> None:
    assert parse_response(body) == expected


@pytest.mark.parametrize("body", [[], {"foo": 1}, {"choices": []}, {"output": [{"type": "function_call"}]},
                                  {"messages": [{"role": "user", "content": "q"}]}, {"predictions": [42]}])
def test_unreadable_shapes_raise(body: object) -> None:
    with pytest.raises(UnreadableResponse):
        parse_response(body)


@pytest.mark.parametrize(("task", "fmt"), [("agent/v1/responses", "responses"), ("agent/v2/chat", "chat_agent"),
                                            ("llm/v1/chat", "chat_completions"), (None, "inputs"), ("custom", "inputs")])
def test_format_for_task(task: str | None, fmt: str) -> None:
    assert format_for_task(task) == fmt


@pytest.mark.parametrize("fmt", FORMATS)
def test_demo_endpoint_round_trips_every_format(fmt: str) -> None:
    """What the client builds, the demo endpoint reads; what it writes, the client parses."""
    request = AgentRequest([ChatMessage("user", "hi")], user_id="ana@example.com", session_id="s-1")
    seen_fmt, seen = read_request(build_request(fmt, request))  # type: ignore[arg-type]
    assert seen_fmt == fmt and seen.messages == request.messages and seen.user_id == "ana@example.com"
    if fmt != "chat_completions":  # the OpenAI shape has no place for a session id
        assert seen.session_id == "s-1"
    answer = Answer("done", ["system.billing.usage"], 0.9, ["costs"])
    assert parse_response(write_response(fmt, answer)) == answer


def test_fixture_requests_are_read_by_the_demo_endpoint() -> None:
    assert read_request(load("databricks/serving_invocations_chat_agent_request.json"))[0] == "chat_agent"
    assert read_request(load("databricks/serving_invocations_responses_agent_request.json"))[0] == "responses"
    assert read_request(load("databricks/serving_invocations_chat_completions_request.json"))[0] == "chat_completions"
    with pytest.raises(ValueError, match="exactly one of the input fields"):
        read_request(load("databricks/serving_invocations_pyfunc_request.json"))
