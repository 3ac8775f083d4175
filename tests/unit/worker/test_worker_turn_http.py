"""run_turn through litellm against the scripted fake OpenAI server (a real HTTP server)."""

from __future__ import annotations

import asyncio
import time

import pytest
from fakes import answer, both, error, hang, malformed, text, vote_first
from fakes.turns import Orchestrator, make_turn_request, workflow_tools
from massgen_proto.messages import (
    PresentationFinished,
    TurnFailed,
    Verdict,
    WorkflowCall,
    WorkflowSubmission,
)
from massgen_worker.llm import LiteLLMModel
from massgen_worker.turn import RetryPolicy, run_turn

FAST = RetryPolicy(retries=2, base_delay=0.01, max_delay=0.02)


async def go(req, orch, policy=FAST):
    return await run_turn(req, LiteLLMModel(req.backend), orch.submit, orch.emit, policy=policy)


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
    assert [e.text for e in orch.events if e.kind == "chunk" and e.channel == "content"] == [
        "w0 ", "w1 ", "w2 "]
    assert any(e.kind == "token_usage" for e in orch.events)
    sent = fake_model.requests[0]
    assert sent.model == "m" and sent.tool_choice == "required"
    assert [t["function"]["name"] for t in sent.tools] == ["new_answer"]
    assert sent.body["stream_options"] == {"include_usage": True}


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
    assert orch.reports[0] == WorkflowSubmission(
        run_id=req.run_id, turn_id=req.turn_id, attempt=1, calls=[])
    assert outcome.status == "failed"


async def test_server_error_then_success_is_retried(fake_model):
    fake_model.script("m", [error(500, "transient boom"), answer("4")])
    req = make_turn_request("m", fake_model.base_url)
    outcome = await go(req, Orchestrator())
    assert outcome.status == "accepted" and outcome.model_calls == 2
    assert len(fake_model.requests) == 2  # litellm itself does not retry behind our back


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
        TurnFailed(run_id=req.run_id, turn_id=req.turn_id, error="turn timed out")]


async def test_presentation_streams(fake_model):
    fake_model.script("m", [text("Final: the answer is 4.", token_delay=0.01)])
    req = make_turn_request("m", fake_model.base_url, phase="present")
    orch = Orchestrator()
    outcome = await go(req, orch)
    assert outcome.status == "presented"
    chunks = [e.text for e in orch.events if e.kind == "chunk"]
    assert chunks == ["Final: ", "the ", "answer ", "is ", "4."]
    assert orch.reports == [PresentationFinished(
        run_id=req.run_id, turn_id=req.turn_id, content="Final: the answer is 4.")]
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
        async for _ in LiteLLMModel(req.backend).stream([{"role": "user", "content": "q"}],
                                                        req.tools, "required"):
            pass

    await consume()  # warm: litellm loaded, clients made
    for spins in range(8):  # cancel after 0, 1, 2, ... turns of the event loop
        task = asyncio.create_task(consume())
        for _ in range(spins):
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
