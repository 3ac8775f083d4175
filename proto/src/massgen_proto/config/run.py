"""A whole team config: its agents, orchestrator, time budgets and display."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from .backend import BackendConfig
from .base import ConfigModel
from .multimodal import media_problems, vision_problem
from .orchestrator import OrchestratorConfig

__all__ = ["AgentConfig", "RunConfig", "TimeoutSettings", "UiConfig"]

_TOP_LEVEL_REJECTED: dict[str, str] = {
    "memory": "persistent agent memory is not supported; remove the 'memory' section",
}


class AgentConfig(ConfigModel):
    """One agent of the team."""

    id: str = Field(min_length=1)
    backend: BackendConfig
    system_message: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _append_system_prompt(cls, data: Any) -> Any:
        # MassGen's ``append_system_prompt`` (Claude Code's spelling) adds to the system
        # message; folded in here, so a dumped config holds the one message it means.
        if isinstance(data, dict) and "append_system_prompt" in data:
            data = dict(data)
            extra = data.pop("append_system_prompt")
            if extra:
                parts = [data.get("system_message"), extra]
                data["system_message"] = "\n\n".join(str(p).strip() for p in parts if p)
        return data

    @model_validator(mode="after")
    def _media_fits_model(self) -> AgentConfig:
        # Here rather than in the backend: the message names the agent by its id too.
        b = self.backend
        generation = {
            "enable_image_generation": b.enable_image_generation,
            "enable_audio_generation": b.enable_audio_generation,
            "enable_audio_understanding": b.enable_audio_understanding,
            "enable_video_generation": b.enable_video_generation,
        }
        for key, why in media_problems(b.type, b.model or "", b.upload_files, generation):
            raise ValueError(f"backend.{key}: agent {self.id!r}: {why}")
        for index, entry in enumerate(b.custom_tools):
            for function, counterpart in entry.counterparts():
                problem = vision_problem(b.type, b.model or "", function, counterpart.tool)
                if problem:
                    raise ValueError(
                        f"backend.custom_tools[{index}].function: agent {self.id!r}: {problem}"
                    )
        return self


class TimeoutSettings(ConfigModel):
    """Time budgets of a run."""

    orchestrator_timeout_seconds: float = Field(default=1800, gt=0)
    turn_timeout_seconds: float = Field(default=600, gt=0)


class UiConfig(ConfigModel):
    """How the CLI shows a run."""

    display_type: Literal["rich_terminal", "terminal", "simple"] | None = None
    logging_enabled: bool = True
    type: Literal["rich_terminal", "terminal", "simple"] | None = None
    """Older spelling of ``display_type``."""

    @property
    def display(self) -> str | None:
        """The chosen display type, whichever spelling the config used."""
        return self.display_type or self.type


class RunConfig(ConfigModel):
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
        if "agent" not in data and "agents" not in data:
            # e.g. MassGen's rate-limit table, which sits among its team configs
            raise ValueError(
                "not a team config: it has neither 'agents' (a list) nor 'agent'; top-level "
                f"keys found: {', '.join(map(str, data)) or 'none'}"
            )
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

    def uses_tools(self, agent: AgentConfig) -> bool:
        """True when ``agent`` has tools beyond the workflow ones: MCP servers, a
        workspace, commands or custom tools, uploads or media generation (the gateway
        holds those files), or the run has context paths or skills."""
        b = agent.backend
        return bool(
            b.mcp_servers or b.cwd or b.enable_mcp_command_line or b.custom_tools
            or self.orchestrator.context_paths or self.orchestrator.coordination.use_skills
            or b.upload_files or b.enable_image_generation
            or b.enable_audio_generation or b.enable_audio_understanding
            or b.enable_video_generation
            or b.enable_file_generation
        )  # fmt: skip

    def warnings(self) -> list[str]:
        """Keys accepted but not applied, one ``key.path: why`` message each."""
        notes: list[str] = []
        for index, agent in enumerate(self.agents):
            for key, why in agent.backend.ignored_keys():
                notes.append(f"agents[{index}].backend.{key}: {why}")
            for number, entry in enumerate(agent.backend.custom_tools):
                for key, why in entry.warnings():
                    notes.append(f"agents[{index}].backend.custom_tools[{number}].{key}: {why}")
        for key, why in self.orchestrator.coordination.warnings():
            notes.append(f"orchestrator.coordination.{key}: {why}")
        for key, why in self.orchestrator.warnings():
            notes.append(f"orchestrator.{key}: {why}")
        return notes
