"""run_turn through litellm against the scripted fake OpenAI server (a real HTTP server)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from massgen_proto.messages import (
    ModelRetrying,
    PresentationFinished,
    TurnFailed,
    Verdict,
    WorkflowCall,
    WorkflowSubmission,
)
from massgen_worker.llm import LiteLLMModel
from massgen_worker.turn import RetryPolicy, budget_spent_message, run_turn
from worker_helpers import READ_TOOL, Tools

from tests.support.fakes import answer, both, error, hang, malformed, text, vote_first
from tests.support.fakes.openai_server import tool_call
from tests.support.fakes.turns import Orchestrator, make_turn_request, workflow_tools

FAST = RetryPolicy(retries=2, base_delay=0.01, max_delay=0.02)


async def go(req, orch, policy=FAST, tools=None):
    return await run_turn(
        req, LiteLLMModel(req.backend), orch.submit, orch.emit, policy=policy, tools=tools
    )


def rejected(message):
    return Verdict(status="rejected", message=message)


async def test_accepted_answer(fake_model):
    # 8 pieces in all: 3 words, then the call (its name, its arguments in 4 pieces).
    fake_model.script("m", [answer("The answer is 4.", tokens=8)])
    req = make_turn_request("m", fake_model.base_url)
    orch = Orchestrator()
    outcome = await go(req, orch)
    assert outcome.status == "accepted"
    assert orch.reports[0].calls == [
        WorkflowCall(name="new_answer", arguments={"content": "The answer is 4."})
    ]
    content = [e.text for e in orch.events if e.kind == "chunk" and e.channel == "content"]
    assert content[0] == "w0 " and "".join(content) == "w0 w1 w2 "  # first piece at once
    answer_text = [e.text for e in orch.events if e.kind == "chunk" and e.channel == "answer"]
    assert "".join(answer_text) == "The answer is 4."
    assert any(e.kind == "token_usage" for e in orch.events)
    sent = fake_model.requests[0]
    assert sent.model == "m" and sent.tool_choice == "required"
    assert [t["function"]["name"] for t in sent.tools] == ["new_answer"]
    assert sent.body["stream_options"] == {"include_usage": True}


CODE = "```python\ndef add(a, b):\n    return a + b\n```"


@pytest.mark.parametrize("content", ["", "see above", "<your complete answer>"])
async def test_empty_answer_call_submits_the_streamed_text(fake_model, content):
    # The answer is written as text; the call only commits it (MassGen's rule).
    fake_model.script("m", [answer(content, before=f"Here it is:\n{CODE}")])
    req = make_turn_request("m", fake_model.base_url)
    orch = Orchestrator()
    outcome = await go(req, orch)
    assert outcome.status == "accepted"
    assert orch.reports[0].calls == [
        WorkflowCall(name="new_answer", arguments={"content": f"Here it is:\n{CODE}"})
    ]
    content_chunks = [e.text for e in orch.events if e.kind == "chunk" and e.channel == "content"]
    assert "".join(content_chunks) == f"Here it is:\n{CODE}"  # streamed as it was written


async def test_answer_in_the_call_wins_over_text(fake_model):
    # Hosted models may still put the answer in the call, after some text.
    fake_model.script("m", [answer("The answer is 4.", before="Let me think. ")])
    req = make_turn_request("m", fake_model.base_url)
    orch = Orchestrator()
    await go(req, orch)
    assert orch.reports[0].calls == [
        WorkflowCall(name="new_answer", arguments={"content": "The answer is 4."})
    ]


async def test_empty_answer_call_without_text_is_left_to_the_orchestrator(fake_model):
    fake_model.script("m", [answer("")])
    req = make_turn_request("m", fake_model.base_url, max_attempts=1)
    orch = Orchestrator(rejected("new_answer needs your answer"))
    await go(req, orch)
    assert orch.reports[0].calls == [WorkflowCall(name="new_answer", arguments={"content": ""})]


async def test_a_vote_keeps_its_arguments_whatever_the_text(fake_model):
    fake_model.script("m", [vote_first("right", before="agent1 handles every case.")])
    req = make_turn_request("m", fake_model.base_url, tools=workflow_tools(["agent1"]))
    orch = Orchestrator()
    await go(req, orch)
    assert orch.reports[0].calls == [
        WorkflowCall(name="vote", arguments={"agent_id": "agent1", "reason": "right"})
    ]


async def test_rejection_is_fed_back_and_retried(fake_model):
    fake_model.script("m", [answer("4"), vote_first("agent1 is right")])
    req = make_turn_request("m", fake_model.base_url, tools=workflow_tools(["agent1", "agent2"]))
    orch = Orchestrator(rejected("Your answer is identical to agent2's answer; vote instead."))
    outcome = await go(req, orch)
    assert (outcome.status, outcome.attempts) == ("accepted", 2)
    assert orch.reports[1].calls == [
        WorkflowCall(name="vote", arguments={"agent_id": "agent1", "reason": "agent1 is right"})
    ]
    second = fake_model.requests[1].messages
    assert second[-2]["role"] == "assistant"
    assert second[-2]["tool_calls"][0]["function"]["name"] == "new_answer"
    assert second[-1]["role"] == "tool"
    assert second[-1]["tool_call_id"] == second[-2]["tool_calls"][0]["id"]
    assert second[-1]["content"] == "Your answer is identical to agent2's answer; vote instead."


async def test_three_rejections_fail(fake_model):
    fake_model.script("m", [both(), malformed(), text("no tools")])
    req = make_turn_request("m", fake_model.base_url, tools=workflow_tools(["agent1"]))
    orch = Orchestrator(rejected("both tools"), rejected("bad json"), rejected("call a tool"))
    outcome = await go(req, orch)
    assert outcome.status == "failed"
    assert [len(r.calls) for r in orch.reports[:3]] == [2, 1, 0]
    assert orch.reports[1].calls[0].arguments == '{"content": "unterminated'
    assert isinstance(orch.reports[3], TurnFailed)
    assert orch.reports[3].error.endswith("call a tool")
    assert len(fake_model.requests) == 3
    assert fake_model.requests[2].messages[-1]["role"] == "tool"


async def test_no_tool_call_submits_zero_calls(fake_model):
    fake_model.script("m", [text("I refuse to use tools")])
    req = make_turn_request("m", fake_model.base_url, max_attempts=1)
    orch = Orchestrator(rejected("You must call a workflow tool."))
    outcome = await go(req, orch)
    assert orch.reports[0].model_copy(update={"usage": None}) == WorkflowSubmission(
        run_id=req.run_id, turn_id=req.turn_id, attempt=1, calls=[]
    )
    assert orch.reports[0].usage.completion_tokens > 0
    assert outcome.status == "failed"


async def test_server_error_then_success_is_retried(fake_model):
    fake_model.script("m", [error(500, "transient boom"), answer("4")])
    req = make_turn_request("m", fake_model.base_url).model_copy(update={"token": "cap-7"})
    orch = Orchestrator()
    outcome = await go(req, orch)
    assert outcome.status == "accepted" and outcome.model_calls == 2
    assert len(fake_model.requests) == 2  # litellm itself does not retry behind our back
    # The orchestrator heard of the failure while the worker retried.
    retrying, submission, usage = orch.reports
    assert usage.kind == "turn_usage" and usage.usage.completion_tokens > 0
    assert isinstance(retrying, ModelRetrying)
    assert (retrying.run_id, retrying.turn_id, retrying.token) == (req.run_id, req.turn_id, "cap-7")
    assert (retrying.status, retrying.rate_limited) == (500, False)
    assert "transient boom" in retrying.error
    assert isinstance(submission, WorkflowSubmission) and submission.token == "cap-7"


async def test_always_500_fails_with_provider_message(fake_model):
    fake_model.script("m", [error(500, "database on fire")] * 3)
    req = make_turn_request("m", fake_model.base_url)
    orch = Orchestrator()
    outcome = await go(req, orch)
    assert outcome.status == "failed"
    assert isinstance(orch.reports[-1], TurnFailed)
    assert "database on fire" in orch.reports[-1].error
    assert orch.reports[-1].error.startswith("provider error after 3 tries")


async def test_auth_error_is_fatal(fake_model):
    fake_model.script("m", [error(401, "Incorrect API key provided")])
    req = make_turn_request("m", fake_model.base_url)
    orch = Orchestrator()
    await go(req, orch)
    assert "Incorrect API key provided" in orch.reports[-1].error
    assert len(fake_model.requests) == 1


async def test_hang_past_deadline(fake_model):
    fake_model.script("m", [hang(10)])
    req = make_turn_request("m", fake_model.base_url, timeout=1.0)
    orch = Orchestrator()
    started = time.monotonic()
    outcome = await go(req, orch)
    assert time.monotonic() - started < 3
    assert outcome.status == "failed" and orch.reports == [
        TurnFailed(run_id=req.run_id, turn_id=req.turn_id, error="turn timed out")
    ]


async def test_presentation_streams(fake_model):
    fake_model.script("m", [text("Final: the answer is 4.", token_delay=0.01)])
    req = make_turn_request("m", fake_model.base_url, phase="present")
    orch = Orchestrator()
    outcome = await go(req, orch)
    assert outcome.status == "presented"
    chunks = [e.text for e in orch.events if e.kind == "chunk"]
    assert chunks[0] == "Final: " and "".join(chunks) == "Final: the answer is 4."
    assert [r.model_copy(update={"usage": None}) for r in orch.reports] == [
        PresentationFinished(
            run_id=req.run_id, turn_id=req.turn_id, content="Final: the answer is 4."
        )
    ]
    assert orch.reports[0].usage.completion_tokens > 0
    assert fake_model.requests[0].tools is None


async def test_cancellation_propagates(fake_model):
    fake_model.script("m", [hang(10)])
    req = make_turn_request("m", fake_model.base_url)
    orch = Orchestrator()
    task = asyncio.create_task(go(req, orch))
    for _ in range(200):
        if fake_model.requests:
            break
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert orch.reports == []


async def test_cancel_as_the_model_call_starts_is_not_lost(fake_model):
    """A restart can cancel a turn at any await of the model call's set-up; the
    cancellation must end the stream, never be swallowed there (it once was, by
    ``asyncio.wait_for`` on Python 3.11, and the cancelled turn ran on)."""
    fake_model.behave("m", lambda body: answer("4", tokens=30, token_delay=0.01))
    req = make_turn_request("m", fake_model.base_url)

    async def consume():
        async for _ in LiteLLMModel(req.backend).stream(
            [{"role": "user", "content": "q"}], req.tools, "required"
        ):
            pass

    await consume()  # warm: litellm loaded, clients made
    for spins in range(8):  # cancel after 0, 1, 2, ... turns of the event loop
        task = asyncio.create_task(consume())
        for _ in range(spins):
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


# -- the tool loop -------------------------------------------------------------------


def names(tools) -> list[str]:
    return [t["function"]["name"] for t in tools or ()]


async def test_fifty_sequential_tool_calls_then_an_answer(fake_model):
    """Real file work: one tool call per response, fifty of them, then the answer."""
    fake_model.script("m", [tool_call(READ_TOOL, {"path": f"f{i}.txt"}) for i in range(50)])
    fake_model.script("m", [answer("done")])
    req = make_turn_request("m", fake_model.base_url)
    orch, tools = Orchestrator(), Tools()
    outcome = await go(req, orch, tools=tools)
    assert (outcome.status, outcome.attempts, outcome.model_calls) == ("accepted", 1, 51)
    assert [r.kind for r in orch.reports] == ["workflow_submission", "turn_usage"]
    assert orch.reports[1].usage.prompt_tokens > orch.reports[0].usage.prompt_tokens
    assert [c.arguments["path"] for c in tools.calls] == [f"f{i}.txt" for i in range(50)]
    sent = fake_model.requests
    assert len(sent) == 51
    assert all(names(r.tools) == ["new_answer", READ_TOOL] for r in sent)
    assert all(r.tool_choice == "required" for r in sent)
    # The last request holds the fifty results, in order, each after its call.
    results = [m for m in sent[-1].messages if m["role"] == "tool"]
    assert [m["content"] for m in results] == [f"contents of f{i}.txt" for i in range(50)]
    calls = [m["tool_calls"][0]["id"] for m in sent[-1].messages if m.get("tool_calls")]
    assert [m["tool_call_id"] for m in results] == calls
    chunks = [e for e in orch.events if e.kind == "chunk" and e.channel == "tool_result"]
    assert len(chunks) == 50


async def test_spent_budget_offers_only_the_workflow_tools(fake_model):
    fake_model.script("m", [tool_call(READ_TOOL, {"path": f"f{i}"}) for i in range(3)])
    fake_model.script("m", [answer("done")])
    req = make_turn_request("m", fake_model.base_url).model_copy(update={"max_tool_calls": 3})
    orch, tools = Orchestrator(), Tools()
    outcome = await go(req, orch, tools=tools)
    assert (outcome.status, outcome.model_calls, len(tools.calls)) == ("accepted", 4, 3)
    sent = fake_model.requests
    assert [names(r.tools) for r in sent] == [["new_answer", READ_TOOL]] * 3 + [["new_answer"]]
    assert sent[3].tool_choice == "required"
    note = sent[3].messages[-1]
    assert note["role"] == "user"
    assert note["content"] == (
        "You have used all 3 tool calls this turn allows. End your turn now with one "
        "workflow call (new_answer); no other tool is offered any more."
    )
    assert sent[3].messages[-2] == {"role": "tool", "tool_call_id": sent[3].messages[-3][
        "tool_calls"][0]["id"], "content": "contents of f2"}  # fmt: skip


async def test_reminder_reaches_the_model_after_a_rejected_tools_only_response(fake_model):
    """The model ignores the spent budget and calls a tool again: that response has no
    workflow call, the orchestrator rejects it, and the model reads the reminder."""
    reads = [tool_call(READ_TOOL, {"path": "a"}), tool_call(READ_TOOL, {"path": "b"})]
    fake_model.script("m", [*reads, answer("done")])
    req = make_turn_request("m", fake_model.base_url).model_copy(update={"max_tool_calls": 1})
    reminder = "You did not call a workflow tool; end your turn with new_answer or vote."
    orch, tools = Orchestrator(rejected(reminder)), Tools()
    outcome = await go(req, orch, tools=tools)
    assert (outcome.status, outcome.attempts) == ("accepted", 2)
    assert orch.reports[0].calls == [] and orch.reports[1].calls[0].name == "new_answer"
    assert len(tools.calls) == 1
    last = fake_model.requests[2].messages
    assert last[-3]["role"] == "assistant"
    assert last[-3]["tool_calls"][0]["function"]["name"] == READ_TOOL
    assert last[-2]["role"] == "tool" and last[-2]["content"] == budget_spent_message(READ_TOOL, 1)
    assert last[-1]["role"] == "user" and last[-1]["content"].startswith(reminder)


async def test_huge_tool_result_is_truncated_with_a_note(fake_model):
    fake_model.script("m", [tool_call(READ_TOOL, {"path": "big.log"}), answer("done")])
    req = make_turn_request("m", fake_model.base_url)
    orch, tools = Orchestrator(), Tools(lambda call: "z" * 50_000)
    outcome = await go(req, orch, tools=tools)  # the default limit: 20,000 characters
    assert outcome.status == "accepted"
    seen = fake_model.requests[1].messages[-1]
    assert seen["role"] == "tool"
    assert seen["content"].startswith("z" * 20_000 + "\n[Tool result truncated:")
    assert "z" * 20_001 not in seen["content"]
    assert "the last 30000 of 50000 characters were cut" in seen["content"]
    assert "narrower" in seen["content"]
    chunk = next(e for e in orch.events if e.kind == "chunk" and e.channel == "tool_result")
    assert json.loads(chunk.text)["content"] == seen["content"]
