"""Tables in Slack answers, at the wire: a markdown table becomes a `data_table` block (sortable numbers,
paged), the text around it markdown blocks; a workspace that refuses the block gets the markdown table, the
native feedback kept. Cells are checked with slack_sdk's own cell models; the block against the documented
shape (fixture block_data_table.json) through the fake's validator."""

from __future__ import annotations

import json
from typing import Any

from slack_sdk.models.blocks.basic_components import RawNumberObject, RawTextObject

from adapters.slack.tables import content_blocks, data_table, without_data_tables
from bot.tables import segments
from tests.fakes.serving import Scripted, answer_body
from tests.fakes.slack import FakeSlack, fixture
from tests.test_slack import SlackRig, answer_posts, mention, rig  # noqa: F401 (fixture)

TABLE_ANSWER = ("**Costs rose 75% yesterday**: $1,392.\n\nThe biggest drivers:\n\n| Driver | SKU | Cost | Change |\n|---|---|---|---|\n"
                "| nightly_customer_etl | PREMIUM_ALL_PURPOSE_COMPUTE | $712 | +$588 |\n"
                "| bi-serving | PREMIUM_SERVERLESS_SQL_COMPUTE | $1,002.50 | -$5 |\n\nAsk *which job was it?*")


def cells_by_slack_sdk(block: dict[str, Any]) -> None:
    """Every cell rebuilt with slack_sdk's models and validated; the same JSON comes back."""
    for row in block["rows"]:
        for cell in row:
            model = (RawNumberObject(value=cell["value"], text=cell["text"]) if cell["type"] == "raw_number"
                     else RawTextObject(text=cell["text"]))
            model.validate_json()
            assert model.to_dict() == cell


async def test_an_answers_table_arrives_as_a_data_table(rig: SlackRig) -> None:  # noqa: F811
    rig.serving.default = Scripted(200, answer_body(TABLE_ANSWER))
    assert await rig.event(mention()) == 200
    await rig.slack.wait_for(lambda: answer_posts(rig.slack))
    await rig.settle()
    [post] = answer_posts(rig.slack)
    kinds = [b["type"] for b in post["blocks"]]
    assert kinds == ["markdown", "data_table", "markdown", "context", "context_actions"]
    table = post["blocks"][1]
    assert table["caption"] == "The biggest drivers" and table["page_size"] == 2
    assert [c["text"] for c in table["rows"][0]] == ["Driver", "SKU", "Cost", "Change"]
    assert table["rows"][2][2:] == [{"type": "raw_number", "value": 1002.5, "text": "$1,002.50"},
                                    {"type": "raw_number", "value": -5.0, "text": "-$5"}]
    cells_by_slack_sdk(table)
    assert post["blocks"][2]["text"] == "Ask *which job was it?*"


async def test_a_workspace_that_refuses_the_block_gets_the_markdown_table(rig: SlackRig) -> None:  # noqa: F811
    rig.slack.native_tables = False
    rig.serving.default = Scripted(200, answer_body(TABLE_ANSWER))
    assert await rig.event(mention()) == 200
    await rig.slack.wait_for(lambda: answer_posts(rig.slack))
    await rig.settle()
    [post] = answer_posts(rig.slack)
    assert [b["type"] for b in post["blocks"]] == ["markdown", "context", "context_actions"]  # native feedback kept
    assert "| nightly_customer_etl | PREMIUM_ALL_PURPOSE_COMPUTE | $712 | +$588 |" in post["blocks"][0]["text"]
    assert any(p.get("_refused", "").startswith("unsupported type: data_table") for p in
               rig.slack.called("chat.postMessage") + rig.slack.called("chat.update"))


def test_the_documented_block_passes_and_healthbot_keeps_to_its_limits() -> None:
    documented = fixture("block_data_table.json")
    assert FakeSlack()._refused_blocks([documented]) == ""
    cells_by_slack_sdk(documented)
    [table] = [s for s in segments("| Driver | SKU | Cost |\n|---|---|---|\n| nightly_customer_etl | PREMIUM_ALL_PURPOSE_COMPUTE | $607 |\n"
                                   "| bi-serving | PREMIUM_SERVERLESS_SQL_COMPUTE | $277 |") if not isinstance(s, str)]
    assert data_table(table, "Cost by driver, yesterday") == {**documented, "page_size": 2}
    rows = "\n".join(f"| job_{i} | ${i} |" for i in range(101))
    too_long = content_blocks(f"Spend:\n\n| Job | Cost |\n|---|---|\n{rows}")
    assert [b["type"] for b in too_long] == ["markdown"]  # 101 rows: beyond the block, markdown it stays
    two = content_blocks("A\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\nB\n\n| c | d |\n|---|---|\n| 3 | 4 |")
    assert [b["type"] for b in two] == ["markdown", "data_table", "markdown"] and "| c | d |" in two[2]["text"]
    fenced = content_blocks("```\n| a | b |\n|---|---|\n| 1 | 2 |\n```")
    assert fenced == [{"type": "markdown", "text": "```\n| a | b |\n|---|---|\n| 1 | 2 |\n```"}]
    assert FakeSlack()._refused_blocks([*two, two[1]]) != ""  # one data_table a message
    back = without_data_tables(content_blocks(TABLE_ANSWER))
    assert back is not None and json.dumps(back).count("data_table") == 0 and len(back) == 1


async def test_a_refusal_that_names_its_block_costs_only_that_block() -> None:
    """Slack names the refused block (`[json-pointer:/blocks/N/type]`): only that one gets its older form;
    a refusal naming none costs the newest first (charts, then the table, then the native feedback)."""
    from slack_sdk.errors import SlackApiError
    from slack_sdk.web.async_slack_response import AsyncSlackResponse

    from adapters.slack.client import with_block_fallbacks
    from adapters.slack.translate import feedback_block

    chart = fixture("block_data_visualization_bar.json")
    blocks = [*content_blocks(TABLE_ANSWER), chart, feedback_block("r1")]
    kinds = [b["type"] for b in blocks]

    def refusing(refused: str, named: bool) -> Any:
        tried: list[list[str]] = []

        async def send(sent: list[dict[str, Any]]) -> None:
            tried.append([b["type"] for b in sent])
            if refused in tried[-1]:
                pointer = f" [json-pointer:/blocks/{tried[-1].index(refused)}/type]" if named else ""
                data = {"ok": False, "error": "invalid_blocks", "errors": [f"unsupported type: {refused}{pointer}"]}
                raise SlackApiError("refused", AsyncSlackResponse(client=None, http_verb="POST", api_url="", req_args={},
                                                                  data=data, headers={}, status_code=200))
        return send, tried

    send, tried = refusing("context_actions", named=True)
    sent = await with_block_fallbacks(send, blocks)
    assert [b["type"] for b in sent] == [k if k != "context_actions" else "actions" for k in kinds] and len(tried) == 2
    send, tried = refusing("context_actions", named=False)
    sent = await with_block_fallbacks(send, blocks)
    assert [b["type"] for b in sent] == ["markdown", "actions"] and len(tried) == 4  # charts, table, then feedback
