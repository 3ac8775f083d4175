"""The tools of one run: per agent its workspace, MCP sessions, breakers and ledger.

No NATS here: ``service.py`` turns requests into calls of ``RunTools`` and publishes
what comes back. Tool names are ``mcp__<server>__<tool>`` (``tool_names``); the built-in
workspace tools are the server ``workspace`` (``builtin``, with ``execute_command`` when
the backend sets ``enable_mcp_command_line``); custom tools are ``custom_tool__<name>``.
``AgentTools.call`` checks and dispatches a call: third-party servers in
``server_calls``, commands and custom tools in ``exec_calls``. An agent's workspace is
made on its first listing or call: in a run that continues a session, as a copy of the
previous turn's final workspace (``workspace.seed_workspace``).
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from massgen_proto.config import AgentConfig, McpServerConfig, RunConfig
from massgen_proto.ids import label_for
from massgen_proto.json_types import JsonObject
from massgen_proto.messages import Phase
from massgen_proto.skills import AgentSkills
from massgen_proto.tools import ToolList

from .builtin import BUILTIN_SERVER, BUILTIN_TOOLS, run_builtin
from .commands import ALIASES, EXECUTE_COMMAND
from .custom_tools import CUSTOM_PREFIX, CustomTool, specs
from .documents import WRITE_DOCUMENT, call_write_document
from .documents import offers as offers_write_document
from .exec_calls import call_command, call_custom, close_exec, list_custom
from .launch import launchable
from .media_tools import READ_MULTIMODAL, agent_media, call_read_multimodal, offers_read_multimodal
from .outcome import CallOutcome, denied_result, threaded_call, tool_error
from .permissions import AccessLedger, AgentScope, ContextRoot, Decision, build_scope
from .server_calls import call_server
from .sessions import CircuitBreaker, McpSession, SessionError, ToolInfo
from .settings import GatewaySettings
from .skills import read_skills
from .tool_names import PREFIX, openai_tool, tool_name, tool_visible
from .tool_paths import access_for, path_arguments
from .workspace import PREVIOUS_LINK, RunLayout, layout_for, seed_workspace

__all__ = [
    "AgentTools",
    "CallOutcome",
    "RunTools",
    "ToolsConfigError",
    "access_for",
    "close_exec",
    "path_arguments",
    "tool_name",
    "tool_visible",
]

log = structlog.get_logger("massgen_gateway")


class ToolsConfigError(ValueError):
    """The run's tool settings cannot be used (names the offending key)."""


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
    custom_listing: tuple[list[JsonObject], list[str]] | None = None
    """The custom tools offered and the problems, once a listing had no problem a retry
    could fix (a function missing from the built-in library stays missing)."""
    _prepared: bool = False
    _preparing: asyncio.Lock = field(default_factory=asyncio.Lock)
    previous_note: str = ""
    """What the tool listing tells the model about the previous turn's files ("" none)."""

    @property
    def builtins(self) -> bool:
        """Built-in workspace tools are offered when the agent has a ``cwd``, runs
        commands or writes documents, or the run has context paths or skills (read with
        ``read_file``)."""
        b = self.agent.backend
        context = self.run.config.orchestrator.context_paths
        skills = self.run.skills_folder is not None
        return bool(
            b.cwd or b.enable_mcp_command_line or b.enable_file_generation or context or skills
        )

    @property
    def custom_tools(self) -> list[CustomTool]:
        """The agent's ``custom_tools``, one per function (paths made absolute)."""
        return specs(self.agent.backend.custom_tools, self.index, os.getcwd())

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
            previous=str(run.previous) if run.previous is not None else None,
            skills=run.skills_folder,
        )

    async def prepare(self) -> None:
        """Make the workspace on first use: a copy of the previous turn's final
        workspace (and a ``previous_turn`` link to it) when the run continues a session."""
        if self._prepared:
            return
        async with self._preparing:
            if self._prepared:
                return
            previous = self.run.previous
            if previous is not None:
                seeded = await asyncio.to_thread(seed_workspace, self.workspace, previous)
                log.info(
                    "workspace_seeded" if seeded else "workspace_kept",
                    run_id=self.run.run_id, label=self.label, previous=str(previous),
                )  # fmt: skip
                link = self.workspace / PREVIOUS_LINK
                # Two stats, once per agent and run: not worth a thread.
                same = os.path.realpath(link) == os.path.realpath(previous)  # noqa: ASYNC240
                linked = link.is_symlink() and same
                where = f"{PREVIOUS_LINK}/ ({previous})" if linked else str(previous)
                self.previous_note = (
                    " This task continues an earlier turn: your workspace started as a copy "
                    f"of that turn's final files, whose originals are read-only in {where}."
                )
            self.workspace.mkdir(parents=True, exist_ok=True)
            self._prepared = True

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
                launchable(server, self.run.settings, self.workspace),
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

    async def list_tools(self, phase: Phase) -> ToolList:
        """Built-in tools (when enabled) and every server's tools, filtered and named."""
        backend = self.agent.backend
        await self.prepare()
        tools: list[JsonObject] = []
        errors: list[str] = []
        if self.builtins:
            tools += self._builtin_listing()
        if backend.custom_tools:
            custom, problems = await list_custom(self, phase)
            tools += custom
            errors += problems
        await self._server_listing(tools, errors)
        media = await asyncio.to_thread(agent_media, self)
        return ToolList(tools=tools, errors=errors, media=media, skills=await self.run.skills())

    def _builtin_listing(self) -> list[JsonObject]:
        offered = list(BUILTIN_TOOLS.values())
        if self.agent.backend.enable_mcp_command_line:
            offered.append(EXECUTE_COMMAND)
        if offers_read_multimodal(self):
            offered.append(READ_MULTIMODAL)
        if offers_write_document(self):
            offered.append(WRITE_DOCUMENT)
        return [
            openai_tool(
                tool_name(BUILTIN_SERVER, tool.name),
                tool.description + (self.previous_note if tool.name == "list_directory" else ""),
                tool.input_schema(),
            )
            for tool in offered
            if self._builtin_visible(tool.name)
        ]

    async def _server_listing(self, tools: list[JsonObject], errors: list[str]) -> None:
        """Add every server's visible tools to ``tools``, and what failed to ``errors``."""
        backend = self.agent.backend

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
                        openai_tool(
                            tool_name(server.name, info.name), info.description, info.input_schema
                        )
                    )

    def _builtin_visible(self, tool: str) -> bool:
        b = self.agent.backend
        if tool == EXECUTE_COMMAND.name:
            if not b.enable_mcp_command_line:
                return False
            # MassGen's configs name it after MassGen's server: honour those names too.
            if b.allowed_tools is not None and ALIASES.intersection(b.allowed_tools):
                return not (b.exclude_tools and ALIASES.intersection(b.exclude_tools))
            if b.exclude_tools and ALIASES.intersection(b.exclude_tools):
                return False
        return tool_visible(BUILTIN_SERVER, tool, b.allowed_tools, b.exclude_tools)

    def custom_visible(self, tool: CustomTool) -> bool:
        """Whether a custom tool is offered (by its bare or its full name)."""
        b = self.agent.backend
        names = {tool.name, tool.tool_name}
        if b.allowed_tools is not None and not names.intersection(b.allowed_tools):
            return False
        return not (b.exclude_tools and names.intersection(b.exclude_tools))

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
        self, phase: Phase, name: str, arguments: JsonObject | str, seconds: float | None
    ) -> CallOutcome:
        """Check every path argument, then run the tool. Never raises for tool failures."""
        await self.prepare()
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except json.JSONDecodeError:
                return tool_error(name, f"the arguments of {name} are not valid JSON")
        if not isinstance(arguments, dict):
            return tool_error(name, f"the arguments of {name} must be a JSON object")
        split = self._split(name)
        backend = self.agent.backend
        unavailable = tool_error(
            name, f"Error: tool {name!r} is not available. Use only the tools you were offered."
        )
        if name.startswith(CUSTOM_PREFIX):
            custom = next((t for t in self.custom_tools if t.tool_name == name), None)
            if custom is None or not self.custom_visible(custom):
                return unavailable
            return await call_custom(self, phase, name, custom, arguments, seconds)
        if split is None:
            return unavailable
        server_name, tool = split
        if server_name == BUILTIN_SERVER:
            if tool == EXECUTE_COMMAND.name and self._builtin_visible(tool):
                return await call_command(self, phase, name, arguments, seconds)
            if tool == READ_MULTIMODAL.name and offers_read_multimodal(self):
                if self._builtin_visible(tool):
                    return await call_read_multimodal(self, phase, name, arguments)
            if tool == WRITE_DOCUMENT.name and offers_write_document(self):
                if self._builtin_visible(tool):
                    return await call_write_document(self, phase, name, arguments)
            if tool not in BUILTIN_TOOLS or not self._builtin_visible(tool):
                return unavailable
            return await self._call_builtin(phase, name, tool, arguments)
        server = self._server(server_name)
        assert server is not None
        if not tool_visible(
            server_name, tool, backend.allowed_tools, backend.exclude_tools,
            server.allowed_tools, server.exclude_tools,
        ):  # fmt: skip
            return unavailable
        return await call_server(self, phase, name, server, tool, arguments, seconds)

    async def _call_builtin(
        self, phase: Phase, name: str, tool: str, arguments: JsonObject
    ) -> CallOutcome:
        spec = BUILTIN_TOOLS[tool]
        scope = self.scope(phase)
        decisions: dict[str, Decision] = {}
        for arg in spec.paths:
            raw = arguments.get(arg.name, arg.default)
            if raw is None:
                return tool_error(name, f"{name} needs the argument {arg.name!r}")
            decision = scope.check(raw, arg.access, self.ledger)
            if not decision.allowed:
                return CallOutcome(denied_result(name, decision.message), decision)
            decisions[arg.name] = decision
        return await threaded_call(
            name, scope, lambda: run_builtin(tool, decisions, arguments, self.ledger)
        )

    async def close(self) -> None:
        """Close every session of this agent."""
        sessions, self.sessions = list(self.sessions.values()), {}
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)


# -- one run --------------------------------------------------------------------------


class RunTools:
    """Everything the gateway holds for one run.

    Args:
        run_id: the run.
        config: its config (from the runs bucket).
        settings: gateway settings.
        winner_label: the winner's label once known.
        previous: the previous turn's final workspace when the run continues a session
            (the gateway's own folder, found from ``RunRecord.previous_run_id``).

    Raises:
        ToolsConfigError: a server uses the reserved name ``workspace``.
    """

    def __init__(
        self,
        run_id: str,
        config: RunConfig,
        settings: GatewaySettings,
        winner_label: str | None = None,
        previous: Path | None = None,
    ) -> None:
        self.run_id = run_id
        self.config = config
        self.settings = settings
        self.winner_label = winner_label
        self.previous = previous
        self.labels = {a.id: label_for(i) for i, a in enumerate(config.agents)}
        self.layout: RunLayout = layout_for(Path(settings.workspace_root), run_id, config)
        self.agents: dict[str, AgentTools] = {}
        self.closed = False
        coordination = config.orchestrator.coordination
        self.skills_folder: str | None = (
            os.path.realpath(os.path.expanduser(coordination.skills_directory))
            if coordination.use_skills
            else None
        )
        """The skills folder every agent may read (None: ``use_skills`` is off)."""
        self._skills: AgentSkills | None = None
        for i, agent in enumerate(config.agents):
            for j, server in enumerate(agent.backend.mcp_servers):
                if server.name == BUILTIN_SERVER:
                    raise ToolsConfigError(
                        f"agents[{i}].backend.mcp_servers[{j}].name: {BUILTIN_SERVER!r} is "
                        "reserved for the gateway's built-in workspace tools; rename the server"
                    )

    def uses_tools(self, agent_id: str) -> bool:
        """True when the agent has MCP servers, a cwd, commands or custom tools, or the run
        has context paths."""
        return self.config.uses_tools(next(a for a in self.config.agents if a.id == agent_id))

    async def skills(self) -> AgentSkills | None:
        """The skills folder's skills, read on first use (again while it has a problem,
        so a folder made after the run started is found)."""
        if self.skills_folder is None:
            return None
        if self._skills is None or self._skills.problem:
            configured = self.config.orchestrator.coordination.skills_directory
            self._skills = await asyncio.to_thread(read_skills, configured)
        return self._skills

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
