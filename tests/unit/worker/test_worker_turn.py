"""run_turn driven by an in-process scripted Model (no HTTP, no NATS)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from massgen_proto.events import Chunk, TokenUsage
from massgen_proto.messages import (
    ModelRetrying,
    PresentationFinished,
    TurnFailed,
    Verdict,
    WorkflowCall,
    WorkflowSubmission,
)
from massgen_proto.messages import Usage as UsageSoFar
from massgen_worker.llm import FatalModelError, RetryableModelError
from massgen_worker.stream import StreamDelta, ToolCallDelta, Usage
from massgen_worker.turn import (
    RetryPolicy,
    budget_spent_message,
    run_turn,
    truncate_tool_result,
    unavailable_tool_message,
    workflow_calls,
)
from worker_helpers import READ_TOOL, Tools

from tests.support.fakes.turns import Orchestrator, make_turn_request, workflow_tools

FAST = RetryPolicy(retries=2, base_delay=0.001, max_delay=0.002)


@pytest.mark.parametrize(
    ("arguments", "content"),
    [
        ("{}", "TEXT"),
        ('{"content": ""}', "TEXT"),
        ('{"content": "  "}', "TEXT"),
        ('{"content": "See above."}', "TEXT"),
        ('{"content": "(the answer above)"}', "TEXT"),
        ('{"content": "<your complete answer>"}', "TEXT"),
        ('{"content": "42"}', "42"),  # a short real answer is never a placeholder
        ('{"content": "yes"}', "yes"),
        ('{"content": "The answer is 4."}', "The answer is 4."),
    ],
)
def test_an_empty_or_placeholder_answer_is_the_text_before_the_call(arguments, content):
    from massgen_worker.stream import AssistantMessage, ToolCall

    calls = (ToolCall("c1", "new_answer", arguments), ToolCall("c2", "read_file", "{}"))
    message = AssistantMessage(" TEXT\n", "", calls, None, "tool_calls")
    assert workflow_calls(message, {"new_answer", "vote"}) == [
        WorkflowCall(name="new_answer", arguments={"content": content})
    ]


def test_without_text_or_with_bad_json_the_call_is_left_as_written():
    from massgen_worker.stream import AssistantMessage, ToolCall

    empty = AssistantMessage("", "", (ToolCall("c1", "new_answer", "{}"),), None, "tool_calls")
    assert workflow_calls(empty, {"new_answer"}) == [WorkflowCall(name="new_answer", arguments={})]
    broken = AssistantMessage("T", "", (ToolCall("c1", "new_answer", '{"co'),), None, None)
    assert workflow_calls(broken, {"new_answer"})[0].arguments == '{"co'
    call = ToolCall("c1", "vote", '{"agent_id": "agent1"}')
    vote = AssistantMessage("T", "", (call,), None, None)
    assert workflow_calls(vote, {"vote"})[0].arguments == {"agent_id": "agent1"}


def content(*pieces: str) -> list[StreamDelta]:
    return [StreamDelta(content=p) for p in pieces] + [
        StreamDelta(finish_reason="stop", usage=Usage(10, len(pieces)))
    ]


def call(name: str, arguments: dict | str, index: int = 0, id: str | None = None):
    raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return [
        StreamDelta(tool_calls=(ToolCallDelta(index, id=id or f"c{index}", name=name),)),
        StreamDelta(tool_calls=(ToolCallDelta(index, arguments=raw[:5]),)),
        StreamDelta(tool_calls=(ToolCallDelta(index, arguments=raw[5:]),)),
    ]


def answer(text: str) -> list[StreamDelta]:
    return [
        StreamDelta(content="thinking"),
        *call("new_answer", {"content": text}),
        StreamDelta(finish_reason="tool_calls", usage=Usage(20, 5)),
    ]


class ScriptedModel:
    """A Model whose responses are scripted; fails on extra calls and leftovers."""

    def __init__(self, *responses):
        self.responses = list(responses)
        self.calls: list[dict] = []

    async def stream(self, messages, tools, tool_choice):
        self.calls.append(
            {
                "messages": json.loads(json.dumps(messages)),
                "tools": tools,
                "tool_choice": tool_choice,
            }
        )
        assert self.responses, "unexpected model call"
        response = self.responses.pop(0)
        if isinstance(response, BaseException):
            raise response
        if callable(response):
            await response()
            response = []
        for delta in response:
            yield delta

    def assert_complete(self):
        assert not self.responses, f"{len(self.responses)} scripted responses unused"


def rejected(message: str) -> Verdict:
    return Verdict(status="rejected", message=message)


async def go(request, model, orch, policy=FAST, tools=None):
    outcome = await run_turn(request, model, orch.submit, orch.emit, policy=policy, tools=tools)
    model.assert_complete()
    return outcome


def request(**kw):
    return make_turn_request("m", "http://127.0.0.1:1/v1", **kw)


async def test_accepted_answer_streams_chunks_and_usage():
    req = request()
    model, orch = ScriptedModel(answer("4")), Orchestrator()
    outcome = await go(req, model, orch)
    assert (outcome.status, outcome.attempts, outcome.model_calls) == ("accepted", 1, 1)
    assert orch.reports == [
        WorkflowSubmission(
            run_id=req.run_id,
            turn_id=req.turn_id,
            attempt=1,
            calls=[WorkflowCall(name="new_answer", arguments={"content": "4"})],
            usage=UsageSoFar(prompt_tokens=20, completion_tokens=5),
        )
    ]
    kinds = [(e.kind, getattr(e, "channel", None)) for e in orch.events]
    assert kinds == [
        ("chunk", "content"),
        ("chunk", "answer"),
        ("chunk", "tool_call"),
        ("token_usage", None),
    ]
    first, answer_text, tool_call, usage = orch.events
    assert isinstance(first, Chunk) and first.text == "thinking"
    assert answer_text.text == "4"
    assert (first.run_id, first.turn_id, first.label, first.agent) == (
        req.run_id,
        req.turn_id,
        "agent1",
        "id-agent1",
    )
    assert json.loads(tool_call.text) == {
        "id": "c0",
        "name": "new_answer",
        "arguments": {"content": "4"},
    }
    assert isinstance(usage, TokenUsage) and (usage.prompt_tokens, usage.completion_tokens) == (
        20,
        5,
    )
    assert model.calls[0]["tool_choice"] == "required"
    assert model.calls[0]["tools"] == req.tools


async def test_rejection_is_fed_back_as_tool_result_and_retried():
    req = request(tools=workflow_tools(["agent1"]))
    model = ScriptedModel(
        [
            *call("vote", {"agent_id": "agent7", "reason": "x"}, id="v1"),
            StreamDelta(finish_reason="tool_calls"),
        ],
        answer("4"),
    )
    orch = Orchestrator(rejected("agent7 has no answer; valid labels: agent1"))
    outcome = await go(req, model, orch)
    assert (outcome.status, outcome.attempts) == ("accepted", 2)
    assert [r.attempt for r in orch.reports] == [1, 2]
    history = model.calls[1]["messages"]
    assert history[-2] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "v1",
                "type": "function",
                "function": {"name": "vote", "arguments": '{"agent_id": "agent7", "reason": "x"}'},
            }
        ],
    }
    assert history[-1] == {
        "role": "tool",
        "tool_call_id": "v1",
        "content": "agent7 has no answer; valid labels: agent1",
    }
    results = [e for e in orch.events if getattr(e, "channel", None) == "tool_result"]
    assert json.loads(results[0].text)["content"].startswith("agent7 has no answer")


async def test_three_rejections_fail_the_turn_with_the_last_rejection():
    req = request()
    model = ScriptedModel(answer("a"), answer("b"), answer("c"))
    orch = Orchestrator(
        rejected("too similar 1"), rejected("too similar 2"), rejected("too similar 3")
    )
    outcome = await go(req, model, orch)
    assert outcome.status == "failed" and outcome.attempts == 3
    failed = orch.reports[-1]
    assert isinstance(failed, TurnFailed)
    assert failed.error.endswith("too similar 3")
    assert len(orch.reports) == 4


async def test_no_tool_call_is_submitted_with_zero_calls_and_reminder_follows():
    req = request()
    model = ScriptedModel(content("I think ", "it is 4"), answer("4"))
    orch = Orchestrator(rejected("You must call new_answer or vote."))
    outcome = await go(req, model, orch)
    assert outcome.status == "accepted"
    assert orch.reports[0].calls == []
    assert model.calls[1]["messages"][-2:] == [
        {"role": "assistant", "content": "I think it is 4"},
        {"role": "user", "content": "You must call new_answer or vote."},
    ]


async def test_non_workflow_tool_call_gets_not_available_and_loop_continues():
    req = request()
    model = ScriptedModel(
        [
            *call("mcp__fs__read", {"path": "/etc"}, id="m1"),
            StreamDelta(finish_reason="tool_calls"),
        ],
        answer("4"),
    )
    orch = Orchestrator()
    outcome = await go(req, model, orch)
    assert outcome.status == "accepted" and outcome.model_calls == 2
    assert len(orch.reports) == 1 and orch.reports[0].attempt == 1
    assert model.calls[1]["messages"][-1] == {
        "role": "tool",
        "tool_call_id": "m1",
        "content": unavailable_tool_message("mcp__fs__read"),
    }


async def test_budget_spent_then_tools_only_response_is_submitted_without_calls():
    """Past the tool budget only workflow tools are offered; a model calling another
    tool anyway is submitted with no workflow call (the orchestrator rejects it)."""
    req = request(max_attempts=1).model_copy(update={"max_tool_calls": 2})
    mcp = [*call("mcp__x__y", {}), StreamDelta(finish_reason="tool_calls")]
    model = ScriptedModel(mcp, mcp, mcp)
    orch = Orchestrator(rejected("no workflow call"))
    outcome = await go(req, model, orch)
    assert outcome.status == "failed" and outcome.model_calls == 3
    assert orch.reports[0].calls == []
    assert [c["tools"] for c in model.calls] == [req.tools] * 3  # no MCP tools here at all
    results = [json.loads(e.text)["content"] for e in orch.events
               if getattr(e, "channel", None) == "tool_result"]  # fmt: skip
    assert results == [unavailable_tool_message("mcp__x__y")] * 2
    assert model.calls[2]["messages"][-1]["role"] == "user"
    assert "used all 2 tool calls" in model.calls[2]["messages"][-1]["content"]


async def test_stale_verdict_stops_quietly():
    model, orch = ScriptedModel(answer("4")), Orchestrator(Verdict(status="stale"))
    outcome = await go(request(), model, orch)
    assert outcome.status == "stale"
    assert len(orch.reports) == 1


async def test_retryable_error_then_success():
    model = ScriptedModel(RetryableModelError("overloaded", 529), answer("4"))
    orch = Orchestrator()
    outcome = await go(request(), model, orch)
    assert outcome.status == "accepted" and outcome.model_calls == 2
    assert [r.kind for r in orch.reports] == ["model_retrying", "workflow_submission"]
    assert (orch.reports[0].error, orch.reports[0].status) == ("overloaded", 529)
    assert orch.reports[0].rate_limited is False


async def test_rate_limit_is_reported_once_per_model_call_before_the_backoff():
    slept: list[float] = []
    orch = Orchestrator()

    async def sleep(seconds):
        # The report is sent before sleeping: the orchestrator knows while we wait.
        slept.append((seconds, [r.kind for r in orch.reports]))

    limited = RetryableModelError("slow down", 429)
    model = ScriptedModel(limited, limited, answer("4"))
    outcome = await run_turn(request(), model, orch.submit, orch.emit, policy=FAST, sleep=sleep)
    model.assert_complete()
    assert outcome.status == "accepted" and outcome.model_calls == 3
    assert [r.kind for r in orch.reports] == ["model_retrying", "workflow_submission"]
    assert orch.reports[0].rate_limited is True and orch.reports[0].status == 429
    assert [kinds for _, kinds in slept] == [["model_retrying"]] * 2


async def test_fatal_error_reports_no_model_retrying():
    model = ScriptedModel(FatalModelError("invalid api key", 401))
    orch = Orchestrator()
    await go(request(), model, orch)
    assert [r.kind for r in orch.reports] == ["turn_failed"]


async def test_retries_exhausted_fail_with_provider_message():
    model = ScriptedModel(*[RetryableModelError("upstream 503 busy", 503)] * 3)
    orch = Orchestrator()
    req = request()
    outcome = await go(req, model, orch)
    assert outcome.status == "failed"
    # One ModelRetrying for the model call (on its first failure), not one per retry.
    assert orch.reports == [
        ModelRetrying(run_id=req.run_id, turn_id=req.turn_id, error="upstream 503 busy",
                      status=503, rate_limited=False),
        TurnFailed(run_id=req.run_id, turn_id=req.turn_id,
                   error="provider error after 3 tries: upstream 503 busy"),
    ]  # fmt: skip


async def test_fatal_error_is_not_retried():
    model = ScriptedModel(FatalModelError("invalid api key", 401))
    orch = Orchestrator()
    outcome = await go(request(), model, orch)
    assert outcome.status == "failed" and outcome.model_calls == 1
    assert orch.reports[0].error == "provider error: invalid api key"


async def test_hang_past_deadline_fails_the_turn():
    model = ScriptedModel(lambda: asyncio.sleep(30))
    orch = Orchestrator()
    started = time.monotonic()
    outcome = await go(request(timeout=0.3), model, orch)
    assert time.monotonic() - started < 2
    assert outcome.status == "failed" and orch.reports[0].error == "turn timed out"


async def test_deadline_already_passed_makes_no_model_call():
    model, orch = ScriptedModel(), Orchestrator()
    outcome = await go(request(timeout=-1), model, orch)
    assert outcome.error == "turn timed out" and outcome.model_calls == 0


async def test_presentation_streams_content_and_reports_it():
    req = request(phase="present")
    model, orch = ScriptedModel(content("The ", "answer ", "is 4.")), Orchestrator()
    outcome = await go(req, model, orch)
    assert outcome.status == "presented"
    assert model.calls[0]["tools"] is None and model.calls[0]["tool_choice"] is None
    # The first piece at once, the rest batched (they arrive together here).
    assert [e.text for e in orch.events if e.kind == "chunk"] == ["The ", "answer is 4."]
    assert orch.reports == [
        PresentationFinished(
            run_id=req.run_id,
            turn_id=req.turn_id,
            content="The answer is 4.",
            usage=UsageSoFar(prompt_tokens=10, completion_tokens=3),
        )
    ]


async def test_cancellation_propagates_and_reports_nothing():
    started = asyncio.Event()

    async def hang():
        started.set()
        await asyncio.sleep(30)

    model, orch = ScriptedModel(hang), Orchestrator()
    task = asyncio.create_task(run_turn(request(), model, orch.submit, orch.emit, policy=FAST))
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert orch.reports == []


async def test_submit_failure_propagates():
    async def broken(report):
        raise RuntimeError("orchestrator down")

    async def emit(event):
        pass

    with pytest.raises(RuntimeError, match="orchestrator down"):
        await run_turn(request(), ScriptedModel(answer("4")), broken, emit, policy=FAST)


class SlowEndModel:
    """Streams a complete tool call, then holds the stream's last chunk (usage) until
    ``release`` is set, as a client library busy with its end-of-stream work would."""

    def __init__(self):
        self.release = asyncio.Event()
        self.closed = False

    async def stream(self, messages, tools, tool_choice):
        try:
            for delta in call("new_answer", {"content": "4"}):
                yield delta
            yield StreamDelta(finish_reason="tool_calls")
            await self.release.wait()
            yield StreamDelta(usage=Usage(20, 5))
        finally:
            self.closed = True


async def test_workflow_call_is_submitted_before_the_stream_ends_and_usage_follows():
    model, orch = SlowEndModel(), Orchestrator()
    submitted_before_end = []

    async def submit(report):
        submitted_before_end.append(not model.release.is_set())
        model.release.set()
        return await orch.submit(report)

    outcome = await run_turn(request(), model, submit, orch.emit, policy=FAST)
    assert outcome.status == "accepted"
    # The submission went before the stream's end; the usage that came after is sent
    # in a report of its own once the turn is over (the run's budget counts it).
    assert submitted_before_end == [True, False]
    assert [r.kind for r in orch.reports] == ["workflow_submission", "turn_usage"]
    assert orch.reports[0].usage is None
    assert orch.reports[1].usage == UsageSoFar(prompt_tokens=20, completion_tokens=5)
    # The turn ends only after the stream's end: its usage is reported, the stream closed.
    assert [e.kind for e in orch.events] == ["chunk", "chunk", "token_usage"]
    assert [e.channel for e in orch.events[:2]] == ["answer", "tool_call"]
    assert (orch.events[2].prompt_tokens, orch.events[2].completion_tokens) == (20, 5)
    assert model.closed


async def test_cancelled_turn_also_cancels_a_stream_read_in_the_background():
    model, orch = SlowEndModel(), Orchestrator()
    submitted = asyncio.Event()

    async def submit(report):
        submitted.set()
        await asyncio.sleep(30)  # the orchestrator is slow; the turn is cancelled meanwhile

    task = asyncio.create_task(run_turn(request(), model, submit, orch.emit, policy=FAST))
    await asyncio.wait_for(submitted.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert model.closed
    assert [e.kind for e in orch.events] == ["chunk", "chunk"]  # answer text, tool call


async def test_presentation_report_waits_for_the_runs_pending_usage():
    """The presentation can finish the run: the usage of a vote whose stream end is
    still being read goes out before it (the worker shares one StreamEnds)."""
    from massgen_worker.turn import StreamEnds

    ends = StreamEnds(pause=0)
    log: list[str] = []
    voter = SlowEndModel()

    async def submit(report):
        log.append(report.kind)
        return Verdict(status="accepted")

    async def emit(event):
        log.append(event.kind)

    vote_turn = asyncio.create_task(run_turn(request(run_id="r1"), voter, submit, emit,
                                             policy=FAST, stream_ends=ends))  # fmt: skip
    while "workflow_submission" not in log:
        await asyncio.sleep(0.01)
    presenter = ScriptedModel(content("Final."))
    present_turn = asyncio.create_task(run_turn(request(run_id="r1", phase="present",
                                                        label="agent2"),
                                                presenter, submit, emit, policy=FAST,
                                                stream_ends=ends))  # fmt: skip
    await asyncio.sleep(0.1)
    assert "presentation_finished" not in log  # held back: the vote's usage is pending
    assert log.count("token_usage") == 1  # the presentation's own
    voter.release.set()
    await asyncio.gather(vote_turn, present_turn)
    assert log.count("token_usage") == 2
    assert log[-1] == "presentation_finished"


# -- the tool loop: a budget per turn ------------------------------------------------


def read(path: str, id: str) -> list[StreamDelta]:
    return [*call(READ_TOOL, {"path": path}, id=id), StreamDelta(finish_reason="tool_calls")]


def tool_results(orch) -> list[dict]:
    return [json.loads(e.text) for e in orch.events if getattr(e, "channel", None) == "tool_result"]


def names(tools) -> list[str]:
    return [t["function"]["name"] for t in tools or ()]


async def test_hundred_tool_calls_work_with_the_default_budget():
    req = request()
    assert req.max_tool_calls == 100
    model = ScriptedModel(*[read(f"f{i}", f"r{i}") for i in range(100)], answer("done"))
    orch, tools = Orchestrator(), Tools()
    outcome = await go(req, model, orch, tools=tools)
    assert (outcome.status, outcome.attempts, outcome.model_calls) == ("accepted", 1, 101)
    assert [c.arguments["path"] for c in tools.calls] == [f"f{i}" for i in range(100)]
    assert [r["content"] for r in tool_results(orch)] == [f"contents of f{i}" for i in range(100)]
    assert [names(c["tools"]) for c in model.calls[:100]] == [["new_answer", READ_TOOL]] * 100
    # The 100th call spent the budget: the last call offers the workflow tools only.
    last = model.calls[100]
    assert names(last["tools"]) == ["new_answer"] and last["tool_choice"] == "required"
    assert last["messages"][-1]["role"] == "user"
    assert "used all 100 tool calls" in last["messages"][-1]["content"]
    assert [r.kind for r in orch.reports] == ["workflow_submission"]


async def test_calls_beyond_the_budget_in_one_response_are_not_run():
    req = request().model_copy(update={"max_tool_calls": 2})
    three = [
        *call(READ_TOOL, {"path": "a"}, 0, "r0"),
        *call(READ_TOOL, {"path": "b"}, 1, "r1"),
        *call(READ_TOOL, {"path": "c"}, 2, "r2"),
        StreamDelta(finish_reason="tool_calls"),
    ]
    model = ScriptedModel(three, answer("done"))
    orch, tools = Orchestrator(), Tools()
    outcome = await go(req, model, orch, tools=tools)
    assert outcome.status == "accepted"
    assert [c.arguments["path"] for c in tools.calls] == ["a", "b"]
    after = model.calls[1]["messages"][-4:]
    assert [m["role"] for m in after] == ["tool", "tool", "tool", "user"]
    assert after[2] == {"role": "tool", "tool_call_id": "r2",
                        "content": budget_spent_message(READ_TOOL, 2)}  # fmt: skip
    assert "End your turn now with one workflow call (new_answer)" in after[3]["content"]
    assert names(model.calls[1]["tools"]) == ["new_answer"]


async def test_reminder_reaches_the_model_after_a_tools_only_response():
    """The budget is spent, the model calls a tool anyway: it is submitted without a
    workflow call, and the orchestrator's reminder is a user message after the results."""
    req = request().model_copy(update={"max_tool_calls": 1})
    model = ScriptedModel(read("a", "r0"), read("b", "r1"), answer("done"))
    reminder = "You did not call a workflow tool. Call new_answer or vote."
    orch, tools = Orchestrator(rejected(reminder)), Tools()
    outcome = await go(req, model, orch, tools=tools)
    assert (outcome.status, outcome.attempts, outcome.model_calls) == ("accepted", 2, 3)
    assert orch.reports[0].calls == []
    assert len(tools.calls) == 1
    history = model.calls[2]["messages"]
    assert history[-3]["role"] == "assistant" and history[-3]["tool_calls"][0]["id"] == "r1"
    assert history[-2] == {"role": "tool", "tool_call_id": "r1",
                           "content": budget_spent_message(READ_TOOL, 1)}  # fmt: skip
    assert history[-1]["role"] == "user"
    assert history[-1]["content"].startswith(reminder)
    assert "used all 1 tool calls" in history[-1]["content"]


async def test_rejection_of_a_mixed_response_is_the_workflow_calls_result():
    """A vote and a tool call in one rejected response: the tool runs, the vote's result
    is the rejection, and no extra user message is needed."""
    req = request(tools=workflow_tools(["agent1"]))
    mixed = [
        *call("vote", {"agent_id": "agent7", "reason": "x"}, 0, "v1"),
        *call(READ_TOOL, {"path": "a"}, 1, "r1"),
        StreamDelta(finish_reason="tool_calls"),
    ]
    model = ScriptedModel(mixed, answer("4"))
    orch, tools = Orchestrator(rejected("agent7 has no answer")), Tools()
    outcome = await go(req, model, orch, tools=tools)
    assert (outcome.status, outcome.attempts) == ("accepted", 2)
    assert orch.reports[0].calls == [
        WorkflowCall(name="vote", arguments={"agent_id": "agent7", "reason": "x"})
    ]
    assert model.calls[1]["messages"][-2:] == [
        {"role": "tool", "tool_call_id": "v1", "content": "agent7 has no answer"},
        {"role": "tool", "tool_call_id": "r1", "content": "contents of a"},
    ]


async def test_reminder_follows_a_text_and_tools_response_without_workflow_call():
    """Text plus a tool call, budget spent: the rejection still reaches the model."""
    req = request().model_copy(update={"max_tool_calls": 0})
    chatty = [
        StreamDelta(content="Let me look."),
        *call(READ_TOOL, {"path": "a"}, id="r0"),
        StreamDelta(finish_reason="tool_calls"),
    ]
    model = ScriptedModel(chatty, answer("4"))
    orch, tools = Orchestrator(rejected("Call new_answer or vote.")), Tools()
    outcome = await go(req, model, orch, tools=tools)
    assert outcome.status == "accepted" and tools.calls == []
    assert names(model.calls[0]["tools"]) == ["new_answer"]  # no budget: none offered
    history = model.calls[1]["messages"]
    assert history[-3]["content"] == "Let me look."
    assert history[-2]["content"] == budget_spent_message(READ_TOOL, 0)
    assert history[-1]["role"] == "user" and history[-1]["content"].startswith("Call new_answer")


async def test_huge_tool_result_is_cut_with_a_note_for_model_and_event():
    req = request()
    model = ScriptedModel(read("big", "r0"), answer("4"))
    orch = Orchestrator()
    tools = Tools(lambda call: "y" * 500)
    outcome = await go(req, model, orch, RetryPolicy(retries=0, max_tool_result_chars=120), tools)
    assert outcome.status == "accepted"
    expected = truncate_tool_result("y" * 500, 120)
    assert expected.startswith("y" * 120 + "\n[Tool result truncated: the last 380 of 500")
    assert model.calls[1]["messages"][-1] == {"role": "tool", "tool_call_id": "r0",
                                              "content": expected}  # fmt: skip
    assert tool_results(orch)[0]["content"] == expected


def test_truncate_tool_result():
    assert truncate_tool_result("short", 5) == "short"
    cut = truncate_tool_result("abcdefgh", 3)
    assert cut.startswith("abc\n[Tool result truncated: the last 5 of 8 characters were cut.")
    assert "narrower" in cut


async def test_presentation_uses_its_tools_then_ends_in_text_when_the_budget_is_spent():
    req = request(phase="present").model_copy(update={"max_tool_calls": 2})
    model = ScriptedModel(read("a", "r0"), read("b", "r1"), content("Final."))
    orch, tools = Orchestrator(), Tools()
    outcome = await go(req, model, orch, tools=tools)
    assert (outcome.status, outcome.model_calls) == ("presented", 3)
    assert [(names(c["tools"]), c["tool_choice"]) for c in model.calls] == [
        ([READ_TOOL], "auto"),
        ([READ_TOOL], "auto"),
        ([], None),
    ]
    assert model.calls[2]["tools"] is None
    assert "Write your final answer now" in model.calls[2]["messages"][-1]["content"]
    assert orch.reports[-1].content == "Final."


async def test_presentation_with_many_tool_calls_is_not_cut_short():
    req = request(phase="present")
    model = ScriptedModel(*[read(f"f{i}", f"r{i}") for i in range(10)], content("Final."))
    orch, tools = Orchestrator(), Tools()
    outcome = await go(req, model, orch, tools=tools)
    assert (outcome.status, outcome.model_calls, len(tools.calls)) == ("presented", 11, 10)


# -- the capability token ------------------------------------------------------------


def with_token(req, token="cap-123"):
    return req.model_copy(update={"token": token})


async def test_every_report_carries_the_turns_token():
    orch = Orchestrator(rejected("too similar"))
    model = ScriptedModel(RetryableModelError("busy", 503), answer("a"), answer("b"))
    await go(with_token(request()), model, orch)
    failing = ScriptedModel(FatalModelError("bad key", 401))
    await go(with_token(request()), failing, orch)
    await go(with_token(request(phase="present")), ScriptedModel(content("Final.")), orch)
    kinds = [r.kind for r in orch.reports]
    assert kinds == ["model_retrying", "workflow_submission", "workflow_submission",
                     "turn_failed", "presentation_finished"]  # fmt: skip
    assert [r.token for r in orch.reports] == ["cap-123"] * 5
