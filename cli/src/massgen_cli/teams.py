"""Configs the CLI builds itself (quick mode ``--model``, the default team) and the choice
between them and ``--config``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from massgen_proto.providers import BACKENDS, backend_for_model

if TYPE_CHECKING:
    import argparse

__all__ = [
    "API_TEAM_MODELS",
    "DEFAULT_LOCAL_MODEL",
    "Team",
    "default_team",
    "missing_keys",
    "point_local_agents",
    "quick_config",
    "resolve_config",
    "resolve_team",
]

DEFAULT_LOCAL_MODEL = "qwen2.5-coder-0.5b"
LOCAL_MAX_TOKENS = 384
"""Per-response cap for the local team: a small model sometimes rambles, and on two
cores every token costs ~40 ms."""

# Three perspectives, so a team on one model still disagrees usefully.
_PERSPECTIVES = (
    ("solver", "You answer directly and precisely."),
    ("checker", "You double-check facts and reasoning before answering."),
    ("explainer", "You give the answer with a short explanation."),
)
LOCAL_TEMPERATURES = (0.2, 0.5, 0.8)
"""Sampling temperature of each local member: one model, three different samplers, so the
members are not three draws of one distribution (llama.cpp's default is 0.8)."""

API_TEAM_MODELS: tuple[tuple[str, str], ...] = (
    ("openai", "gpt-4o-mini"),
    ("claude", "claude-3-5-haiku-latest"),
    ("gemini", "gemini-2.5-flash"),
    ("grok", "grok-3-mini"),
)
"""Backend type and model used by the default team when that provider's key is set."""


def quick_config(
    model: str,
    backend: str | None = None,
    base_url: str | None = None,
    system_message: str | None = None,
) -> dict[str, Any]:
    """A one-agent config from command-line flags.

    Raises:
        ValueError: the provider cannot be inferred from ``model`` (message says how to name it).
    """
    if backend is None:
        backend, model = backend_for_model(model)
    entry: dict[str, Any] = {"type": backend, "model": model}
    if base_url:
        entry["base_url"] = base_url
    agent: dict[str, Any] = {"id": model.replace("/", "-"), "backend": entry}
    if system_message:
        agent["system_message"] = system_message
    return {"agent": agent}


def default_team(env: Mapping[str, str] | None = None) -> tuple[dict[str, Any], str]:
    """The team used when no config and no model is given, and a line saying which.

    With provider keys in the environment, three agents spread over those providers;
    without any, three agents on the embedded local model.
    """
    env = os.environ if env is None else env
    available = [
        (kind, model)
        for kind, model in API_TEAM_MODELS
        if BACKENDS[kind].api_key_env and env.get(BACKENDS[kind].api_key_env)
    ]
    if available:
        picks = [available[i % len(available)] for i in range(3)]
        agents = [
            {"id": f"{name}-{kind}", "backend": {"type": kind, "model": model},
             "system_message": message}
            for (kind, model), (name, message) in zip(picks, _PERSPECTIVES, strict=True)
        ]  # fmt: skip
        used = ", ".join(sorted({f"{kind}:{model}" for kind, model in picks}))
        return {"agents": agents}, f"default team on your provider keys ({used})"
    local = {"type": "local", "model": DEFAULT_LOCAL_MODEL, "max_tokens": LOCAL_MAX_TOKENS}
    agents = [
        {"id": name, "backend": {**local, "temperature": temperature}, "system_message": message}
        for (name, message), temperature in zip(_PERSPECTIVES, LOCAL_TEMPERATURES, strict=True)
    ]
    note = (
        f"no provider API key found: using the built-in 3-agent team on the local model "
        f"{DEFAULT_LOCAL_MODEL}. Set OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY or "
        "XAI_API_KEY, or pass --config/--model, to use real providers."
    )
    # A small model tends to re-answer rather than vote: one answer each, then vote,
    # keeps a run on two CPU cores to about a minute.
    return {"agents": agents, "orchestrator": {"max_new_answers_per_agent": 1}}, note


def point_local_agents(config: dict[str, Any], endpoints: dict[str, tuple[str, str]]) -> None:
    """Give every ``local`` agent in a config mapping its server's URL and model name."""
    for agent in config.get("agents", []):
        backend = agent.get("backend", {})
        if backend.get("type") == "local" and backend.get("model") in endpoints:
            base_url, served = endpoints[backend["model"]]
            if not backend.get("base_url"):
                backend["base_url"] = base_url
            backend["model"] = served


def resolve_config(args: argparse.Namespace) -> tuple[dict[str, Any], str | None, str | None]:
    """The team to run: ``--config``, else ``--model``, else the default team.

    Args:
        args: the options ``config``, ``model``, ``backend``, ``base_url`` and
            ``system_message`` (of ``massgen`` or ``massgen eval``).

    Returns:
        (config mapping, source name, note for the user).

    Raises:
        ConfigError: the config is invalid (the message names the offending key).
        ValueError: ``--config`` and ``--model`` were both given, or the model's
            provider cannot be inferred.
    """
    from massgen_proto.config import load_config, parse_config

    from .bundled import resolve_config_path

    if args.config and args.model:
        raise ValueError("--config and --model are exclusive: give one")
    if args.config:
        config = load_config(resolve_config_path(args.config))
        return config.model_dump(mode="json"), args.config, None
    if args.model:
        data = quick_config(args.model, args.backend, args.base_url, args.system_message)
        return parse_config(data, "--model").model_dump(mode="json"), "--model", None
    data, note = default_team()
    return parse_config(data, "default team").model_dump(mode="json"), "default team", note


def missing_keys(config: dict[str, Any]) -> list[str]:
    """One line per agent whose provider key is neither in its config nor in the environment."""
    from massgen_proto.providers import api_key_envs

    missing = []
    for agent in config["agents"]:
        backend = agent["backend"]
        # The variables the worker reads: a chatcompletion backend's follow its base_url host.
        names = api_key_envs(backend["type"], backend.get("base_url"))
        if names and not backend.get("api_key") and not any(os.environ.get(n) for n in names):
            need = " or ".join(names)
            missing.append(f"agent {agent['id']!r} ({backend['type']}) needs {need} to be set")
    return missing


@dataclass
class Team:
    """A resolved team config and what the command needs to know of it before a run."""

    config: dict[str, Any]
    """The run config mapping (validated, normalised: what a run is created with)."""
    source: str | None
    note: str | None
    """For the user (which default team), or None."""
    warnings: list[str]
    """Keys accepted but not applied (``RunConfig.warnings``)."""
    providers: list[str]
    """Worker pools the team needs, in first-use order."""
    local: dict[str, int]
    """Local model -> number of agents on it."""
    uses_files: bool
    """An agent has tools beyond the workflow ones (``RunConfig.uses_tools``)."""


def describe(config: Mapping[str, Any], source: str | None = None, note: str | None = None) -> Team:
    """The :class:`Team` of a config mapping (validates it: ``ConfigError``)."""
    from massgen_proto.config import parse_config

    run = parse_config(dict(config))
    local: dict[str, int] = {}
    for agent in run.agents:
        if agent.backend.type == "local":
            local[agent.backend.model] = local.get(agent.backend.model, 0) + 1
    return Team(
        config=dict(config), source=source, note=note, warnings=run.warnings(),
        providers=list(dict.fromkeys(a.backend.provider for a in run.agents)), local=local,
        uses_files=any(run.uses_tools(agent) for agent in run.agents),
    )  # fmt: skip


CACHE_LIMIT = 64
"""Resolved configs kept (the least recently written go first)."""


def resolve_team(args: argparse.Namespace) -> Team:
    """:func:`resolve_config` and :func:`describe`, remembered for a ``--config`` file.

    Validating a config imports the config models (pydantic: about a tenth of a
    second, most of a warm command's start-up). A file's result is kept in
    ``<state dir>/configs/``, keyed by the file's path, size and modification time and
    by the installed code (:func:`~massgen_cli.fingerprint.code_fingerprint`); a file
    that names environment variables (``$``) is read afresh every time.

    Raises:
        ConfigError, ValueError: as :func:`resolve_config`.
    """
    path = _cache_path(args)
    if path is not None:
        try:
            import json

            return Team(**json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            pass
    config, source, note = resolve_config(args)
    team = describe(config, source, note)
    if path is not None:
        _remember(path, team)
    return team


def _cache_path(args: argparse.Namespace) -> Path | None:
    if not args.config or args.model:
        return None
    from .bundled import resolve_config_path

    file = Path(resolve_config_path(args.config))
    try:
        stat = file.stat()
        if b"$" in file.read_bytes():
            return None
    except OSError:
        return None
    import hashlib

    from .fingerprint import code_fingerprint
    from .warm import state_dir

    parts = (file.resolve(), args.config, os.getcwd(), stat.st_size, stat.st_mtime_ns)
    key = "\0".join(map(str, (*parts, code_fingerprint())))
    return state_dir() / "configs" / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.json"


def _remember(path: Path, team: Team) -> None:
    """Write ``team`` to ``path`` (atomically); keep at most :data:`CACHE_LIMIT` files."""
    import json

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(asdict(team)), encoding="utf-8")
        temporary.replace(path)
        kept = sorted(path.parent.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in kept[CACHE_LIMIT:]:
            old.unlink(missing_ok=True)
    except OSError:  # a read-only home: no cache, same result
        pass
