"""Custom tools (MassGen's ``custom_tools``): Python functions run by the gateway in its
sandbox and offered to the model as ``custom_tool__<name>``.

The gateway never imports a custom tool's file itself. ``_tool_host.py`` does, in the
same sandbox as commands (``execution.Confinement``): once per file to derive each
function's JSON schema from its signature and docstring (``describe``), then once per
call (``call``). The file's folder is shown read-only in the sandbox; the agent's
workspace is the current folder and is passed as ``agent_cwd`` to a function that
takes it (as MassGen does). Custom tools run offline with an empty environment.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from massgen_proto.config import CustomToolConfig
from massgen_proto.json_types import JsonObject, JsonValue, items_of, object_of, objects_of

from .execution import Confinement
from .tool_names import openai_tool

__all__ = [
    "CUSTOM_PREFIX",
    "LIBRARY",
    "CustomTool",
    "CustomToolError",
    "call_tool",
    "describe_tools",
    "in_library",
    "specs",
]

CUSTOM_PREFIX = "custom_tool__"
HOST = Path(__file__).with_name("_tool_host.py")
LIBRARY = Path(__file__).with_name("tool_library")
"""The built-in tool library: MassGen's own tools that run in the sandbox (see
``massgen_proto.config.tool_library``)."""
REPLY_BYTES = 4_000_000
"""Bytes of the host's reply read back (the result text itself is capped before)."""


class CustomToolError(Exception):
    """A custom tool could not be described or called (message for the model / log)."""


@dataclass(frozen=True, slots=True)
class CustomTool:
    """One function of one ``custom_tools`` entry."""

    name: str
    """Without the ``custom_tool__`` prefix."""
    function: str
    path: str
    """Absolute path of the Python file."""
    description: str | None
    preset_args: JsonObject
    where: str
    """Its config key, for messages: ``agents[0].backend.custom_tools[1]``."""

    @property
    def tool_name(self) -> str:
        return CUSTOM_PREFIX + self.name


def specs(entries: list[CustomToolConfig], agent_index: int, base: str) -> list[CustomTool]:
    """The tools of an agent's ``custom_tools`` (relative paths resolve against ``base``).

    A function given without a path, or by a path into MassGen's library
    (``massgen/tool/...``), is served from the built-in tool library (``LIBRARY``); a
    function without a path that the library lacks gets ``path=""`` and is reported as
    missing when the tools are listed (the agent runs without it, as in MassGen)."""
    tools = []
    for index, entry in enumerate(entries):
        where = f"agents[{agent_index}].backend.custom_tools[{index}]"
        mapped = {function for function, _ in entry.counterparts()}
        for name, function, description, preset in entry.entries():
            if function in mapped:
                continue  # MassGen's multimodal tool: the agent has its counterpart instead
            shipped = entry.library_file(function)
            if shipped is not None:
                path = str(LIBRARY / shipped)
            elif entry.path is None:
                path = ""
            else:
                path = os.path.abspath(os.path.join(base, os.path.expanduser(entry.path)))
            tools.append(CustomTool(name, function, path, description, dict(preset), where))
    return tools


def in_library(tool: CustomTool) -> bool:
    """Whether ``tool`` is served from the built-in tool library (the operator's code,
    readable by every agent)."""
    return bool(tool.path) and Path(tool.path).is_relative_to(LIBRARY)


def host_argv() -> list[str]:
    """The custom tool host, on the Python the gateway runs on (isolated mode). Its
    source goes on the command line, so the gateway's own files need not be shown."""
    return [sys.executable, "-I", "-c", _host_source()]


@functools.cache
def _host_source() -> str:
    return HOST.read_text(encoding="utf-8")


async def _ask(
    confinement: Confinement, request: JsonObject, workdir: str, env: dict[str, str]
) -> JsonObject:
    limits = confinement.limits
    reply_limits = dataclasses.replace(limits, output_bytes=max(limits.output_bytes, REPLY_BYTES))
    outcome = await confinement.run(
        host_argv(), workdir=workdir, env=env, stdin=json.dumps(request).encode(),
        limits=reply_limits,
    )  # fmt: skip
    if outcome.timed_out:
        raise CustomToolError(f"killed after {limits.timeout:g} s (timeout)")
    try:
        reply = json.loads(outcome.stdout)
    except ValueError:
        stderr = outcome.stderr.strip()[-1500:]
        code = outcome.exit_code if outcome.signal is None else f"signal {outcome.signal}"
        raise CustomToolError(
            f"the tool process ended ({code}) without a reply"
            + (f"; its stderr ends with:\n{stderr}" if stderr else "")
        ) from None
    if not isinstance(reply, dict):
        raise CustomToolError("the tool process sent an unreadable reply")
    return reply


def _is_file(path: str) -> bool:
    return os.path.isfile(path)


async def describe_tools(
    tools: list[CustomTool], confinement: Confinement, workdir: str, env: dict[str, str]
) -> tuple[list[JsonObject], list[str]]:
    """OpenAI function tools for ``tools`` (one sandboxed import per file) and problems."""
    by_file: dict[str, list[CustomTool]] = {}
    for tool in tools:
        by_file.setdefault(tool.path, []).append(tool)
    offered: list[JsonObject] = []
    problems: list[str] = []
    for path, group in by_file.items():
        where = group[0].where
        if not path:
            problems += [
                f"custom tool {t.tool_name} ({where}): {t.function!r} is not in the built-in "
                "tool library and no 'path' was given; the agent runs without it"
                for t in group
            ]
            continue
        if not _is_file(path):
            problems.append(f"custom tool file {path} ({where}): no such file")
            continue
        request: JsonObject = {
            "mode": "describe", "path": path,
            "functions": [
                {"function": t.function, "name": t.tool_name, "description": t.description,
                 "hidden": sorted(t.preset_args)}
                for t in group
            ],
        }  # fmt: skip
        try:
            reply = await _ask(confinement, request, workdir, env)
        except (CustomToolError, OSError) as error:
            problems.append(f"custom tools of {path} ({where}): {error}")
            continue
        problems += [f"custom tool {e} ({where})" for e in items_of(reply.get("errors"))]
        offered += [_function_tool(described) for described in objects_of(reply.get("tools"))]
    return offered, problems


def _function_tool(described: Mapping[str, JsonValue]) -> JsonObject:
    """The host's description of one function, as an OpenAI function tool."""
    name = str(described.get("name"))
    description = described.get("description")
    text = description if isinstance(description, str) and description else name
    return openai_tool(name, text, object_of(described.get("parameters")))


async def call_tool(
    tool: CustomTool,
    arguments: JsonObject,
    confinement: Confinement,
    workdir: str,
    env: dict[str, str],
) -> tuple[str, bool]:
    """(text for the model, is_error) of one call; never raises for the tool's failures."""
    request: JsonObject = {
        "mode": "call", "path": tool.path, "function": tool.function, "arguments": arguments,
        "preset": tool.preset_args, "agent_cwd": workdir,
        "limit": confinement.limits.output_bytes,
    }  # fmt: skip
    try:
        reply = await _ask(confinement, request, workdir, env)
    except CustomToolError as error:
        return f"Error: {tool.tool_name} failed: {error}", True
    except OSError as error:
        return f"Error: {tool.tool_name} could not be started: {error.strerror or error}", True
    if reply.get("ok"):
        return str(reply.get("text", "")), False
    return f"Error: {tool.tool_name} failed: {reply.get('error', 'unknown error')}", True
