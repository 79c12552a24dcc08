"""A ChatAgent built with MLflow's own classes, streaming as MLflow's LangGraph ChatAgent does
(mlflow/langchain/chat_agent_langgraph.py: every node's messages yielded whole as chunks, tool
messages included), served by MLflow's AgentServer (no agent type: requests and chunks as they are).
"""

from __future__ import annotations

import uuid
from collections.abc import Generator
from typing import Any

from mlflow.genai.agent_server import AgentServer, invoke, stream
from mlflow.pyfunc import ChatAgent
from mlflow.types.agent import ChatAgentChunk, ChatAgentMessage, ChatAgentResponse, ChatContext


class CostChatAgent(ChatAgent):
    def predict(self, messages: list[ChatAgentMessage], context: ChatContext | None = None,
                custom_inputs: dict[str, Any] | None = None) -> ChatAgentResponse:
        chunks = list(self.predict_stream(messages, context, custom_inputs))
        return ChatAgentResponse(messages=[chunk.delta for chunk in chunks], custom_outputs=chunks[-1].custom_outputs)

    def predict_stream(self, messages: list[ChatAgentMessage], context: ChatContext | None = None,
                       custom_inputs: dict[str, Any] | None = None) -> Generator[ChatAgentChunk, None, None]:
        call = {"id": "call_1", "type": "function", "function": {"name": "cost_agent", "arguments": "{}"}}
        yield ChatAgentChunk(delta=ChatAgentMessage(role="assistant", content="", id=str(uuid.uuid4()),
                                                    tool_calls=[call]))
        if "fail" in str(messages[-1].content):
            raise RuntimeError("warehouse 4b2 is stopped")
        yield ChatAgentChunk(delta=ChatAgentMessage(role="tool", content="TOOL OUTPUT: serverless 1234 DBU",
                                                    name="cost_agent", tool_call_id="call_1", id=str(uuid.uuid4())))
        yield ChatAgentChunk(delta=ChatAgentMessage(role="assistant", content="Costs rose 42% day over day.",
                                                    id=str(uuid.uuid4())),
                             custom_outputs={"sources": ["system.billing.usage"], "confidence": 0.9,
                                             "domains": ["costs"]})


AGENT = CostChatAgent()


def _messages(request: dict[str, Any]) -> list[ChatAgentMessage]:
    return [ChatAgentMessage(**message) for message in request["messages"]]


@invoke()
def answer(request: dict[str, Any]) -> dict[str, Any]:
    return AGENT.predict(_messages(request)).model_dump(exclude_none=True)


@stream()
def answer_stream(request: dict[str, Any]) -> Generator[dict[str, Any], None, None]:
    for chunk in AGENT.predict_stream(_messages(request)):
        yield chunk.model_dump(exclude_none=True)


app = AgentServer().app
