"""Named team configs, loaded from a folder at start-up. Pure (file reads only)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from massgen_proto.config import ConfigError, RunConfig, parse_config

__all__ = ["Team", "load_teams"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True, slots=True)
class Team:
    """One named team: its file's config, validated."""

    name: str
    """File name without extension; the ``model`` in chat completions."""
    config: dict[str, Any]
    """The config mapping as the file holds it (sent to the orchestrator as is)."""
    description: str
    agents: list[dict[str, str]]
    """``{id, type, model}`` per agent (no keys or URLs)."""


def _describe(name: str, config: RunConfig, raw: dict[str, Any]) -> Team:
    agents = [
        {"id": a.id, "type": a.backend.type, "model": a.backend.model or ""} for a in config.agents
    ]
    description = raw.pop("description", None) if isinstance(raw, dict) else None
    description = description or ", ".join(f"{a['id']} ({a['model']})" for a in agents)
    return Team(name=name, config=raw, description=str(description), agents=agents)


def load_teams(folder: Path | None) -> dict[str, Team]:
    """Read every ``*.yaml`` / ``*.yml`` / ``*.json`` file of ``folder`` as a team.

    An optional top-level ``description`` key is taken out before validation.

    Raises:
        ConfigError: a file is unreadable or invalid; names the file and the key path.
    """
    if folder is None:
        return {}
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError([("", "teams folder does not exist")], str(folder))
    teams: dict[str, Team] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix not in (".yaml", ".yml", ".json") or not path.is_file():
            continue
        name = path.stem
        if not _NAME.match(name):
            raise ConfigError([("", f"team name {name!r} must match {_NAME.pattern}")], str(path))
        if name in teams:
            raise ConfigError([("", f"team {name!r} is defined twice")], str(path))
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as error:
            raise ConfigError([("", f"cannot read team file: {error}")], str(path)) from None
        raw = dict(raw) if isinstance(raw, dict) else raw
        description = raw.pop("description", None) if isinstance(raw, dict) else None
        config = parse_config(raw, str(path))
        team = _describe(name, config, raw)
        if description:
            team = Team(team.name, team.config, str(description), team.agents)
        teams[name] = team
    return teams
