"""A ResponsesAgent built with MLflow's own classes and helpers, served by MLflow's AgentServer
(`mlflow.genai.agent_server`, the server the Databricks Apps agent templates run).

It answers as an orchestrator does: a short preamble, a sub-agent call and its output, then the
answer with sources in `custom_outputs`. A question containing "fail" makes it raise after its first
words, which AgentServer turns into `data: {"error": ...}` then `data: [DONE]` with HTTP 200.
"""

from __future__ import annotations

import uuid
from collections.abc import Generator

from mlflow.genai.agent_server import AgentServer, invoke, stream
from mlflow.pyfunc import ResponsesAgent
from mlflow.types.responses import ResponsesAgentRequest, ResponsesAgentResponse, ResponsesAgentStreamEvent


class CostAgent(ResponsesAgent):
    def predict(self, request: ResponsesAgentRequest) -> ResponsesAgentResponse:
        done = [event.item for event in self.predict_stream(request) if event.type == "response.output_item.done"]
        return ResponsesAgentResponse(output=done, custom_outputs={"sources": ["system.billing.usage"],
                                                                   "confidence": 0.9, "domains": ["costs"]})

    def predict_stream(self, request: ResponsesAgentRequest) -> Generator[ResponsesAgentStreamEvent, None, None]:
        question = str(request.input[-1].content)
        preamble_id, answer_id = str(uuid.uuid4()), str(uuid.uuid4())
        yield ResponsesAgentStreamEvent(**self.create_text_delta("Let me check the billing data.", item_id=preamble_id))
        if "fail" in question:
            raise RuntimeError("warehouse 4b2 is stopped")
        yield ResponsesAgentStreamEvent(type="response.output_item.done",
                                        item=self.create_text_output_item("Let me check the billing data.", preamble_id))
        yield ResponsesAgentStreamEvent(type="response.output_item.done", item=self.create_function_call_item(
            id=str(uuid.uuid4()), call_id="call_1", name="cost_agent", arguments='{"days": 2}'))
        yield ResponsesAgentStreamEvent(type="response.output_item.done", item=self.create_function_call_output_item(
            call_id="call_1", output="TOOL OUTPUT: serverless 1234 DBU"))
        for piece in ("Costs rose ", "42% day over day."):
            yield ResponsesAgentStreamEvent(**self.create_text_delta(piece, item_id=answer_id))
        yield ResponsesAgentStreamEvent(type="response.output_item.done",
                                        item=self.create_text_output_item("Costs rose 42% day over day.", answer_id),
                                        custom_outputs={"sources": ["system.billing.usage"], "confidence": 0.9,
                                                        "domains": ["costs"]})


AGENT = CostAgent()


@invoke()
def answer(request: ResponsesAgentRequest) -> ResponsesAgentResponse:
    return AGENT.predict(request)


@stream()
def answer_stream(request: ResponsesAgentRequest) -> Generator[ResponsesAgentStreamEvent, None, None]:
    yield from AGENT.predict_stream(request)


app = AgentServer("ResponsesAgent").app
