"""The run config: MassGen-compatible YAML/JSON, validated into typed models.

Errors name the offending key as a path (``agents[1].backend.type``) and say what is
wrong. Keys that MassGen has but this project does not honour are either rejected
(when ignoring them would change what the run means) or accepted with a warning.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from .providers import BACKENDS, UNSUPPORTED_TYPES, known_types

__all__ = [
    "AgentConfig",
    "BackendConfig",
    "ConfigError",
    "ContextPath",
    "McpServerConfig",
    "OrchestratorConfig",
    "RunConfig",
    "TimeoutSettings",
    "UiConfig",
    "load_config",
    "parse_config",
]

_SERVER_NAME = re.compile(r"^[A-Za-z0-9_-]+$")

# Backend keys MassGen uses that are not litellm parameters. Value: None = accepted and
# ignored with a warning; a string = rejected with that reason.
_BACKEND_NON_PARAMS: dict[str, str | None] = {
    "enable_web_search": None,
    "enable_code_interpreter": None,
    "enable_code_execution": None,
    "permission_mode": None,
    "upload_files": "file upload to provider vector stores is not supported",
    "enable_image_generation": "image generation output is not supported (text answers only)",
    "enable_audio_generation": "audio generation output is not supported (text answers only)",
    "enable_video_generation": "video generation output is not supported (text answers only)",
}

_TOP_LEVEL_REJECTED: dict[str, str] = {
    "memory": "persistent agent memory is not supported; remove the 'memory' section",
}


class ConfigError(ValueError):
    """A config that cannot be used. ``problems`` holds one ``(key_path, message)`` per issue."""

    def __init__(self, problems: list[tuple[str, str]], source: str | None = None) -> None:
        self.problems = problems
        self.source = source
        where = f"{source}: " if source else ""
        lines = [f"{where}{path or '<root>'}: {message}" for path, message in problems]
        super().__init__("\n".join(lines))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class McpServerConfig(_Model):
    """One MCP server an agent may use (brokered by the mcp-gateway)."""

    name: str
    type: Literal["stdio", "streamable-http"]
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: float | None = Field(default=None, gt=0)
    allowed_tools: list[str] | None = None
    exclude_tools: list[str] | None = None
    security: dict[str, Any] | None = None
    """MassGen's per-server security block; kept for compatibility, not interpreted."""

    @field_validator("name")
    @classmethod
    def _name_is_token(cls, value: str) -> str:
        if not _SERVER_NAME.match(value):
            raise ValueError(f"server name {value!r} must match ^[A-Za-z0-9_-]+$")
        return value

    @model_validator(mode="after")
    def _transport_fields(self) -> McpServerConfig:
        # A stdio server without a command names an entry of the deployment's catalog
        # (massgen_proto.catalog); without a catalog the gateway refuses it by name.
        if self.type == "streamable-http" and not self.url:
            raise ValueError("a streamable-http MCP server needs 'url'")
        return self


class BackendConfig(BaseModel):
    """An agent's model backend. Unknown keys pass through to the provider call."""

    model_config = ConfigDict(extra="allow")

    type: str
    model: str | None = None
    base_url: str | None = None
    api_key: str | None = Field(default=None, repr=False)
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, gt=0)
    cwd: str | None = None
    mcp_servers: list[McpServerConfig] = Field(default_factory=list)
    allowed_tools: list[str] | None = None
    exclude_tools: list[str] | None = None

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value in UNSUPPORTED_TYPES:
            raise ValueError(f"backend type {value!r} is not supported: {UNSUPPORTED_TYPES[value]}")
        if value not in BACKENDS:
            raise ValueError(
                f"unknown backend type {value!r}; known types: {', '.join(known_types())}"
            )
        return value

    @field_validator("mcp_servers", mode="before")
    @classmethod
    def _servers_as_list(cls, value: Any) -> Any:
        # MassGen accepts a list of entries or a map name -> entry; normalise to a list.
        if isinstance(value, dict):
            return [{"name": name, **(entry or {})} for name, entry in value.items()]
        return value

    @field_validator("mcp_servers")
    @classmethod
    def _unique_server_names(cls, value: list[McpServerConfig]) -> list[McpServerConfig]:
        names = [server.name for server in value]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"duplicate MCP server names: {', '.join(duplicates)}")
        return value

    @model_validator(mode="after")
    def _rejected_and_required(self) -> BackendConfig:
        for key in self.model_extra or {}:
            reason = _BACKEND_NON_PARAMS.get(key)
            if reason:
                raise ValueError(f"key {key!r} is not supported: {reason}")
        spec = BACKENDS[self.type]
        if spec.needs_base_url and not self.base_url:
            raise ValueError(f"backend type {self.type!r} needs 'base_url' (the server's /v1 URL)")
        if not self.model:
            raise ValueError(f"backend type {self.type!r} needs 'model'")
        return self

    @property
    def provider(self) -> str:
        """Worker pool that serves this backend."""
        return BACKENDS[self.type].provider

    def passthrough_params(self) -> dict[str, Any]:
        """Provider parameters given in the config beyond the typed keys."""
        return {k: v for k, v in (self.model_extra or {}).items() if k not in _BACKEND_NON_PARAMS}

    def ignored_keys(self) -> list[str]:
        """MassGen keys present in this backend that this project accepts but does not apply."""
        return [k for k in (self.model_extra or {}) if k in _BACKEND_NON_PARAMS]


class AgentConfig(_Model):
    """One agent of the team."""

    id: str = Field(min_length=1)
    backend: BackendConfig
    system_message: str | None = None


class ContextPath(_Model):
    """A user folder or file the agents may read (and the winner may write if ``write``)."""

    path: str
    permission: Literal["read", "write"] = "read"
    protected_paths: list[str] = Field(default_factory=list)


class OrchestratorConfig(_Model):
    """Coordination settings (see PROTOCOL.md)."""

    voting_sensitivity: Literal["lenient", "balanced", "strict"] = "lenient"
    answer_novelty_requirement: Literal["lenient", "balanced", "strict"] = "lenient"
    max_new_answers_per_agent: int | None = Field(default=None, ge=1)
    restart_policy: Literal["finish", "interrupt"] = "finish"
    max_agent_failures: int = Field(default=3, ge=1)
    max_tool_calls_per_turn: int = Field(default=100, ge=0)
    """Non-workflow tool calls an agent may make in one turn (this project's key)."""
    answers_prompt_chars: int = Field(default=48_000, ge=1_000)
    """Characters the block of current answers may take in a prompt, shared equally by
    the answers (this project's key): prompts grow with the team, not with answers."""
    context_paths: list[ContextPath] = Field(default_factory=list)
    snapshot_storage: str | None = None
    agent_temporary_workspace: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _reject_dspy(cls, data: Any) -> Any:
        if isinstance(data, dict) and "dspy" in data:
            raise ValueError(
                "key 'dspy' is not supported: question paraphrasing with DSPy is not "
                "implemented; remove the 'dspy' section"
            )
        return data


class TimeoutSettings(_Model):
    """Time budgets of a run."""

    orchestrator_timeout_seconds: float = Field(default=1800, gt=0)
    turn_timeout_seconds: float = Field(default=600, gt=0)


class UiConfig(_Model):
    """How the CLI shows a run."""

    display_type: Literal["rich_terminal", "terminal", "simple"] | None = None
    logging_enabled: bool = True
    type: Literal["rich_terminal", "terminal", "simple"] | None = None
    """Older spelling of ``display_type``."""

    @property
    def display(self) -> str | None:
        """The chosen display type, whichever spelling the config used."""
        return self.display_type or self.type


class RunConfig(_Model):
    """A whole team config. Exactly one of ``agent`` / ``agents`` is given in the source."""

    agents: list[AgentConfig] = Field(min_length=1)
    orchestrator: OrchestratorConfig = Field(default_factory=OrchestratorConfig)
    timeout_settings: TimeoutSettings = Field(default_factory=TimeoutSettings)
    ui: UiConfig = Field(default_factory=UiConfig)

    @model_validator(mode="before")
    @classmethod
    def _one_agent_form(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise ValueError("a config must be a mapping with an 'agents' list or an 'agent'")
        data = dict(data)
        for key, reason in _TOP_LEVEL_REJECTED.items():
            if key in data:
                raise ValueError(f"key {key!r} is not supported: {reason}")
        if "agent" in data and "agents" in data:
            raise ValueError("give either 'agent' (one agent) or 'agents' (a list), not both")
        if "agent" in data:
            data["agents"] = [data.pop("agent")]
        if "display" in data and "ui" not in data:
            data["ui"] = data.pop("display")
        return data

    @field_validator("agents")
    @classmethod
    def _unique_ids(cls, agents: list[AgentConfig]) -> list[AgentConfig]:
        ids = [agent.id for agent in agents]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"duplicate agent ids: {', '.join(duplicates)}")
        return agents

    def warnings(self) -> list[str]:
        """Keys accepted for compatibility but not applied, one message each."""
        notes: list[str] = []
        for index, agent in enumerate(self.agents):
            for key in agent.backend.ignored_keys():
                notes.append(
                    f"agents[{index}].backend.{key}: ignored (provider built-in tools and "
                    "Claude Code settings are not applied by this project)"
                )
        return notes


def _key_path(loc: tuple[Any, ...]) -> str:
    """Render a pydantic error location as ``agents[1].backend.type``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).startswith("function-") or part in ("list[...]",):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


def _problems(error: ValidationError) -> list[tuple[str, str]]:
    problems = []
    for item in error.errors():
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key (not a MassGen config key this project knows)"
        problems.append((_key_path(item["loc"]), message))
    return problems


def parse_config(data: Any, source: str | None = None) -> RunConfig:
    """Validate an already-parsed config mapping.

    Raises:
        ConfigError: naming every offending key path.
    """
    try:
        return RunConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_problems(error), source) from None


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _substitute_env(value: Any) -> Any:
    # Only MCP server args/env/headers use ${VAR}; they are substituted at load time so
    # the gateway and workers never see unresolved references.
    if isinstance(value, str):
        return _ENV_REF.sub(lambda m: os.environ.get(m.group(1), m.group(0)), value)
    if isinstance(value, list):
        return [_substitute_env(v) for v in value]
    if isinstance(value, dict):
        return {k: _substitute_env(v) for k, v in value.items()}
    return value


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a YAML or JSON config file.

    Raises:
        ConfigError: the file is missing, is not YAML, or fails validation; the message
            names the file and each offending key.
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError([("", f"cannot read config file: {error.strerror}")], source) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError([("", f"not valid YAML{where}: {problem}")], source) from None
    if isinstance(data, dict):
        for agent in data.get("agents") or ([data["agent"]] if "agent" in data else []):
            backend = agent.get("backend") if isinstance(agent, dict) else None
            if isinstance(backend, dict) and "mcp_servers" in backend:
                backend["mcp_servers"] = _substitute_env(backend["mcp_servers"])
    return parse_config(data, source)
