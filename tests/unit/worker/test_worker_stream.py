"""The chunk accumulator, fed lists of OpenAI-style stream chunks."""

from __future__ import annotations

import json

import pytest
from massgen_worker.stream import (
    ArgumentsDelta,
    ContentDelta,
    FieldDelta,
    StreamAccumulator,
    ToolCall,
    ToolCallDone,
    Usage,
    parse_chunk,
)


def chunk(delta=None, finish=None, usage=None, choices=True):
    body = {"id": "c1", "object": "chat.completion.chunk", "model": "m"}
    body["choices"] = (
        [{"index": 0, "delta": delta or {}, "finish_reason": finish}] if choices else []
    )
    if usage is not None:
        body["usage"] = usage
    return body


def tc(index, id=None, name=None, arguments=None):
    function = {}
    if name is not None:
        function["name"] = name
    if arguments is not None:
        function["arguments"] = arguments
    call = {"index": index, "function": function}
    if id is not None:
        call["id"], call["type"] = id, "function"
    return {"tool_calls": [call]}


def run(chunks, decode=None):
    acc = StreamAccumulator(decode)
    events = []
    for c in chunks:
        events.append(acc.feed(parse_chunk(c)))
    tail, message = acc.finish()
    return events, tail, message


def test_content_and_reasoning_are_events_as_they_arrive():
    events, tail, message = run(
        [
            chunk({"role": "assistant", "content": ""}),
            chunk({"reasoning_content": "think "}),
            chunk({"reasoning_content": "hard"}),
            chunk({"content": "Hello "}),
            chunk({"content": "world"}),
            chunk({}, finish="stop"),
        ]
    )
    assert events == [
        [],
        [ContentDelta("reasoning", "think ")],
        [ContentDelta("reasoning", "hard")],
        [ContentDelta("content", "Hello ")],
        [ContentDelta("content", "world")],
        [],
    ]
    assert tail == []
    assert message.text == "Hello world"
    assert message.reasoning == "think hard"
    assert message.tool_calls == ()
    assert message.finish_reason == "stop"
    assert message.to_openai() == {"role": "assistant", "content": "Hello world"}


def test_fragmented_tool_calls_with_several_indexes():
    events, tail, message = run(
        [
            chunk({"content": "Let me answer."}),
            chunk(tc(0, id="call_a", name="new_answer", arguments="")),
            chunk(tc(0, arguments='{"cont')),
            chunk(tc(0, arguments='ent": "4"}')),
            chunk(tc(1, id="call_b", name="vote", arguments='{"agent_id"')),
            chunk(tc(1, arguments=': "agent1", "reason": "ok"}')),
            chunk({}, finish="tool_calls"),
            chunk(None, usage={"prompt_tokens": 12, "completion_tokens": 7}, choices=False),
        ],
        decode={"new_answer": "content"},
    )
    first = ToolCall("call_a", "new_answer", '{"content": "4"}')
    second = ToolCall("call_b", "vote", '{"agent_id": "agent1", "reason": "ok"}')
    # new_answer's content streams decoded, the vote's arguments raw; the first call is
    # complete once index 1 starts, the last one at finish().
    assert events[2:4] == [[], [FieldDelta(0, "new_answer", "4")]]
    assert events[4] == [ToolCallDone(first), ArgumentsDelta(1, "call_b", "vote", '{"agent_id"')]
    assert events[5] == [ArgumentsDelta(1, "call_b", "vote", ': "agent1", "reason": "ok"}')]
    assert tail == [ToolCallDone(second)]
    assert message.tool_calls == (first, second)
    assert first.arguments == {"content": "4"}
    assert second.arguments == {"agent_id": "agent1", "reason": "ok"}
    assert message.usage == Usage(12, 7)
    assert message.to_openai() == {
        "role": "assistant",
        "content": "Let me answer.",
        "tool_calls": [
            {
                "id": "call_a",
                "type": "function",
                "function": {"name": "new_answer", "arguments": '{"content": "4"}'},
            },
            {
                "id": "call_b",
                "type": "function",
                "function": {"name": "vote", "arguments": '{"agent_id": "agent1", "reason": "ok"}'},
            },
        ],
    }


def test_answer_text_streams_decoded_as_the_arguments_grow():
    args = json.dumps({"content": 'Line one\nsays "hi" \u00e9'}, ensure_ascii=True)
    pieces = [args[i : i + 3] for i in range(0, len(args), 3)]
    events, tail, message = run(
        [chunk(tc(0, id="c", name="new_answer", arguments=""))]
        + [chunk(tc(0, arguments=piece)) for piece in pieces]
        + [chunk({}, finish="tool_calls")],
        decode={"new_answer": "content"},
    )
    decoded = [e for batch in events for e in batch]
    assert all(isinstance(e, FieldDelta) for e in decoded)
    assert len(decoded) > 5  # grows piece by piece, not at the end
    assert "".join(e.text for e in decoded) == 'Line one\nsays "hi" \u00e9'
    assert message.tool_calls[0].arguments == {"content": 'Line one\nsays "hi" \u00e9'}
    assert tail == [ToolCallDone(message.tool_calls[0])]


def test_other_tool_calls_stream_their_raw_arguments():
    events, _, _ = run(
        [
            chunk(tc(0, id="r1", name="mcp__fs__read", arguments='{"path": ')),
            chunk(tc(0, arguments='"a.txt"}')),
        ],
        decode={"new_answer": "content"},
    )
    assert events == [
        [ArgumentsDelta(0, "r1", "mcp__fs__read", '{"path": ')],
        [ArgumentsDelta(0, "r1", "mcp__fs__read", '"a.txt"}')],
    ]


def test_interleaved_indexes_and_missing_ids():
    _, tail, message = run(
        [
            chunk(
                {
                    "tool_calls": [
                        {"index": 0, "function": {"name": "a", "arguments": "{"}},
                        {"index": 1, "function": {"name": "b", "arguments": "["}},
                    ]
                }
            ),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": "}"}}]}),
        ]
    )
    assert [c.id for c in message.tool_calls] == ["call_0", "call_1"]
    assert message.tool_calls[0].arguments == {}
    # Not a JSON object: the raw text is kept for the orchestrator to judge.
    assert message.tool_calls[1].arguments == "["
    assert [e.call.name for e in tail] == ["a", "b"]


def test_malformed_arguments_kept_raw():
    _, _, message = run([chunk(tc(0, id="x", name="new_answer", arguments='{"content": "oops'))])
    assert message.tool_calls[0].arguments == '{"content": "oops'


def test_attribute_objects_are_read_like_dicts():
    class Obj:
        def __init__(self, **kw):
            self.__dict__.update(kw)

    delta = Obj(content="hi", reasoning_content=None, tool_calls=None)
    parsed = parse_chunk(Obj(choices=[Obj(delta=delta, finish_reason=None)], usage=None))
    assert parsed.content == "hi"
    assert parsed.tool_calls == ()


def test_usage_only_chunk_and_feed_after_finish():
    acc = StreamAccumulator()
    acc.feed(
        parse_chunk(chunk(None, usage={"prompt_tokens": 3, "completion_tokens": 0}, choices=False))
    )
    _, message = acc.finish()
    assert message.usage == Usage(3, 0)
    assert message.to_openai() == {"role": "assistant", "content": ""}
    with pytest.raises(RuntimeError, match="after finish"):
        acc.feed(parse_chunk(chunk({"content": "late"})))
