"""MassGen's own custom tool library (``massgen/tool/``) as this project sees it.

A MassGen ``custom_tools`` entry names its function by ``path`` (a Python file) or, with
no ``path``, by name alone: MassGen then looks the function up in its own package.
This project ships the tools of that library that can run in the gateway's sandbox
(offline, empty environment, no desktop) as its *built-in tool library*
(``massgen_gateway/tool_library/``, same file names): a path under ``massgen/tool/``
to one of them, or a bare function name of one of them, is served from that copy.

MassGen's multimodal tools (``_multimodal_tools/``) call a provider's API from inside the
tool. Each function the project does another way (the agent's own vision, the
worker's ``generate_image`` / ``generate_audio`` / ``generate_video``, the gateway's
``write_document``) maps onto that, with a warning (``COUNTERPARTS``); a function of
that folder it does not know is refused with the folder's reason.

The rest of MassGen's library is refused by its folder, with the reason: those tools
call provider APIs, the network, a browser or another agent framework, none of which a
sandboxed custom tool can reach, so a config naming them would not do what it says.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

__all__ = [
    "COUNTERPARTS",
    "LIBRARY_PREFIX",
    "SHIPPED_FUNCTIONS",
    "Counterpart",
    "is_library_path",
    "library_file",
    "multimodal_counterpart",
    "multimodal_problem",
    "shipped_file",
    "unshipped_reason",
]

LIBRARY_PREFIX = "massgen/tool/"
"""How MassGen's configs spell a path into its own tool library."""

SHIPPED_FUNCTIONS: dict[str, str] = {
    "two_num_tool": "_basic/_two_num_tool.py",
}
"""Function name -> its file in the built-in tool library (relative to its folder)."""

_MULTIMODAL_FOLDER = "_multimodal_tools/"
_MULTIMODAL = (
    "MassGen's multimodal tools (understanding or generating images, audio, video and "
    "files through a provider's API from inside a custom tool) are not supported: a custom "
    "tool runs offline and keyless in the gateway's sandbox. The agent's own backend does "
    "images here: upload_files (images in), the read_multimodal_files tool (a model with "
    "vision looks at workspace images), enable_image_generation / enable_audio_generation"
)


@dataclass(frozen=True)
class Counterpart:
    """What a MassGen multimodal tool becomes here."""

    tool: str
    """The tool the agent is offered instead (gateway built-in or worker tool)."""
    flag: str | None
    """The backend key the mapping turns on (None: nothing to turn on)."""
    means: str
    """How the same work gets done, for the config warning."""


_SPEECH = Counterpart(
    "generate_audio", "enable_audio_generation",
    "the generate_audio tool (enable_audio_generation): the agent's model writes the text "
    "and the provider's speech API speaks it into the workspace",
)  # fmt: skip
COUNTERPARTS: dict[str, Counterpart] = {
    "understand_image": Counterpart(
        "read_multimodal_files", None,
        "the agent's own vision: its read_multimodal_files tool shows workspace and "
        "context-path images to its model",
    ),
    "understand_file": Counterpart(
        "read_multimodal_files", None,
        "the agent's own reading of PDF files: its read_multimodal_files tool gives "
        "workspace and context-path PDFs to its model as file parts (PDF only; agents read "
        "text files with their file tools)",
    ),
    "text_to_image_generation": Counterpart(
        "generate_image", "enable_image_generation",
        "the generate_image tool (enable_image_generation), which saves the provider's "
        "picture into the workspace",
    ),
    "image_to_image_generation": Counterpart(
        "edit_image", "enable_image_generation",
        "the edit_image tool (enable_image_generation), which sends workspace pictures and "
        "a prompt to the provider's images edit API and saves the result in the workspace",
    ),
    "understand_audio": Counterpart(
        "transcribe_audio", "enable_audio_understanding",
        "the transcribe_audio tool (enable_audio_understanding): the provider's "
        "transcription API turns a workspace sound into text the agent's model reads",
    ),
    "text_to_speech_transcription_generation": _SPEECH,
    "text_to_speech_continue_generation": _SPEECH,
    "understand_video": Counterpart(
        "read_multimodal_files", None,
        "the agent's own vision: its read_multimodal_files tool shows a workspace or "
        "context-path video (MP4, MOV, WebM) to its model, as the video itself where the "
        "model takes video (Gemini, Qwen VL) and as evenly spaced frames otherwise",
    ),
    "text_to_video_generation": Counterpart(
        "generate_video", "enable_video_generation",
        "the generate_video tool (enable_video_generation), which has the provider's videos "
        "API (OpenAI Sora) make the clip, waits for it, and saves the MP4 into the workspace",
    ),
    "text_to_file_generation": Counterpart(
        "write_document", "enable_file_generation",
        "the write_document tool (enable_file_generation): the agent's own model writes "
        "the text and the gateway renders it as a TXT, MD, PDF, PPTX or DOCX file in the "
        "workspace",
    ),
}  # fmt: skip
"""MassGen multimodal function -> the project's way of doing the same work."""

_DESKTOP = (
    "computer use and browser automation drive a desktop or a browser (and a provider's "
    "computer-use API), which the gateway's sandbox does not have"
)
_UNSHIPPED: dict[str, str] = {
    "_computer_use/": _DESKTOP,
    "_claude_computer_use/": _DESKTOP,
    "_gemini_computer_use/": _DESKTOP,
    "_browser_automation/": _DESKTOP,
    "_web_tools/": "the crawl4ai web tools need the network and a crawler service; custom "
    "tools run offline in the gateway's sandbox",
    "_self_evolution/": "the GitHub issue analyzer needs the network (GitHub's API); custom "
    "tools run offline in the gateway's sandbox",
    "_extraframework_agents/": "the lesson planners run another agent framework (AG2, "
    "LangGraph, AgentScope, smolagents, OpenAI Assistants) against a provider's API; "
    "custom tools run offline, without keys, in the gateway's sandbox",
}


def _relative(path: str) -> str | None:
    """The part of ``path`` after ``massgen/tool/`` (None: not a library path)."""
    normal = posixpath.normpath(path.replace("\\", "/")).removeprefix("./")
    if not normal.startswith(LIBRARY_PREFIX):
        return None
    return normal.removeprefix(LIBRARY_PREFIX)


def is_library_path(path: str) -> bool:
    """Whether ``path`` names a file of MassGen's tool library (``massgen/tool/...``): it
    is served from the built-in copy, mapped onto a project tool, or refused, never read
    from the folder the gateway runs in."""
    return _relative(path) is not None


def shipped_file(path: str) -> str | None:
    """The built-in library's copy (relative to its folder) of a path into MassGen's
    tool library; None: not a library path, or a file the library does not ship."""
    relative = _relative(path)
    if relative is not None and relative in SHIPPED_FUNCTIONS.values():
        return relative
    return None


def library_file(path: str | None, function: str) -> str | None:
    """The built-in library's file (relative to its folder) that serves ``function`` of
    an entry with ``path``; None when the tool is not served from the library (a file
    of the user's own, or no path and a function the library does not have)."""
    if path is None:
        return SHIPPED_FUNCTIONS.get(function)
    return shipped_file(path)


def unshipped_reason(path: str | None) -> str | None:
    """Why a path into MassGen's tool library cannot be used here (None: it can, or it
    is not a library path)."""
    if path is None:
        return None
    relative = _relative(path)
    if relative is None or relative in SHIPPED_FUNCTIONS.values():
        return None
    if relative.startswith(_MULTIMODAL_FOLDER):
        return None  # decided per function: multimodal_problem
    for folder, reason in _UNSHIPPED.items():
        if relative.startswith(folder):
            return reason
    return (
        "it is a file of MassGen's own tool library, which this project does not ship (its "
        f"built-in library has: {', '.join(sorted(SHIPPED_FUNCTIONS))})"
    )


def _multimodal(path: str | None) -> bool:
    relative = _relative(path) if path is not None else None
    return relative is not None and relative.startswith(_MULTIMODAL_FOLDER)


def multimodal_counterpart(path: str | None, function: str) -> Counterpart | None:
    """What ``function`` of a MassGen multimodal tool file maps onto (None: ``path`` is
    not one, or the function has no counterpart)."""
    return COUNTERPARTS.get(function) if _multimodal(path) else None


def multimodal_problem(path: str | None, function: str) -> str | None:
    """Why ``function`` of a MassGen multimodal tool file cannot be had here (None: it
    maps onto a counterpart, or ``path`` is not a multimodal tool file)."""
    if not _multimodal(path) or function in COUNTERPARTS:
        return None
    return _MULTIMODAL
