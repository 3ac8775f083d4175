"""The run config: MassGen-compatible YAML/JSON, validated into typed models.

Errors name the offending key as a path (``agents[1].backend.type``) and say what is
wrong. Keys that MassGen has but this project does not honour are either rejected
(when ignoring them would change what the run means) or accepted with a warning.

The models by section: ``run`` (the team, its time budgets and display), ``backend`` (an
agent's model backend), ``agent_tools`` (MCP servers, custom tools), ``orchestrator``
(coordination settings); ``loading`` reads a file and reports the problems.
"""

from __future__ import annotations

from .agent_tools import CustomToolConfig, McpServerConfig
from .backend import BackendConfig
from .loading import ConfigError, load_config, parse_config
from .orchestrator import ContextPath, CoordinationConfig, OrchestratorConfig
from .run import AgentConfig, RunConfig, TimeoutSettings, UiConfig

__all__ = [
    "AgentConfig",
    "BackendConfig",
    "ConfigError",
    "ContextPath",
    "CoordinationConfig",
    "CustomToolConfig",
    "McpServerConfig",
    "OrchestratorConfig",
    "RunConfig",
    "TimeoutSettings",
    "UiConfig",
    "load_config",
    "parse_config",
]
