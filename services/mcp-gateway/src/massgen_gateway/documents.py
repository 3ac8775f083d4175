"""``write_document``: the agent's text saved as a TXT, Markdown, PDF, PPTX or DOCX file.

MassGen's ``text_to_file_generation`` asks a provider for the text from inside the
tool; here the agent's own model writes the text and the gateway renders it
(``doc_render``), so the tool needs no key and no network. It is offered with the
built-in tools when the agent's backend has ``enable_file_generation`` (turned on by
that MassGen tool in ``custom_tools``). The path is checked like ``write_file``'s
(``permissions``: its workspace, or a writable context path), the text and the
rendered file are bounded, and the file is written with ``O_NOFOLLOW`` on every
component. Its documents then count as the agent's artifacts (``run_files``).
"""

from __future__ import annotations

import posixpath
from typing import TYPE_CHECKING, Any

from massgen_proto.messages import Phase

from .builtin import BuiltinTool
from .doc_render import RenderError, render
from .doc_types import MIME
from .fdwalk import ToolError
from .file_tools import _write as write_bytes
from .media_tools import max_bytes
from .outcome import CallOutcome, denied_result, threaded_call, tool_error
from .permissions import Decision

if TYPE_CHECKING:
    from .broker import AgentTools

__all__ = ["FORMATS", "MAX_CONTENT_CHARS", "WRITE_DOCUMENT", "call_write_document", "offers"]

FORMATS = tuple(MIME)
"""What ``write_document`` renders (MassGen's txt, md, pdf, pptx, and docx)."""
MAX_CONTENT_CHARS = 200_000
"""Text one call may hand over (about a hundred pages; a PDF of it renders in seconds)."""

WRITE_DOCUMENT = BuiltinTool(
    "write_document",
    "Save a document you write: 'content' rendered as the 'format' file at 'path' "
    "(the suffix is added when the path has none). Use '# ' / '## ' headings, '- ' "
    "bullets (two spaces of indent per sub-level) and '1. ' numbered items; for pptx, "
    "separate slides with '---' lines and start each with a '# ' title.",
    {
        "path": {"type": "string", "description": "File path, relative to your workspace."},
        "format": {"type": "string", "enum": list(FORMATS)},
        "content": {"type": "string", "maxLength": MAX_CONTENT_CHARS},
    },
    ("path", "format", "content"),
    (),  # the path is checked in call_write_document, once its suffix is settled
)


def offers(agent: AgentTools) -> bool:
    """The tool is offered when the agent's backend generates files."""
    return agent.agent.backend.enable_file_generation


def _target(raw: Any, fmt: str) -> str:
    """The path the document is written to (raises ToolError naming the problem)."""
    if not isinstance(raw, str) or not raw.strip():
        raise ToolError("'path' must be a non-empty file path")
    suffix = posixpath.splitext(raw)[1].lower()
    if not suffix:
        return f"{raw}.{fmt}"
    if suffix != f".{fmt}":
        raise ToolError(f"{raw}: the path ends in {suffix!r} but the format is {fmt!r}")
    return raw


def _arguments(arguments: dict[str, Any]) -> tuple[str, str, str]:
    """``(path, format, content)`` of a call, checked (raises ToolError)."""
    fmt, content = arguments.get("format"), arguments.get("content")
    if not isinstance(fmt, str) or fmt.lower() not in FORMATS:
        raise ToolError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    fmt = fmt.lower()
    if not isinstance(content, str):
        raise ToolError("'content' must be a string (the document's text)")
    if len(content) > MAX_CONTENT_CHARS:
        raise ToolError(
            f"'content' has {len(content)} characters, over the limit of {MAX_CONTENT_CHARS}; "
            "split the document into several files"
        )
    return _target(arguments.get("path"), fmt), fmt, content


def _render_and_write(
    decision: Decision, fmt: str, content: str, limit: int, agent: AgentTools
) -> str:
    try:
        data, note = render(fmt, content)
    except RenderError as error:
        raise ToolError(f"{decision.raw}: {error}") from None
    if len(data) > limit:
        raise ToolError(
            f"{decision.raw}: the {fmt} file would be {len(data) / 1048576:.1f} MB, over the "
            f"limit of {limit / 1048576:.1f} MB (backend.media_max_file_size_mb)"
        )
    existed = write_bytes(decision, data, agent.ledger)
    verb = "overwrote" if existed else "created"
    return f"{verb} {decision.raw} ({fmt}, {len(data)} bytes{note})"


async def call_write_document(
    agent: AgentTools, phase: Phase, name: str, arguments: dict[str, Any]
) -> CallOutcome:
    """Check the arguments and the path, then render and write the document."""
    try:
        path, fmt, content = _arguments(arguments)
    except ToolError as error:
        return tool_error(name, f"Error: {error}")
    scope = agent.scope(phase)
    decision = scope.check(path, "write", agent.ledger)
    if not decision.allowed:
        return CallOutcome(denied_result(name, decision.message), decision)
    limit = max_bytes(agent)

    def work() -> str:
        try:
            return _render_and_write(decision, fmt, content, limit, agent)
        except OSError as error:
            raise ToolError(f"write_document failed: {error.strerror or error}") from None

    return await threaded_call(name, scope, work)
