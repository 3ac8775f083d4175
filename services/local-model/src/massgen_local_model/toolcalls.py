"""Pure helpers that give small local models reliable OpenAI tool calls.

Three paths, all without I/O:

* forced calls (a named ``tool_choice``, and the call step of a required one): a JSON
  schema that is the union of ``{"name": const, "arguments": <parameters>}`` over the
  offered tools, so llama.cpp's grammar makes every output a valid call, plus a compact
  note describing the tools;
* required calls (``tool_choice`` "required"): text first, then a short call under the
  grammar (``text_first``);
* free text: find ``{"name": X, "arguments": {...}}`` objects (bare or in a fence)
  whose ``X`` is an offered tool, and turn them into ``tool_calls`` entries. Streamed,
  a call is recognised by its head (``{"name": X, "arguments": {``) and its arguments
  are forwarded as they are generated (``StreamingTextToolCalls``), never held whole.

Where: ``calls`` (a parsed call, a tool's name and parameters), ``forced_calls``,
``text_first``, ``text_calls`` and ``tool_prompt`` (the note and the conversation
rewritten for a template without tools). This module gathers their public names.
"""

from __future__ import annotations

from .calls import ToolCall, new_call_id
from .forced_calls import (
    ForcedCallStream,
    ToolChoiceError,
    forced_tools,
    parse_forced_call,
    tool_call_schema,
)
from .text_calls import (
    CallArguments,
    CallStart,
    StreamingTextToolCalls,
    StreamOut,
    TextToolCallStream,
    extract_tool_calls,
)
from .text_first import call_request, short_call_tools, text_request
from .tool_prompt import messages_without_tools, tools_note

__all__ = [
    "CallArguments",
    "CallStart",
    "ForcedCallStream",
    "StreamOut",
    "StreamingTextToolCalls",
    "TextToolCallStream",
    "ToolCall",
    "ToolChoiceError",
    "call_request",
    "extract_tool_calls",
    "forced_tools",
    "messages_without_tools",
    "new_call_id",
    "parse_forced_call",
    "short_call_tools",
    "text_request",
    "tool_call_schema",
    "tools_note",
]
