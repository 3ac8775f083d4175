"""Reading a config: YAML or JSON in, a ``RunConfig`` or a ``ConfigError`` naming each key out."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .run import RunConfig

__all__ = ["ConfigError", "load_config", "parse_config"]


class ConfigError(ValueError):
    """A config that cannot be used. ``problems`` holds one ``(key_path, message)`` per issue."""

    def __init__(self, problems: list[tuple[str, str]], source: str | None = None) -> None:
        self.problems = problems
        self.source = source
        where = f"{source}: " if source else ""
        lines = [f"{where}{path or '<root>'}: {message}" for path, message in problems]
        super().__init__("\n".join(lines))


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
        agents = data.get("agents") or ([data["agent"]] if "agent" in data else [])
        for agent in agents if isinstance(agents, list) else []:  # else: validation says
            backend = agent.get("backend") if isinstance(agent, dict) else None
            if isinstance(backend, dict) and "mcp_servers" in backend:
                backend["mcp_servers"] = _substitute_env(backend["mcp_servers"])
    return parse_config(data, source)
