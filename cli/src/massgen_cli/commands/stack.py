"""``massgen up | down | status``: the warm local stack that later commands run on."""

from __future__ import annotations

import argparse
import sys

from ..exits import fail

__all__ = ["down", "providers", "status", "up"]


def up(args: argparse.Namespace) -> int:
    """Start the warm stack in the background, serving ``--providers`` / ``--config``'s."""
    from massgen_proto.config import ConfigError, load_config, parse_config

    from .. import warm
    from ..bundled import resolve_config_path
    from ..environment import load_dotenv
    from ..teams import default_team

    load_dotenv()
    local: dict[str, int] = {}
    if args.config:
        try:
            config = load_config(resolve_config_path(args.config))
        except ConfigError as error:
            return fail(f"config error:\n{error}")
        chosen = list(dict.fromkeys(a.backend.provider for a in config.agents))
        for agent in config.agents:
            if agent.backend.type == "local":
                local[agent.backend.model] = local.get(agent.backend.model, 0) + 1
    else:
        chosen = providers(args.providers)
        if not args.providers and not args.no_local:
            # The default team runs on the local model when no provider key is set.
            team, _note = default_team()
            for agent in parse_config(team).agents:
                if agent.backend.type == "local":
                    local[agent.backend.model] = local.get(agent.backend.model, 0) + 1
    for name in args.local:
        local[name] = max(local.get(name, 0), 3)
    if args.no_local:
        local = {}
    tty = sys.stderr.isatty()

    def progress(text: str) -> None:
        if tty:
            sys.stderr.write(f"\r\x1b[Kstarting warm stack: {text}")
            sys.stderr.flush()

    def say(text: str) -> None:
        if tty:
            sys.stderr.write("\r\x1b[K")
        print(text, flush=True)

    return warm.stack_up(
        chosen, local, say=say, progress=progress, debug=args.debug, idle=max(args.idle, 0.0)
    )


def down(_args: argparse.Namespace) -> int:
    """Stop the warm stack."""
    from .. import warm

    return warm.stack_down()


def status(_args: argparse.Namespace) -> int:
    """Show the warm stack."""
    from .. import warm

    return warm.stack_status()


def providers(spec: str | None, *, local: bool = True) -> list[str]:
    """Worker pools to serve: ``--providers a,b`` as given, else every provider of
    ``BACKENDS`` (without ``local`` when ``local`` is False)."""
    if spec:
        return list(dict.fromkeys(p.strip() for p in spec.split(",") if p.strip()))
    from massgen_proto.providers import BACKENDS

    every = dict.fromkeys(b.provider for b in BACKENDS.values())
    return [p for p in every if local or p != "local"]
