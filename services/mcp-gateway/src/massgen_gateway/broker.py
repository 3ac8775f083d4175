"""The tools of one run: per agent its workspace, MCP sessions, breakers and ledger.

No NATS here: ``service.py`` turns requests into calls of ``RunTools`` and publishes
what comes back. Tool names are ``mcp__<server>__<tool>``; the built-in workspace
tools are the server ``workspace``.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from massgen_proto.catalog import McpCatalog
from massgen_proto.config import AgentConfig, McpServerConfig, RunConfig
from massgen_proto.ids import label_for
from massgen_proto.messages import Phase
from massgen_proto.tools import ToolList, ToolResult

from .builtin import BUILTIN_SERVER, BUILTIN_TOOLS, SymlinkRace, ToolError, run_builtin
from .permissions import Access, AccessLedger, AgentScope, ContextRoot, Decision, build_scope
from .sandbox import sandbox_available, sandboxed
from .sessions import CircuitBreaker, McpSession, SessionError, ToolInfo, result_text
from .settings import GatewaySettings
from .workspace import RunLayout, layout_for

__all__ = [
    "AgentTools",
    "CallOutcome",
    "RunTools",
    "ToolsConfigError",
    "access_for",
    "path_arguments",
    "tool_name",
    "tool_visible",
]

log = structlog.get_logger("massgen_gateway")

PREFIX = "mcp__"


class ToolsConfigError(ValueError):
    """The run's tool settings cannot be used (names the offending key)."""


def tool_name(server: str, tool: str) -> str:
    """The name a model sees: ``mcp__<server>__<tool>``."""
    return f"{PREFIX}{server}__{tool}"


def tool_visible(
    server: str,
    tool: str,
    backend_allowed: list[str] | None,
    backend_excluded: list[str] | None,
    server_allowed: list[str] | None = None,
    server_excluded: list[str] | None = None,
) -> bool:
    """Whether a tool is offered. A server-level list replaces the backend-level one;
    entries match the bare tool name and ``mcp__<server>__<tool>`` alike."""
    names = {tool, tool_name(server, tool)}
    allowed = server_allowed if server_allowed is not None else backend_allowed
    excluded = server_excluded if server_excluded is not None else backend_excluded
    if allowed is not None and not names.intersection(allowed):
        return False
    return not (excluded and names.intersection(excluded))


# -- path arguments of third-party tools ---------------------------------------------

_PATH_KEY = re.compile(
    r"(^|_)(path|paths|file|files|filename|filenames|filepath|dir|dirs|directory|directories|"
    r"folder|folders|source|sources|destination|dest|dst|src|target|cwd|root)$",
    re.I,
)
_CONTENT_KEYS = frozenset(
    {"content", "contents", "text", "old_text", "new_text", "oldtext", "newtext", "pattern",
     "patterns", "query", "message", "description", "body", "edits", "excludepatterns"}
)  # fmt: skip
_READ_TOOL = re.compile(
    r"^(read|list|get|search|find|stat|view|show|head|tail|cat|ls|tree|directory_tree|describe|"
    r"info|fetch|glob|grep|count|exists)",
    re.I,
)
_DELETE_TOOL = re.compile(r"(delete|remove|unlink|rmdir|trash|^rm_|^rm$)", re.I)
_MOVE_TOOL = re.compile(r"(move|rename|^mv)", re.I)
_MOVE_SOURCE = re.compile(r"^(source|sources|src|from|old_?path|path)$", re.I)


def access_for(tool: str, key: str) -> Access:
    """The access a third-party tool's path argument needs, judged by the tool's name."""
    if _DELETE_TOOL.search(tool):
        return "delete"
    if _MOVE_TOOL.search(tool):
        return "delete" if _MOVE_SOURCE.match(key) else "write"
    if _READ_TOOL.match(tool):
        return "read"
    return "write"


@dataclass(slots=True)
class _PathRef:
    container: Any
    key: Any
    value: str
    access: Access


def _looks_like_path(value: str) -> bool:
    if value.startswith("file://"):
        return True
    return (value.startswith("/") or value.startswith("~/") or value.startswith("../")) and not any(
        c.isspace() for c in value
    )


def path_arguments(tool: str, arguments: dict[str, Any]) -> list[_PathRef]:
    """Every path argument of a third-party call (references into ``arguments``).

    Path arguments are values of path-like keys (``path``, ``paths``, ``source``,
    ``destination``, ``*_path``, ``directory`` ...), at any depth, plus any string
    outside content keys that looks like a path (absolute, ``~/``, ``../`` or
    ``file://``) — a value that might be a path is checked, not trusted.
    """
    found: list[_PathRef] = []

    def visit(container: Any, key: Any, value: Any, path_key: str | None, content: bool) -> None:
        if isinstance(value, str):
            if path_key is not None or (not content and _looks_like_path(value)):
                found.append(_PathRef(container, key, value, access_for(tool, path_key or "")))
        elif isinstance(value, dict):
            for k, v in value.items():
                name = str(k)
                is_path = name if _PATH_KEY.search(name) else None
                visit(value, k, v, is_path, content or name.lower() in _CONTENT_KEYS)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                visit(value, i, v, path_key, content)
        elif (
            path_key is not None and value is not None and not isinstance(value, bool | int | float)
        ):
            found.append(_PathRef(container, key, repr(value), access_for(tool, path_key)))

    visit(None, None, arguments, None, False)
    return found


# -- the outcome of a call -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """A tool result and, when a path permission refused the call, the denial."""

    result: ToolResult
    denial: Decision | None = None


def _openai_tool(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    parameters = schema or {"type": "object", "properties": {}}
    return {
        "type": "function",
        "function": {"name": name, "description": description[:1024], "parameters": parameters},
    }


# -- one agent ------------------------------------------------------------------------


@dataclass(slots=True)
class AgentTools:
    """An agent's tools in one run."""

    run: RunTools
    index: int
    agent: AgentConfig
    label: str
    workspace: Path
    ledger: AccessLedger = field(default_factory=AccessLedger)
    sessions: dict[str, McpSession] = field(default_factory=dict)
    breakers: dict[str, CircuitBreaker] = field(default_factory=dict)
    _starting: dict[str, asyncio.Lock] = field(default_factory=dict)

    @property
    def builtins(self) -> bool:
        """Built-in workspace tools are offered when the agent has a ``cwd`` or the run
        has context paths."""
        return bool(self.agent.backend.cwd or self.run.config.orchestrator.context_paths)

    def scope(self, phase: Phase) -> AgentScope:
        """This agent's permissions in ``phase`` (the winner only writes when presenting)."""
        run = self.run
        context = [
            ContextRoot(c.path, c.permission, tuple(c.protected_paths))
            for c in run.config.orchestrator.context_paths
        ]
        return build_scope(
            label=self.label,
            phase=phase,
            is_winner=run.winner_label == self.label,
            workspace=str(self.workspace),
            reference=str(run.layout.reference),
            labels=run.labels.values(),
            context_paths=context,
            home=run.settings.home,
        )

    def _server(self, name: str) -> McpServerConfig | None:
        return next((s for s in self.agent.backend.mcp_servers if s.name == name), None)

    def breaker(self, server: str) -> CircuitBreaker:
        s = self.run.settings
        return self.breakers.setdefault(
            server, CircuitBreaker(s.breaker_threshold, s.breaker_cooldown)
        )

    async def session(self, server: McpServerConfig) -> McpSession:
        """The live session of ``server``, started (again) when needed.

        Raises:
            SessionError: it cannot be started, or its circuit is open.
        """
        breaker = self.breaker(server.name)
        if not breaker.allow():
            raise SessionError(
                f"circuit open after {breaker.failures} consecutive failures "
                f"(last: {breaker.last_error}); retry in {breaker.retry_in():.0f} s"
            )
        lock = self._starting.setdefault(server.name, asyncio.Lock())
        async with lock:
            current = self.sessions.get(server.name)
            if current is not None and not current.broken:
                return current
            if current is not None:
                await current.close()
                self.sessions.pop(server.name, None)
            self.workspace.mkdir(parents=True, exist_ok=True)
            self.run.layout.logs.mkdir(parents=True, exist_ok=True)
            session = McpSession(
                self._launchable(server),
                self.workspace,
                self.run.layout.logs / f"{self.label}-{server.name}.stderr.log",
                self.run.settings.connect_timeout,
            )
            try:
                await session.start()
            except SessionError as error:
                breaker.failure(str(error))
                raise
            self.sessions[server.name] = session
            return session

    def _launchable(self, server: McpServerConfig) -> McpServerConfig:
        """The server as the gateway starts it: a stdio command from the deployment's
        catalog (when it has one), wrapped in the sandbox (when configured).

        Raises:
            SessionError: the catalog refuses it, or it has no command to run.
        """
        if server.type != "stdio":
            return server
        settings = self.run.settings
        entry = McpCatalog.load(settings.mcp_catalog).resolve(server)
        if isinstance(entry, str):
            raise SessionError(entry)
        if entry is not None:
            command, args = entry.command, list(entry.args)
            env, network = dict(entry.env), entry.network
        elif server.command:
            command, args, env, network = server.command, list(server.args), dict(server.env), True
        else:
            raise SessionError(
                "a stdio MCP server needs 'command' (or, in a deployment with an MCP "
                "catalog, the name of a catalog entry)"
            )
        if settings.sandbox == "bwrap":
            if not sandbox_available():
                raise SessionError("the gateway's sandbox (bubblewrap) is not installed")
            command, args = sandboxed(
                command, args, workspace=self.workspace.resolve(),
                hidden=[Path(settings.workspace_root).resolve()], env=env, network=network,
                cpu_seconds=settings.sandbox_cpu_seconds,
                memory_bytes=settings.sandbox_memory_bytes,
            )  # fmt: skip
            env = {}
        cwd = None if entry is not None else server.cwd  # a catalog server runs in the workspace
        return server.model_copy(
            update={"command": command, "args": args, "env": env, "cwd": cwd}
        )

    async def list_tools(self, phase: Phase) -> ToolList:
        """Built-in tools (when enabled) and every server's tools, filtered and named."""
        backend = self.agent.backend
        self.workspace.mkdir(parents=True, exist_ok=True)
        tools: list[dict[str, Any]] = []
        errors: list[str] = []
        if self.builtins:
            for tool in BUILTIN_TOOLS.values():
                if tool_visible(
                    BUILTIN_SERVER, tool.name, backend.allowed_tools, backend.exclude_tools
                ):
                    tools.append(
                        _openai_tool(
                            tool_name(BUILTIN_SERVER, tool.name),
                            tool.description,
                            tool.input_schema(),
                        )
                    )

        async def server_tools(server: McpServerConfig) -> list[ToolInfo]:
            session = await self.session(server)
            try:
                return await session.list_tools()
            except SessionError as error:
                self.breaker(server.name).failure(str(error))
                raise

        results = await asyncio.gather(
            *(server_tools(s) for s in backend.mcp_servers), return_exceptions=True
        )
        for index, (server, listed) in enumerate(zip(backend.mcp_servers, results, strict=True)):
            if isinstance(listed, BaseException):
                if not isinstance(listed, SessionError | OSError):
                    raise listed
                where = f"agents[{self.index}].backend.mcp_servers[{index}]"
                errors.append(f"MCP server {server.name!r} ({where}): {listed}")
                continue
            for info in listed:
                if tool_visible(
                    server.name, info.name, backend.allowed_tools, backend.exclude_tools,
                    server.allowed_tools, server.exclude_tools,
                ):  # fmt: skip
                    tools.append(
                        _openai_tool(
                            tool_name(server.name, info.name), info.description, info.input_schema
                        )
                    )
        return ToolList(tools=tools, errors=errors)

    def _split(self, name: str) -> tuple[str, str] | None:
        if not name.startswith(PREFIX):
            return None
        rest = name[len(PREFIX) :]
        servers = [BUILTIN_SERVER] if self.builtins else []
        servers += [s.name for s in self.agent.backend.mcp_servers]
        for server in sorted(servers, key=len, reverse=True):
            if rest.startswith(server + "__"):
                return server, rest[len(server) + 2 :]
        return None

    async def call(
        self, phase: Phase, name: str, arguments: dict[str, Any] | str, seconds: float | None
    ) -> CallOutcome:
        """Check every path argument, then run the tool. Never raises for tool failures."""
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except json.JSONDecodeError:
                return _error(name, f"the arguments of {name} are not valid JSON")
        if not isinstance(arguments, dict):
            return _error(name, f"the arguments of {name} must be a JSON object")
        split = self._split(name)
        backend = self.agent.backend
        unavailable = _error(
            name, f"Error: tool {name!r} is not available. Use only the tools you were offered."
        )
        if split is None:
            return unavailable
        server_name, tool = split
        if server_name == BUILTIN_SERVER:
            if tool not in BUILTIN_TOOLS or not tool_visible(
                server_name, tool, backend.allowed_tools, backend.exclude_tools
            ):
                return unavailable
            return await self._call_builtin(phase, name, tool, arguments)
        server = self._server(server_name)
        assert server is not None
        if not tool_visible(
            server_name, tool, backend.allowed_tools, backend.exclude_tools,
            server.allowed_tools, server.exclude_tools,
        ):  # fmt: skip
            return unavailable
        return await self._call_server(phase, name, server, tool, arguments, seconds)

    async def _call_builtin(
        self, phase: Phase, name: str, tool: str, arguments: dict[str, Any]
    ) -> CallOutcome:
        spec = BUILTIN_TOOLS[tool]
        scope = self.scope(phase)
        decisions: dict[str, Decision] = {}
        for arg in spec.paths:
            raw = arguments.get(arg.name, arg.default)
            if raw is None:
                return _error(name, f"{name} needs the argument {arg.name!r}")
            decision = scope.check(raw, arg.access, self.ledger)
            if not decision.allowed:
                return CallOutcome(_denied(name, decision.message), decision)
            decisions[arg.name] = decision
        try:
            text = await asyncio.to_thread(run_builtin, tool, decisions, arguments, self.ledger)
        except ToolError as error:
            return _error(name, f"Error: {error}")
        except SymlinkRace as race:
            d = race.decision
            denial = scope.deny(d.raw, d.path, "symlink_race", d.access, d.root)
            return CallOutcome(_denied(name, denial.message), denial)
        return CallOutcome(ToolResult(name=name, content=text))

    async def _call_server(
        self,
        phase: Phase,
        name: str,
        server: McpServerConfig,
        tool: str,
        arguments: dict[str, Any],
        seconds: float | None,
    ) -> CallOutcome:
        checked = self._check_arguments(phase, name, tool, arguments)
        if isinstance(checked, CallOutcome):
            return checked
        forwarded, read, created = checked
        limit = min(seconds or self.run.settings.call_timeout, self.run.settings.call_timeout)
        if server.timeout:
            limit = min(limit, server.timeout)
        breaker = self.breaker(server.name)
        try:
            session = await self.session(server)
        except SessionError as error:
            return _error(name, f"Error: MCP server {server.name!r} is unavailable: {error}")
        try:
            result = await session.call_tool(tool, forwarded, limit)
        except TimeoutError:
            breaker.failure(f"timed out after {limit:g} s")
            return _error(name, f"Error: {name} timed out after {limit:g} s")
        except SessionError as error:
            breaker.failure(str(error))
            return _error(name, f"Error: MCP server {server.name!r} failed: {error}")
        breaker.success()
        text, is_error = result_text(result)
        if not is_error:
            for path in read:
                self.ledger.record_read(path)
            self._record_created(created)
        return CallOutcome(ToolResult(name=name, content=text, is_error=is_error))

    def _check_arguments(
        self, phase: Phase, name: str, tool: str, arguments: dict[str, Any]
    ) -> CallOutcome | tuple[dict[str, Any], list[str], list[str]]:
        """A denial, or (arguments to forward, paths read, paths that may be created)."""
        scope = self.scope(phase)
        forwarded = copy.deepcopy(arguments)
        created: list[str] = []
        read: list[str] = []
        for ref in path_arguments(tool, forwarded):
            decision = scope.check(ref.value, ref.access, self.ledger)
            if not decision.allowed:
                return CallOutcome(_denied(name, decision.message), decision)
            # Forward the resolved path, so the server acts on exactly what was checked.
            ref.container[ref.key] = decision.path
            if ref.access == "read":
                read.append(decision.path)
            elif not os.path.lexists(decision.path):
                created.append(decision.path)
        return forwarded, read, created

    def _record_created(self, paths: list[str]) -> None:
        for path in paths:
            if os.path.lexists(path):
                self.ledger.record_created(path)

    async def close(self) -> None:
        """Close every session of this agent."""
        sessions, self.sessions = list(self.sessions.values()), {}
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)


def _error(name: str, text: str) -> CallOutcome:
    return CallOutcome(ToolResult(name=name, content=text, is_error=True))


def _denied(name: str, message: str) -> ToolResult:
    return ToolResult(name=name, content=message, is_error=True, denied=True)


# -- one run --------------------------------------------------------------------------


class RunTools:
    """Everything the gateway holds for one run.

    Args:
        run_id: the run.
        config: its config (from the runs bucket).
        settings: gateway settings.
        winner_label: the winner's label once known.

    Raises:
        ToolsConfigError: a server uses the reserved name ``workspace``.
    """

    def __init__(
        self,
        run_id: str,
        config: RunConfig,
        settings: GatewaySettings,
        winner_label: str | None = None,
    ) -> None:
        self.run_id = run_id
        self.config = config
        self.settings = settings
        self.winner_label = winner_label
        self.labels = {a.id: label_for(i) for i, a in enumerate(config.agents)}
        self.layout: RunLayout = layout_for(Path(settings.workspace_root), run_id, config)
        self.agents: dict[str, AgentTools] = {}
        self.closed = False
        for i, agent in enumerate(config.agents):
            for j, server in enumerate(agent.backend.mcp_servers):
                if server.name == BUILTIN_SERVER:
                    raise ToolsConfigError(
                        f"agents[{i}].backend.mcp_servers[{j}].name: {BUILTIN_SERVER!r} is "
                        "reserved for the gateway's built-in workspace tools; rename the server"
                    )

    def uses_tools(self, agent_id: str) -> bool:
        """True when the agent has MCP servers, a cwd, or the run has context paths."""
        agent = next(a for a in self.config.agents if a.id == agent_id)
        b = agent.backend
        return bool(b.mcp_servers or b.cwd or self.config.orchestrator.context_paths)

    def agent(self, agent_id: str, label: str) -> AgentTools:
        """The agent's tools, created on first use.

        Raises:
            KeyError: no such agent, or the label is not this agent's.
        """
        if self.labels.get(agent_id) != label:
            raise KeyError(
                f"agent {agent_id!r} with label {label!r} is not part of run {self.run_id}"
            )
        tools = self.agents.get(agent_id)
        if tools is None:
            index = next(i for i, a in enumerate(self.config.agents) if a.id == agent_id)
            agent = self.config.agents[index]
            tools = AgentTools(
                self, index, agent, label, self.layout.workspace(label, agent.backend.cwd)
            )
            self.agents[agent_id] = tools
        return tools

    def workspace_of(self, label: str) -> Path | None:
        """The workspace folder of the agent with ``label`` (None if unknown)."""
        for i, agent in enumerate(self.config.agents):
            if label_for(i) == label:
                return self.layout.workspace(label, agent.backend.cwd)
        return None

    async def close(self) -> None:
        """Close every session of the run. Safe to call twice."""
        self.closed = True
        agents = list(self.agents.values())
        await asyncio.gather(*(a.close() for a in agents), return_exceptions=True)
