"""An agent's model backend: typed keys, provider parameters passed through, keys refused."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from ..providers import (
    BACKENDS,
    BUILTIN_TOOL_KEYS,
    UNSUPPORTED_TYPES,
    builtin_tool_problem,
    known_types,
    param_problem,
)
from .agent_tools import CustomToolConfig, McpServerConfig
from .multimodal import DEFAULT_MEDIA_MAX_MB, UploadFile

__all__ = ["BackendConfig"]

# Backend keys MassGen uses that are not litellm parameters. Value: None = accepted and
# ignored with a warning (the reason in _IGNORED_WHY, else a generic one); a string =
# rejected with that reason when the key is on (false, null or empty: ignored, warned).
# Backend keys in neither list nor typed are sent only when they are parameters of the
# backend type's provider (providers.param_problem), and otherwise warned about.
_BACKEND_NON_PARAMS: dict[str, str | None] = {
    "permission_mode": None,
    # MassGen's docker-mode details: commands run in the gateway's own sandbox instead.
    "command_line_docker_image": None,
    "command_line_docker_cpu_limit": None,
    "command_line_docker_enable_sudo": "commands run as an unprivileged user in the gateway's "
    "sandbox, without sudo",
    "command_line_docker_credentials": "the gateway's command sandbox takes no credentials",
    "command_line_docker_packages": "commands run in the gateway's sandbox on its own system "
    "folders; packages cannot be installed per run",
}

_IGNORED_WHY: dict[str, str] = {
    "permission_mode": "a Claude Code setting; tool permissions here come from "
    "orchestrator.context_paths",
    "command_line_docker_image": "commands run in the gateway's sandbox on the gateway's own "
    "system folders, not in a container image",
    "command_line_docker_cpu_limit": "the gateway bounds each command's CPU seconds and time "
    "(its exec_* settings)",
}


NETWORK_MODES = ("none", "bridge", "host")
"""MassGen's ``command_line_docker_network_mode`` values."""

_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.I)


def _memory_bytes(text: str) -> int:
    """``"2g"`` / ``"512m"`` / ``"1024"`` (docker's notation) in bytes."""
    match = _MEMORY.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a memory size like '512m' or '2g'")
    unit = " kmgt".index(match.group(2).lower() or " ")
    return int(float(match.group(1)) * 1024**unit)


class BackendConfig(BaseModel):
    """An agent's model backend.

    Keys beyond the typed ones are kept (so a dumped config says what its author wrote)
    but reach the provider call only when they are parameters of the backend type's
    provider (``passthrough_params``); the others come out of ``RunConfig.warnings``.
    """

    model_config = ConfigDict(extra="allow")

    type: str
    model: str | None = None
    base_url: str | None = None
    api_key: str | None = Field(default=None, repr=False)
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, gt=0)
    enable_web_search: bool = False
    """Let the model search the web with its provider's own search tool."""
    enable_code_interpreter: bool = False
    """Let the model run code in its provider's sandbox (OpenAI's name for it)."""
    enable_code_execution: bool = False
    """Same as ``enable_code_interpreter`` (Claude's and Gemini's name for it)."""
    cwd: str | None = None
    mcp_servers: list[McpServerConfig] = Field(default_factory=list)
    allowed_tools: list[str] | None = None
    exclude_tools: list[str] | None = None
    enable_mcp_command_line: bool = False
    """Offer the gateway's ``execute_command`` tool (commands run in its sandbox)."""
    command_line_execution_mode: Literal["local", "docker"] = "local"
    """``docker``: the run requires isolation, so the gateway's bubblewrap sandbox and
    never an unsandboxed fallback; ``local``: the sandbox too where the gateway has one."""
    command_line_allowed_commands: list[str] | None = None
    """Regular expressions: a command must match one of them (from its start) to run."""
    command_line_blocked_commands: list[str] | None = None
    """Regular expressions: a command matching one of them (from its start) is refused."""
    command_line_docker_network_mode: str = "none"
    """``none`` (no network), or ``bridge`` / ``host``: commands get the gateway's network,
    where the deployment allows it (the CLI's own stack does; an API only when its
    operator allows it, else the config is refused)."""
    command_line_docker_memory_limit: str | None = None
    """Address space per process (``"2g"``), at most the gateway's own limit."""
    command_execution_prefix: str | None = None
    """Put before every command (``"uv run"``)."""
    command_execution_venv_path: str | None = None
    """A virtualenv whose ``bin`` goes first on commands' PATH (readable in the sandbox)."""
    custom_tools: list[CustomToolConfig] = Field(default_factory=list)
    upload_files: list[UploadFile] = Field(default_factory=list)
    """Images and sounds put into the agent's user message (``multimodal``)."""
    media_max_file_size_mb: float = Field(default=DEFAULT_MEDIA_MAX_MB, gt=0)
    """Largest upload or generated file, in megabytes (MassGen's key)."""
    enable_image_generation: bool = False
    """Offer a ``generate_image`` tool saving pictures into the workspace."""
    enable_audio_generation: bool = False
    """Offer a ``generate_audio`` tool saving speech into the workspace."""
    enable_audio_understanding: bool = False
    """Offer a ``transcribe_audio`` tool returning the text of a workspace sound."""
    enable_video_generation: bool = False
    """Offer a ``generate_video`` tool saving the provider's MP4 into the workspace."""
    enable_file_generation: bool = False
    """Offer a ``write_document`` tool rendering the model's text as a TXT, Markdown,
    PDF, PPTX or DOCX file in the workspace (MassGen's ``text_to_file_generation``)."""

    @field_validator("command_line_allowed_commands", "command_line_blocked_commands")
    @classmethod
    def _patterns_compile(cls, value: list[str] | None) -> list[str] | None:
        for pattern in value or []:
            try:
                re.compile(pattern)
            except re.error as error:
                raise ValueError(f"{pattern!r} is not a regular expression: {error}") from None
        return value

    @field_validator("command_line_docker_network_mode")
    @classmethod
    def _known_network_mode(cls, value: str) -> str:
        if value not in NETWORK_MODES:
            raise ValueError(
                f"network mode {value!r} is not one of {', '.join(map(repr, NETWORK_MODES))} "
                "(MassGen's modes): 'none' runs commands without network, 'bridge' and "
                "'host' with the gateway's network"
            )
        return value

    @property
    def command_network(self) -> bool:
        """Commands ask for the network (``bridge`` or ``host``; the sandbox has no
        bridge of its own, so both mean the gateway's network, where it allows it)."""
        return self.command_line_docker_network_mode != "none"

    @field_validator("command_line_docker_memory_limit")
    @classmethod
    def _memory_size(cls, value: str | None) -> str | None:
        if value is not None:
            _memory_bytes(value)
        return value

    @field_validator("custom_tools")
    @classmethod
    def _unique_custom_tools(cls, value: list[CustomToolConfig]) -> list[CustomToolConfig]:
        names = [name for entry in value for name, _, _, _ in entry.entries()]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"duplicate custom tool names: {', '.join(duplicates)}")
        return value

    @property
    def command_memory_bytes(self) -> int | None:
        """``command_line_docker_memory_limit`` in bytes (None: not set)."""
        if self.command_line_docker_memory_limit is None:
            return None
        return _memory_bytes(self.command_line_docker_memory_limit)

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

    @field_validator(*BUILTIN_TOOL_KEYS)
    @classmethod
    def _provider_has_tool(cls, value: bool, info: ValidationInfo) -> bool:
        # ``type`` is declared first, so it is validated (or failed) by now.
        backend_type = info.data.get("type")
        if value and backend_type:
            problem = builtin_tool_problem(backend_type, str(info.field_name))
            if problem:
                raise ValueError(problem)
        return value

    @field_validator("upload_files", mode="before")
    @classmethod
    def _uploads_as_list(cls, value: Any) -> Any:
        # ``upload_files:`` left empty in YAML is null: no uploads.
        return [] if value is None else value

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
        for key, value in (self.model_extra or {}).items():
            reason = _BACKEND_NON_PARAMS.get(key)
            if reason and value not in (False, None, "", [], {}):
                raise ValueError(f"key {key!r} is not supported: {reason}")
        spec = BACKENDS[self.type]
        if spec.needs_base_url and not self.base_url:
            raise ValueError(f"backend type {self.type!r} needs 'base_url' (the server's /v1 URL)")
        if not self.model:
            raise ValueError(f"backend type {self.type!r} needs 'model'")
        return self

    @model_validator(mode="after")
    def _multimodal_counterparts_on(self) -> BackendConfig:
        # A MassGen generation tool in custom_tools means the agent generates media: the
        # switch of the counterpart tool goes on (and is checked against the provider).
        for entry in self.custom_tools:
            for _, counterpart in entry.counterparts():
                if counterpart.flag:
                    setattr(self, counterpart.flag, True)
        return self

    @property
    def provider(self) -> str:
        """Worker pool that serves this backend."""
        return BACKENDS[self.type].provider

    def passthrough_params(self) -> dict[str, Any]:
        """What the worker needs for the provider call beyond the typed keys.

        The config's keys that are parameters of the backend type's provider (never any
        other key), and the built-in tool switches that are on (``enable_web_search``…),
        which the worker turns into the provider's own tools.
        """
        params = {
            key: value
            for key, value in (self.model_extra or {}).items()
            if key not in _BACKEND_NON_PARAMS and param_problem(self.type, key) is None
        }
        extra_body = params.get("extra_body")
        if self.type == "grok" and isinstance(extra_body, dict):
            # xAI retired Live Search: the request would fail (see ignored_keys).
            params["extra_body"] = {k: v for k, v in extra_body.items() if k != "search_parameters"}
        params.update({key: True for key in BUILTIN_TOOL_KEYS if getattr(self, key)})
        return params

    def ignored_keys(self) -> list[tuple[str, str]]:
        """``(key, why it has no effect)`` for each key of this backend that is accepted
        but not applied: MassGen keys this project does not use, keys that are not
        parameters of the provider, and parts of MassGen's nested keys it cannot honour."""
        ignored: list[tuple[str, str]] = []
        for key, value in (self.model_extra or {}).items():
            if key in _BACKEND_NON_PARAMS:
                why = _IGNORED_WHY.get(key, "a MassGen setting this project does not apply")
                if _BACKEND_NON_PARAMS[key]:
                    why = "off or empty"  # refused when on (see _rejected_and_required)
                ignored.append((key, f"ignored ({why})"))
            elif problem := param_problem(self.type, key):
                ignored.append((key, problem))
            else:
                ignored += _nested_ignored(self.type, key, value)
        return ignored


_VERBOSITY_TYPES = frozenset({"openai", "azure_openai"})


def _nested_ignored(backend_type: str, key: str, value: Any) -> list[tuple[str, str]]:
    """The parts of MassGen's nested keys (``reasoning``, ``text``, ``extra_body``) that
    the worker cannot send for ``backend_type``, as ``(key path, why)``."""
    found: list[tuple[str, str]] = []
    if key in ("reasoning", "text") and not isinstance(value, dict):
        return [(key, "ignored (a mapping is expected, e.g. {effort: low})")]
    if key == "reasoning":
        for sub in value:
            if sub not in ("effort", "summary"):
                found.append((f"reasoning.{sub}", "ignored (only effort and summary are used)"))
        if "summary" in value and backend_type not in _VERBOSITY_TYPES:
            found.append(("reasoning.summary", "ignored (reasoning summaries are OpenAI's)"))
    elif key == "text":
        for sub in value:
            if sub != "verbosity":
                found.append((f"text.{sub}", "ignored (only verbosity is used)"))
            elif backend_type not in _VERBOSITY_TYPES:
                found.append(("text.verbosity", "ignored (verbosity is an OpenAI parameter)"))
    elif key == "extra_body" and backend_type == "grok" and isinstance(value, dict):
        if "search_parameters" in value:
            found.append((
                "extra_body.search_parameters",
                "not sent: xAI retired Live Search; set enable_web_search: true for xAI's "
                "web search tool",
            ))  # fmt: skip
    return found
