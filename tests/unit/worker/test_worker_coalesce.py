"""Streamed text in small batches: the policy (pure) and a turn publishing through it."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from massgen_worker.coalesce import ChunkBatcher, Coalescing
from massgen_worker.stream import StreamDelta, ToolCallDelta, Usage
from massgen_worker.turn import RetryPolicy, run_turn
from worker_helpers import READ_TOOL, Tools

from tests.support.fakes.turns import Orchestrator, make_turn_request, workflow_tools

FAST = RetryPolicy(retries=0, base_delay=0.001, max_delay=0.002)


def texts(batches):
    return [(b.channel, b.text) for b in batches]


# -- the policy -------------------------------------------------------------------------


def test_first_piece_of_a_response_goes_at_once_then_pieces_wait():
    batcher = ChunkBatcher(max_delay=0.05, max_chars=256)
    assert texts(batcher.add("content", "Hello", now=10.0)) == [("content", "Hello")]
    assert batcher.add("content", " wor", now=10.01) == []
    assert batcher.add("content", "ld", now=10.02) == []
    assert batcher.deadline() == pytest.approx(10.06)  # the oldest pending piece + 50 ms
    assert batcher.due(10.05) == []
    assert texts(batcher.due(10.06)) == [("content", " world")]
    assert batcher.deadline() is None and not batcher.pending
    batcher.start()  # the next response: its first piece at once again
    assert texts(batcher.add("content", "Next", now=11.0)) == [("content", "Next")]


def test_a_piece_arriving_after_the_deadline_takes_everything_out():
    batcher = ChunkBatcher(max_delay=0.05, max_chars=256)
    batcher.add("answer", "a", now=0.0)
    batcher.add("answer", "b", now=0.01)
    assert texts(batcher.add("answer", "c", now=0.07)) == [("answer", "bc")]


def test_size_limit_flushes_before_the_deadline():
    batcher = ChunkBatcher(max_delay=10.0, max_chars=10)
    batcher.add("content", "x", now=0.0)
    assert batcher.add("content", "12345", now=0.001) == []
    assert texts(batcher.add("content", "67890", now=0.002)) == [("content", "1234567890")]


def test_channels_and_keys_keep_their_order():
    batcher = ChunkBatcher(max_delay=1.0, max_chars=1000)
    batcher.add("content", "first", now=0.0)
    batcher.add("content", "Let me ", now=0.1)
    batcher.add("content", "write. ", now=0.1)
    batcher.add("answer", "The ", now=0.2)
    batcher.add("answer", "answer", now=0.2)
    batcher.add("tool_args", '{"pa', now=0.3, key="c1")
    batcher.add("tool_args", '{"x', now=0.3, key="c2")
    batcher.add("tool_args", 'th"}', now=0.3, key="c1")
    flushed = batcher.flush()
    assert [(b.channel, b.key, b.text) for b in flushed] == [
        ("content", None, "Let me write. "),
        ("answer", None, "The answer"),
        ("tool_args", "c1", '{"pa'),
        ("tool_args", "c2", '{"x'),
        ("tool_args", "c1", 'th"}'),
    ]


def test_zero_delay_turns_batching_off():
    batcher = ChunkBatcher(max_delay=0.0)
    for i in range(5):
        assert texts(batcher.add("content", f"w{i}", now=float(i))) == [("content", f"w{i}")]


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        ChunkBatcher(max_delay=-1)
    with pytest.raises(ValueError):
        ChunkBatcher(max_chars=0)


# -- a turn publishing through it -------------------------------------------------------


class PacedModel:
    """Streams the given deltas ``delay`` seconds apart (a provider at a fixed rate)."""

    def __init__(self, deltas, delay: float = 0.0, pause_at: int | None = None,
                 pause: float = 0.0):  # fmt: skip
        self.deltas = deltas
        self.delay = delay
        self.pause_at, self.pause = pause_at, pause

    async def stream(self, messages, tools, tool_choice):
        for index, delta in enumerate(self.deltas):
            if index == self.pause_at:
                await asyncio.sleep(self.pause)
            elif self.delay:
                await asyncio.sleep(self.delay)
            yield delta


def answer_deltas(text: str, size: int = 4) -> list[StreamDelta]:
    args = json.dumps({"content": text})
    return [
        StreamDelta(tool_calls=(ToolCallDelta(0, id="c0", name="new_answer"),)),
        *[StreamDelta(tool_calls=(ToolCallDelta(0, arguments=args[i : i + size]),))
          for i in range(0, len(args), size)],
        StreamDelta(finish_reason="tool_calls", usage=Usage(10, 50)),
    ]  # fmt: skip


class TimedOrchestrator(Orchestrator):
    async def emit(self, event):
        self.events.append((time.monotonic(), event))


def chunks(orch, channel=None):
    return [e for _, e in orch.events if e.kind == "chunk" and channel in (None, e.channel)]


async def test_a_fast_answer_is_a_few_events_with_the_same_text():
    words = " ".join(f"word{i}" for i in range(200))
    orch = TimedOrchestrator()
    await run_turn(make_turn_request("m", "http://x/v1"), PacedModel(answer_deltas(words)),
                   orch.submit, orch.emit, policy=FAST)  # fmt: skip
    answer = chunks(orch, "answer")
    assert "".join(c.text for c in answer) == words
    # 1 199 characters in 300 deltas: the first piece, then batches of about 256 characters.
    assert len(answer) <= 1 + len(words) // 256 + 1
    assert len(answer[0].text) < 10


async def test_batching_off_publishes_every_piece():
    words = " ".join(f"word{i}" for i in range(20))
    orch = TimedOrchestrator()
    await run_turn(make_turn_request("m", "http://x/v1"), PacedModel(answer_deltas(words)),
                   orch.submit, orch.emit, policy=FAST, coalescing=Coalescing(0.0))  # fmt: skip
    answer = chunks(orch, "answer")
    assert "".join(c.text for c in answer) == words
    assert len(answer) >= len(json.dumps({"content": words})) // 4 - 3


async def test_text_never_waits_past_the_delay_while_the_model_pauses():
    orch = TimedOrchestrator()
    deltas = answer_deltas("one two three four five", size=3)
    model = PacedModel(deltas, pause_at=8, pause=0.5)
    started = time.monotonic()
    await run_turn(make_turn_request("m", "http://x/v1"), model, orch.submit, orch.emit,
                   policy=FAST, coalescing=Coalescing(0.05, 256))  # fmt: skip
    answer = [(t - started, c.text) for t, c in orch.events if c.kind == "chunk"
              and c.channel == "answer"]  # fmt: skip
    # What came before the pause is out within the delay, not after the pause.
    before = [t for t, _ in answer if t < 0.4]
    assert len(before) >= 2 and max(before) < 0.2
    assert "".join(text for _, text in answer) == "one two three four five"


async def test_vote_is_one_chunk_with_target_and_reason_once_complete():
    args = json.dumps({"agent_id": "agent2", "reason": "most complete"})
    deltas = [
        StreamDelta(tool_calls=(ToolCallDelta(0, id="v", name="vote"),)),
        *[StreamDelta(tool_calls=(ToolCallDelta(0, arguments=args[i : i + 5]),))
          for i in range(0, len(args), 5)],
        StreamDelta(finish_reason="tool_calls", usage=Usage(1, 1)),
    ]  # fmt: skip
    orch = TimedOrchestrator()
    req = make_turn_request("m", "http://x/v1", tools=workflow_tools(["agent1", "agent2"]))
    await run_turn(req, PacedModel(deltas), orch.submit, orch.emit, policy=FAST)
    channels = [c.channel for c in chunks(orch)]
    assert channels == ["tool_call", "vote"]  # no argument fragments for a vote
    assert json.loads(chunks(orch, "vote")[0].text) == {
        "target": "agent2",
        "reason": "most complete",
    }


async def test_other_tool_calls_stream_arguments_batched_per_call():
    path = "notes/" + "x" * 40 + ".txt"
    args = json.dumps({"path": path})
    first = [
        StreamDelta(tool_calls=(ToolCallDelta(0, id="r1", name=READ_TOOL),)),
        *[StreamDelta(tool_calls=(ToolCallDelta(0, arguments=args[i : i + 3]),))
          for i in range(0, len(args), 3)],
        StreamDelta(finish_reason="tool_calls", usage=Usage(1, 1)),
    ]  # fmt: skip
    second = answer_deltas("done")
    model = _Sequence(first, second)
    orch = TimedOrchestrator()
    tools = Tools()
    await run_turn(make_turn_request("m", "http://x/v1"), model, orch.submit, orch.emit,
                   policy=FAST, tools=tools)  # fmt: skip
    streamed = [json.loads(c.text) for c in chunks(orch, "tool_args")]
    assert {s["id"] for s in streamed} == {"r1"}
    assert {s["name"] for s in streamed} == {READ_TOOL}
    assert "".join(s["delta"] for s in streamed) == args
    assert len(streamed) <= 3
    order = [c.channel for c in chunks(orch)]
    assert order.index("tool_args") < order.index("tool_call") < order.index("tool_result")


class _Sequence:
    def __init__(self, *responses):
        self.responses = list(responses)

    async def stream(self, messages, tools, tool_choice):
        for delta in self.responses.pop(0):
            yield delta
