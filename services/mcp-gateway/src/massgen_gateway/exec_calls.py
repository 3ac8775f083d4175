"""An agent's commands (``execute_command``) and custom tools: how they are confined, and the calls.

``commands`` decides what may run and ``execution`` runs it; this module wires the two
for one agent (its mounts, limits and sandbox mode).
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING

import structlog
from massgen_proto.function_tools import function_name
from massgen_proto.json_types import JsonObject, JsonValue
from massgen_proto.messages import Phase
from massgen_proto.tools import ToolResult

from .commands import CommandPolicy, command_env, execution_mode, format_outcome, shell_line
from .custom_tools import CustomTool, call_tool, describe_tools, in_library
from .execution import Confinement, ExecLimits, PidsCgroups, sandbox_problem
from .outcome import CallOutcome, denied_result, tool_error
from .sandbox import Mount, python_roots, sandbox_available

if TYPE_CHECKING:
    from .broker import AgentTools

__all__ = ["call_command", "call_custom", "close_exec", "exec_cgroups", "list_custom"]

log = structlog.get_logger("massgen_gateway")

_CGROUPS = PidsCgroups()
"""The process's pids cgroups for commands and custom tools (probed on first use)."""


def exec_cgroups() -> PidsCgroups:
    """The pids cgroups every sandboxed call of this process makes its cgroup in."""
    return _CGROUPS


def close_exec() -> None:
    """Remove this gateway's (empty) cgroup folder at shutdown."""
    _CGROUPS.close()


async def _confinement(tools: AgentTools, phase: Phase, readable: list[str]) -> Confinement | str:
    """How this agent's commands and custom tools run now, or why they cannot."""
    s = tools.run.settings
    b = tools.agent.backend
    bwrap: bool | str = sandbox_available()
    if bwrap:
        bwrap = await sandbox_problem() or True
    mode = execution_mode(
        bwrap=bwrap, deployment_sandbox=s.sandbox,
        unsandboxed_exec=s.unsandboxed_exec, run_mode=b.command_line_execution_mode,
    )  # fmt: skip
    if mode not in ("sandbox", "host"):
        return mode
    tools.workspace.mkdir(parents=True, exist_ok=True)
    mounts: list[Mount] = []
    for root in tools.scope(phase).roots:
        # Context paths stay read-only for commands even for a winner allowed to write
        # them: the write tools check protected paths file by file, a mount cannot.
        mounts.append(Mount(root.path, writable=root.kind == "workspace"))
    inside = [m.path for m in mounts]
    shown = [
        p for p in dict.fromkeys([*readable, *s.exec_ro_paths])
        if not any(p == m or p.startswith(m.rstrip("/") + "/") for m in inside)
    ]  # fmt: skip
    memory = min(s.exec_memory_bytes, b.command_memory_bytes or s.exec_memory_bytes)
    limits = ExecLimits(
        timeout=s.exec_timeout, cpu_seconds=s.exec_cpu_seconds, memory_bytes=memory,
        file_bytes=s.exec_file_bytes, max_processes=s.exec_max_processes,
        output_bytes=s.exec_output_bytes,
    )  # fmt: skip
    return Confinement(
        sandboxed=mode == "sandbox", mounts=tuple(mounts), readable=tuple(shown),
        limits=limits, tmp_bytes=s.exec_tmp_bytes, cgroups=_CGROUPS,
        hidden=(_realpath(s.workspace_root),),
    )  # fmt: skip


def _deadline(tools: AgentTools, seconds: float | None, asked: JsonValue = None) -> float:
    limit = tools.run.settings.exec_timeout
    if seconds:
        limit = min(limit, seconds)
    if isinstance(asked, int | float) and not isinstance(asked, bool) and asked > 0:
        limit = min(limit, float(asked))
    return max(limit, 1.0)


async def call_command(
    tools: AgentTools, phase: Phase, name: str, arguments: JsonObject, seconds: float | None
) -> CallOutcome:
    b = tools.agent.backend
    command = arguments.get("command")
    if not isinstance(command, str):
        return tool_error(name, f"{name} needs the argument 'command' (a string)")
    asked = arguments.get("timeout")
    if asked is not None and (
        isinstance(asked, bool) or not isinstance(asked, int | float) or asked <= 0
    ):
        return tool_error(name, "'timeout' must be a positive number of seconds")
    scope = tools.scope(phase)
    decision = scope.check(arguments.get("work_dir") or ".", "read", tools.ledger)
    if not decision.allowed:
        return CallOutcome(denied_result(name, decision.message), decision)
    paths = _command_paths(decision.path, b.command_execution_venv_path)
    if paths is None:
        return tool_error(name, f"Error: work_dir {decision.raw!r} is not a folder")
    readable, path_prefix = paths
    confinement = await _confinement(tools, phase, readable)
    if isinstance(confinement, str):
        return tool_error(name, f"Error: {name} is unavailable: {confinement}")
    if b.command_network:
        if not tools.run.settings.exec_network:
            return tool_error(name, f"Error: {name} is unavailable: {_network_refusal(tools)}")
        confinement = dataclasses.replace(confinement, network=True)
    policy = CommandPolicy.of(
        b.command_line_allowed_commands, b.command_line_blocked_commands,
        host=not confinement.sandboxed,
    )  # fmt: skip
    refusal = policy.refusal(command)
    if refusal is not None:
        return tool_error(name, f"Error: command refused: {refusal}")
    env = command_env(str(tools.workspace.resolve()), path_prefix)
    if path_prefix:
        env["VIRTUAL_ENV"] = os.path.dirname(path_prefix[0])
    timeout = _deadline(tools, seconds, asked)
    limits = dataclasses.replace(confinement.limits, timeout=timeout)
    try:
        outcome = await confinement.run(
            shell_line(command, b.command_execution_prefix), workdir=decision.path,
            env=env, limits=limits,
        )  # fmt: skip
    except OSError as error:
        return tool_error(name, f"Error: the command could not be started: {error}")
    log.info(
        "command_run", run_id=tools.run.run_id, label=tools.label,
        sandboxed=confinement.sandboxed, exit_code=outcome.exit_code,
        timed_out=outcome.timed_out, seconds=round(outcome.seconds, 3),
    )  # fmt: skip
    text = format_outcome(command, outcome, timeout)
    return CallOutcome(ToolResult(name=name, content=text, is_error=outcome.timed_out))


def _network_refusal(tools: AgentTools) -> str:
    mode = tools.agent.backend.command_line_docker_network_mode
    return (
        f"the config asks for network (agents[{tools.index}].backend."
        f"command_line_docker_network_mode: {mode!r}) and this gateway runs commands without "
        "network (its exec_network setting, MASSGEN_GATEWAY_EXEC_NETWORK, is off)"
    )


def _custom_readable(
    tools: AgentTools, phase: Phase
) -> tuple[list[str], list[str], list[CustomTool]]:
    """(folders to show, problems, usable tools): in a shared deployment (one with an
    MCP catalog) a tool's file must lie where the agent may read, unless it is in the
    built-in tool library. A function named without a path that the library lacks is
    left out (a problem), as MassGen leaves out a tool it cannot load."""
    folders: list[str] = list(python_roots())
    problems: list[str] = []
    usable: list[CustomTool] = []
    scope = tools.scope(phase) if tools.run.settings.mcp_catalog else None
    for tool in tools.custom_tools:
        if not tool.path:
            problems.append(
                f"custom tool {tool.tool_name} ({tool.where}): {tool.function!r} is not in "
                "the built-in tool library and no 'path' was given; the agent runs without it"
            )
            continue
        if (
            scope is not None
            and not in_library(tool)
            and not scope.check(tool.path, "read").allowed
        ):
            problems.append(
                f"custom tool {tool.tool_name} ({tool.where}): in this deployment a "
                "custom tool's file must be in the agent's workspace or a context path"
            )
            continue
        folders.append(os.path.dirname(os.path.realpath(tool.path)))
        usable.append(tool)
    return folders, problems, usable


async def list_custom(tools: AgentTools, phase: Phase) -> tuple[list[JsonObject], list[str]]:
    if tools.custom_listing is not None:
        return tools.custom_listing
    folders, problems, usable = _custom_readable(tools, phase)
    # Functions missing from the built-in library stay missing: not worth a retry.
    lasting = sum(1 for tool in tools.custom_tools if not tool.path)
    if not usable:
        if len(problems) == lasting:
            tools.custom_listing = ([], problems)
        return [], problems
    confinement = await _confinement(tools, phase, folders)
    if isinstance(confinement, str):
        where = f"agents[{tools.index}].backend.custom_tools"
        return [], [f"custom tools ({where}) are unavailable: {confinement}"]
    limits = dataclasses.replace(
        confinement.limits,
        timeout=min(confinement.limits.timeout, tools.run.settings.connect_timeout),
    )
    confinement = dataclasses.replace(confinement, limits=limits)
    workspace = str(tools.workspace.resolve())
    offered, more = await describe_tools(usable, confinement, workspace, command_env(workspace, []))
    visible = {t.tool_name for t in usable if tools.custom_visible(t)}
    offered = [t for t in offered if function_name(t) in visible]
    listing = (offered, problems + more)
    if not more and len(problems) == lasting:
        tools.custom_listing = listing  # a failure is retried at the next listing
    return listing


async def call_custom(
    tools: AgentTools,
    phase: Phase,
    name: str,
    tool: CustomTool,
    arguments: JsonObject,
    seconds: float | None,
) -> CallOutcome:
    folders, problems, usable = _custom_readable(tools, phase)
    if tool not in usable:
        problem = next((p for p in problems if tool.tool_name in p), "not available")
        return tool_error(name, f"Error: {problem}")
    confinement = await _confinement(tools, phase, folders)
    if isinstance(confinement, str):
        return tool_error(name, f"Error: {name} is unavailable: {confinement}")
    limits = dataclasses.replace(confinement.limits, timeout=_deadline(tools, seconds))
    confinement = dataclasses.replace(confinement, limits=limits)
    workspace = str(tools.workspace.resolve())
    text, is_error = await call_tool(
        tool, arguments, confinement, workspace, command_env(workspace, [])
    )
    log.info(
        "custom_tool_call", run_id=tools.run.run_id, label=tools.label, tool=name,
        sandboxed=confinement.sandboxed, is_error=is_error, size=len(text),
    )  # fmt: skip
    return CallOutcome(ToolResult(name=name, content=text, is_error=is_error))


def _realpath(path: str) -> str:
    return os.path.realpath(path)


def _command_paths(workdir: str, venv: str | None) -> tuple[list[str], list[str]] | None:
    """(folders to show read-only, PATH entries to put first) of a command run in
    ``workdir``: MassGen's ``command_execution_venv_path``, else a ``.venv`` there.
    None when ``workdir`` is not a folder."""
    if not os.path.isdir(workdir):
        return None
    if venv:
        real = os.path.realpath(os.path.expanduser(venv))
        return [real], [f"{real}/bin"]
    local = os.path.join(workdir, ".venv", "bin")
    return [], ([local] if os.path.isdir(local) else [])
