"""MassGen's own custom tool library (``massgen/tool/``) as this project sees it.

A MassGen ``custom_tools`` entry names its function by ``path`` (a Python file) or, with
no ``path``, by name alone: MassGen then looks the function up in its own package.
This project ships the tools of that library that can run in the gateway's sandbox
(offline, empty environment, no desktop) as its *built-in tool library*
(``massgen_gateway/tool_library/``, same file names): a path under ``massgen/tool/``
to one of them, or a bare function name of one of them, is served from that copy.

The rest of MassGen's library is refused by its folder, with the reason: those tools
call provider APIs, the network, a browser or another agent framework, none of which a
sandboxed custom tool can reach, so a config naming them would not do what it says.
"""

from __future__ import annotations

import posixpath

__all__ = [
    "LIBRARY_PREFIX",
    "SHIPPED_FUNCTIONS",
    "library_file",
    "shipped_file",
    "unshipped_reason",
]

LIBRARY_PREFIX = "massgen/tool/"
"""How MassGen's configs spell a path into its own tool library."""

SHIPPED_FUNCTIONS: dict[str, str] = {
    "two_num_tool": "_basic/_two_num_tool.py",
}
"""Function name -> its file in the built-in tool library (relative to its folder)."""

_MULTIMODAL = (
    "MassGen's multimodal tools (understanding or generating images, audio, video and "
    "files through a provider's API from inside a custom tool) are not supported: a custom "
    "tool runs offline and keyless in the gateway's sandbox. The agent's own backend does "
    "images here: upload_files (images in), the read_multimodal_files tool (a model with "
    "vision looks at workspace images), enable_image_generation / enable_audio_generation"
)
_DESKTOP = (
    "computer use and browser automation drive a desktop or a browser (and a provider's "
    "computer-use API), which the gateway's sandbox does not have"
)
_UNSHIPPED: dict[str, str] = {
    "_multimodal_tools/": _MULTIMODAL,
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
    for folder, reason in _UNSHIPPED.items():
        if relative.startswith(folder):
            return reason
    return (
        "it is a file of MassGen's own tool library, which this project does not ship (its "
        f"built-in library has: {', '.join(sorted(SHIPPED_FUNCTIONS))})"
    )
