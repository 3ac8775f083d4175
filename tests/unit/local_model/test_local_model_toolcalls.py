"""Pure tool-call helpers: schema building, prompt rewriting, text-JSON conversion."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from massgen_local_model.text_first import (
    CALL_MAX_TOKENS,
    CALL_STRING_CHARS,
    call_request,
    wants_text,
)
from massgen_local_model.toolcalls import (
    CallArguments,
    CallStart,
    ForcedCallStream,
    StreamingTextToolCalls,
    TextToolCallStream,
    ToolChoiceError,
    extract_tool_calls,
    forced_tools,
    messages_without_tools,
    parse_forced_call,
    short_call_tools,
    text_request,
    tool_call_schema,
    tools_note,
)

NEW_ANSWER = {
    "type": "function",
    "function": {
        "name": "new_answer",
        "description": "Submit a new answer.\nLonger text that is left out.",
        "parameters": {
            "type": "object",
            "properties": {"content": {"type": "string"}},
            "required": ["content"],
        },
    },
}
VOTE = {
    "type": "function",
    "function": {
        "name": "vote",
        "description": "Vote for an existing answer.",
        "parameters": {
            "type": "object",
            "properties": {
                "agent_id": {"type": "string", "enum": ["agent1", "agent2"]},
                "reason": {"type": "string"},
            },
            "required": ["agent_id", "reason"],
        },
    },
}
TOOLS = [NEW_ANSWER, VOTE]
NAMES = {"new_answer", "vote"}


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        (None, None),
        ("auto", None),
        ("none", None),
        ("required", ["new_answer", "vote"]),
        ({"type": "function", "function": {"name": "vote"}}, ["vote"]),
    ],
)
def test_forced_tools(choice: object, expected: list[str] | None) -> None:
    got = forced_tools(TOOLS, choice)
    assert (None if got is None else [t["function"]["name"] for t in got]) == expected


def test_forced_tools_rejects_unknown_name() -> None:
    with pytest.raises(ToolChoiceError, match=r"'submit'.*new_answer, vote"):
        forced_tools(TOOLS, {"type": "function", "function": {"name": "submit"}})


def test_schema_is_union_of_name_and_arguments() -> None:
    schema = tool_call_schema(TOOLS)

    assert [alt["properties"]["name"] for alt in schema["anyOf"]] == [
        {"const": "new_answer"},
        {"const": "vote"},
    ]
    assert schema["anyOf"][1]["properties"]["arguments"] == VOTE["function"]["parameters"]
    assert all(alt["required"] == ["name", "arguments"] for alt in schema["anyOf"])


def test_schema_for_one_tool_has_no_union_and_defaults_parameters() -> None:
    bare = {"type": "function", "function": {"name": "ping"}}
    schema = tool_call_schema([bare])
    assert schema["properties"]["arguments"] == {"type": "object", "properties": {}}


def test_tools_note_is_compact() -> None:
    note = tools_note(TOOLS, forced=True)
    assert "- new_answer(content: string): Submit a new answer." in note
    assert '- vote(agent_id: "agent1"|"agent2", reason: string): Vote' in note
    assert "Longer text" not in note
    assert len(note) < 300


def test_messages_without_tools_rewrites_history_and_appends_note() -> None:
    messages = [
        {"role": "system", "content": "You are agent1."},
        {"role": "user", "content": "Q?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "vote", "arguments": '{"agent_id": "agent2"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "rejected: give a reason"},
    ]

    out = messages_without_tools(messages, "NOTE")

    assert out[0] == {"role": "system", "content": "You are agent1.\n\nNOTE"}
    assert json.loads(out[2]["content"]) == {"name": "vote", "arguments": {"agent_id": "agent2"}}
    assert out[3] == {"role": "user", "content": "Tool result: rejected: give a reason"}
    assert messages[0]["content"] == "You are agent1."  # input untouched


def test_messages_without_system_get_one() -> None:
    out = messages_without_tools([{"role": "user", "content": "hi"}], "NOTE")
    assert out[0] == {"role": "system", "content": "NOTE"}


def test_messages_without_tools_and_without_a_note_keep_the_system_message() -> None:
    messages = [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    out = messages_without_tools(messages, None)
    assert out == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]


def test_a_call_after_text_keeps_only_required_arguments_and_short_strings() -> None:
    params = {"type": "object", "properties": {"content": {"type": "string"}}, "required": []}
    optional = {"type": "function", "function": {**NEW_ANSWER["function"], "parameters": params}}
    answer, vote = short_call_tools([optional, VOTE])

    assert answer["function"]["parameters"]["properties"] == {}
    assert answer["function"]["description"] == NEW_ANSWER["function"]["description"]
    vote_params = vote["function"]["parameters"]
    assert vote_params["required"] == ["agent_id", "reason"]
    assert vote_params["properties"]["agent_id"]["enum"] == ["agent1", "agent2"]
    assert "maxLength" not in vote_params["properties"]["agent_id"]
    assert vote_params["properties"]["reason"] == {"type": "string", "maxLength": CALL_STRING_CHARS}
    assert vote_params["additionalProperties"] is False
    assert "maxLength" not in VOTE["function"]["parameters"]["properties"]["reason"]  # a copy
    note = tools_note([answer, vote], forced=True, head="Now end your reply with one call")
    assert note.startswith("Now end your reply with one call, written as JSON")
    assert "- new_answer(): Submit a new answer." in note


def test_a_call_with_only_required_arguments_has_no_text_step_and_is_short() -> None:
    body = {"messages": [{"role": "user", "content": "Q"}], "max_completion_tokens": 384}
    # A vote-only turn: nothing a text could stand for, so the call comes at once.
    assert not wants_text([VOTE])
    optional = {"type": "function", "function": {"name": "new_answer", "parameters": {
        "type": "object", "properties": {"content": {"type": "string"}}}}}  # fmt: skip
    assert wants_text([optional, VOTE])
    request, offered, head = call_request(body, [VOTE], "", tool_call_schema)
    assert request["max_tokens"] == CALL_MAX_TOKENS and "max_completion_tokens" not in request
    assert offered[0]["function"]["parameters"]["properties"]["reason"]["maxLength"] == (
        CALL_STRING_CHARS
    )
    assert request["messages"][-2]["content"].startswith("Answer with exactly one tool call")
    # Its fixed start is the assistant's reply so far; a grammar constrains the rest.
    assert head is not None and request["messages"][-1] == {"role": "assistant",
                                                             "content": head.prefix}  # fmt: skip
    assert request["grammar"] == head.grammar and "response_format" not in request
    # The text step itself keeps the client's budget.
    assert text_request(body)["max_completion_tokens"] == 384


def test_the_text_step_sends_no_tools_and_streams() -> None:
    body = {"messages": [{"role": "user", "content": "Q"}], "tools": TOOLS, "seed": 1,
            "tool_choice": "required", "max_tokens": 9, "parallel_tool_calls": False}  # fmt: skip
    sent = text_request(body)
    assert sent == {"messages": [{"role": "user", "content": "Q"}], "seed": 1, "max_tokens": 9,
                    "stream": True, "stream_options": {"include_usage": True}}  # fmt: skip


def test_parse_forced_call() -> None:
    call = parse_forced_call(
        '{"name": "vote", "arguments": {"agent_id": "agent1", "reason": "ok"}}'
    )
    assert call.name == "vote"
    assert json.loads(call.arguments) == {"agent_id": "agent1", "reason": "ok"}
    assert call.to_openai(index=0)["index"] == 0
    with pytest.raises(ValueError):
        parse_forced_call('{"name": "vote", "argu')


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "vote", "arguments": {"agent_id": "agent1", "reason": "a } b"}}',
        '{\n  "name" : "vote",\n  "arguments": {\n    "agent_id": "agent1", "reason": "x"\n'
        "  }\n}\n",
        '{"name": "vote", "arguments": {}}',
    ],
)
def test_forced_stream_reassembles_arguments_char_by_char(text: str) -> None:
    stream = ForcedCallStream()
    names, parts = [], []
    for ch in text:
        name, args = stream.feed(ch)
        names += [name] if name else []
        parts.append(args)
    parts.append(stream.finish())

    assert names == ["vote"]
    assert json.loads("".join(parts)) == json.loads(text)["arguments"]


def test_extract_from_fence_keeps_prose() -> None:
    text = 'Here:\n```json\n{"name": "vote", "arguments": {"agent_id": "agent1"}}\n```\nDone.'
    content, calls = extract_tool_calls(text, NAMES)
    assert content == "Here:\n\nDone."
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("vote", {"agent_id": "agent1"})]


def test_extract_bare_objects_in_order_and_parameters_synonym() -> None:
    text = (
        '{"name": "new_answer", "parameters": {"content": "4"}} {"name": "vote", "arguments": "{}"}'
    )
    content, calls = extract_tool_calls(text, NAMES)
    assert content is None
    assert [c.name for c in calls] == ["new_answer", "vote"]
    assert json.loads(calls[0].arguments) == {"content": "4"}


def test_extract_ignores_unoffered_tools_and_plain_json() -> None:
    text = 'Use {"name": "rm_rf", "arguments": {}} or {"a": 1}.'
    assert extract_tool_calls(text, NAMES) == (text, [])


def test_extract_fenced_list() -> None:
    text = '```\n[{"name": "vote", "arguments": {}}, {"name": "new_answer", "arguments": {}}]\n```'
    assert [c.name for c in extract_tool_calls(text, NAMES)[1]] == ["vote", "new_answer"]


def run_stream(text: str, step: int = 1) -> tuple[str, str | None, list[str]]:
    stream = TextToolCallStream(NAMES)
    out = "".join(stream.feed(text[i : i + step]) for i in range(0, len(text), step))
    content, calls = stream.finish()
    return out, content, [c.name for c in calls]


@pytest.mark.parametrize("step", [1, 3, 1000])
def test_text_stream_passes_prose_through(step: int) -> None:
    text = "Plain prose with `code`, a {brace} and ```python\nprint(1)\n``` fences."
    out, content, calls = run_stream(text, step)
    assert out + (content or "") == text
    assert calls == []


@pytest.mark.parametrize("step", [1, 4, 1000])
def test_text_stream_holds_and_converts_a_call(step: int) -> None:
    text = 'Voting now.\n```json\n{"name": "vote", "arguments": {"agent_id": "agent2"}}\n```'
    out, content, calls = run_stream(text, step)
    assert out == "Voting now.\n"
    assert content is None
    assert calls == ["vote"]


def test_text_stream_streams_prose_before_deciding() -> None:
    stream = TextToolCallStream(NAMES)
    assert stream.feed("Hello ") == "Hello "
    assert stream.feed('{"na') == ""
    assert stream.feed('me": "vote", "arguments": {}}') == ""
    assert [c.name for c in stream.finish()[1]] == ["vote"]


def test_text_stream_releases_json_that_is_not_a_call() -> None:
    stream = TextToolCallStream(NAMES)
    assert (
        stream.feed('{"result": 42, "ok": true} and more') == '{"result": 42, "ok": true} and more'
    )


def stream_calls(text: str, cuts: list[int]) -> tuple[list[list], list]:
    """(what each feed let out, what finish let out) for ``text`` cut at ``cuts``."""
    stream = StreamingTextToolCalls(NAMES)
    bounds = [0, *sorted({min(c, len(text)) for c in cuts}), len(text)]
    fed = [stream.feed(text[a:b]) for a, b in zip(bounds, bounds[1:], strict=False) if b > a]
    return fed, stream.finish()


def assemble(pieces: list) -> tuple[str, list[tuple[str, object]]]:
    content, calls = "", {}
    for piece in pieces:
        if isinstance(piece, CallStart):
            calls[piece.index] = [piece.name, ""]
        elif isinstance(piece, CallArguments):
            calls[piece.index][1] += piece.text
        else:
            content += piece
    return content, [(name, json.loads(args)) for name, args in calls.values()]


CALL_TEXTS = [
    'Voting now.\n```json\n{"name": "vote", "arguments": {"agent_id": "agent2"}}\n```\nDone.',
    'I answer. {"name": "new_answer", "arguments": {"content": "a } \\" { b"}} ok',
    '{"name": "new_answer", "parameters": {"content": "x"}}',
    '```\n{ "name" : "vote" , "arguments" : { "agent_id": "agent1", "reason": "{[" } }\n```',
]


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(CALL_TEXTS), st.lists(st.integers(0, 120), max_size=12))
def test_streamed_text_calls_match_the_whole_text_for_any_chunking(text, cuts):
    fed, tail = stream_calls(text, cuts)
    content, calls = assemble([p for batch in fed for p in batch] + tail)
    expected_content, expected_calls = extract_tool_calls(text, NAMES)
    assert content.strip() == (expected_content or "")
    assert calls == [(c.name, json.loads(c.arguments)) for c in expected_calls]


def test_a_text_call_streams_its_arguments_before_the_response_ends():
    text = '{"name": "new_answer", "arguments": {"content": "The capital is Canberra."}}'
    fed, tail = stream_calls(text, list(range(0, len(text), 4)))
    pieces = [p for batch in fed for p in batch]
    starts = [p for p in pieces if isinstance(p, CallStart)]
    args = [p for p in pieces if isinstance(p, CallArguments)]
    assert [s.name for s in starts] == ["new_answer"] and starts[0].id.startswith("call_")
    assert len(args) > 5  # piece by piece, not at the end
    assert json.loads("".join(a.text for a in args)) == {"content": "The capital is Canberra."}
    assert tail == []


def test_unoffered_tools_and_cut_short_calls_are_not_streamed():
    fed, tail = stream_calls('{"name": "rm_rf", "arguments": {"path": "/"}} bye', [5, 20])
    assert assemble([p for batch in fed for p in batch] + tail) == (
        '{"name": "rm_rf", "arguments": {"path": "/"}} bye',
        [],
    )
    stream = StreamingTextToolCalls(NAMES)
    stream.recognise = False
    out = stream.feed('{"name": "vote", "arguments": {}}') + stream.finish()
    assert "".join(p for p in out if isinstance(p, str)) == '{"name": "vote", "arguments": {}}'


def test_call_head_writes_what_is_fixed_and_constrains_the_rest() -> None:
    from massgen_local_model.call_head import call_head

    vote = short_call_tools([VOTE])
    head = call_head(vote)
    assert head is not None and not head.fixed
    assert head.prefix == '{"name": "vote", "arguments": {"agent_id": "'
    rule = head.grammar.splitlines()[0]
    enum = " | ".join(f'"{label}"' for label in VOTE["function"]["parameters"]["properties"][
        "agent_id"]["enum"])  # fmt: skip
    assert rule == (
        f'root ::= ({enum}) "\\", \\"reason\\": \\"" char{{0,{CALL_STRING_CHARS}}} "\\"}}}}"'
    )
    assert head.grammar.splitlines()[1].startswith("char ::= ")
    # No argument to choose: the whole call is known.
    answer = call_head(short_call_tools([{"type": "function", "function": {
        "name": "new_answer", "parameters": {"type": "object", "properties": {
            "content": {"type": "string"}}}}}]))  # fmt: skip
    assert answer is not None and answer.fixed
    assert json.loads(answer.call) == {"name": "new_answer", "arguments": {}}
    # A choice of tools, or an argument that is not a plain string: the JSON schema.
    assert call_head(short_call_tools([VOTE, VOTE])) is None
    number = {"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}}}  # fmt: skip
    assert call_head(short_call_tools([number])) is None
    pattern = {"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"s": {"type": "string", "pattern": "a+"}},
        "required": ["s"]}}}  # fmt: skip
    assert call_head(short_call_tools([pattern])) is None
    assert call_head([VOTE]) is None  # not a short call: the reason has no bound, extra keys


def test_call_head_escapes_quotes_in_names_and_values() -> None:
    from massgen_local_model.call_head import call_head

    odd = {"type": "function", "function": {"name": 'say"hi', "parameters": {
        "type": "object", "additionalProperties": False, "required": ["who"],
        "properties": {"who": {"type": "string", "enum": ['a"b', "c\\d"]}}}}}  # fmt: skip
    head = call_head([odd])
    assert head is not None
    assert head.prefix == '{"name": "say\\"hi", "arguments": {"who": "'
    assert head.grammar.splitlines()[0] == 'root ::= ("a\\\\\\"b" | "c\\\\\\\\d") "\\"}}"'
