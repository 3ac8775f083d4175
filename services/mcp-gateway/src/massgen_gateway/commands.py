"""``execute_command``: what a command may be, what it sees, and what the model reads back.

Pure: no processes here (``execution.py`` runs them, ``exec_calls.py`` wires the two).

A backend with ``enable_mcp_command_line: true`` is offered ``mcp__workspace__
execute_command(command, timeout, work_dir)``. MassGen's filters apply as MassGen
applies them: a command must match one of ``command_line_allowed_commands`` (when
given) and none of ``command_line_blocked_commands``, each a regular expression matched
from the start of the command. In the sandbox the operating system does the
containing; without it (``unsandboxed_exec``, MassGen's ``local`` mode) MassGen's
default refusals of destructive commands (``DANGEROUS``) apply as well.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from .builtin import BuiltinTool, PathArg
from .execution import ExecOutcome

__all__ = [
    "ALIASES",
    "DANGEROUS",
    "EXECUTE_COMMAND",
    "CommandPolicy",
    "command_env",
    "execution_mode",
    "format_outcome",
]

EXECUTE_COMMAND = BuiltinTool(
    "execute_command",
    "Run a shell command (sh -c) in your workspace and get its exit code, stdout and "
    "stderr: run the code you wrote, its tests, build tools. The command runs in a "
    "sandbox: no network (unless your config grants it), your workspace is the only "
    "writable folder (plus a private "
    "/tmp), other agents' snapshots and context paths are read-only, and time, CPU, "
    "memory and process count are limited. Nothing started by it outlives the call.",
    {
        "command": {"type": "string", "description": "The shell command line."},
        "timeout": {
            "type": "integer",
            "description": "Seconds before the command is killed (default and maximum: the "
            "gateway's limit).",
        },
        "work_dir": {
            "type": "string",
            "description": "Folder to run in: your workspace (default), a folder in it, or a "
            "readable folder (then read-only).",
        },
    },
    ("command",),
    (PathArg("work_dir", "read", "."),),
)

ALIASES = frozenset({"mcp__command_line__execute_command", "execute_command"})
"""Names MassGen's configs use for this tool in ``allowed_tools`` / ``exclude_tools``
(MassGen serves it from a server named ``command_line``)."""

DANGEROUS: tuple[tuple[str, str], ...] = (
    (r"\brm\s+-rf\s+/", "'rm -rf /'"),
    (r"\bmv\b.*?\s+/dev/null", "moving files to /dev/null"),
    (r"\bdd\b", "'dd'"),
    (r">\s*/dev/sd[a-z][1-9]?", "writing to a disk device"),
    (r":\(\)\s*\{\s*:\s*\|\s*:\s*&\s*\}\s*;\s*:", "a fork bomb"),
    (r"\bsudo\b", "'sudo'"),
    (r"\bsu\b", "'su'"),
    (r"\bchown\b", "'chown'"),
    (r"\bchmod\b", "'chmod'"),
)
"""MassGen's refusals for commands run on the host (its ``local`` mode)."""

MAX_COMMAND_CHARS = 100_000


def execution_mode(
    *, bwrap: bool | str, deployment_sandbox: str, unsandboxed_exec: bool, run_mode: str
) -> str:
    """``"sandbox"``, ``"host"``, or the reason commands and custom tools cannot run.

    Args:
        bwrap: True when bubblewrap works here; False when it is not installed; or why
            it does not work although installed.
        deployment_sandbox: ``GatewaySettings.sandbox`` (``bwrap``: a shared deployment
            that sandboxes everything it runs).
        unsandboxed_exec: the deployment allows running on the host without bubblewrap
            (a gateway on the user's own machine).
        run_mode: the backend's ``command_line_execution_mode``; ``docker`` asks for
            isolation, which only the sandbox gives.
    """
    if bwrap is True:
        return "sandbox"
    missing = bwrap or "bubblewrap (bwrap), the gateway's sandbox, is not installed"
    if run_mode == "docker":
        return (
            f"this agent asks for isolated execution (command_line_execution_mode: docker) "
            f"and {missing}"
        )
    if deployment_sandbox == "bwrap":
        return f"this deployment runs commands only in its sandbox and {missing}"
    if unsandboxed_exec:
        return "host"
    return (
        f"commands and custom tools run only in the gateway's sandbox and {missing}; "
        "install bubblewrap, or, on your own machine only, allow unsandboxed execution "
        "(MASSGEN_GATEWAY_UNSANDBOXED_EXEC=1)"
    )


@dataclass(frozen=True, slots=True)
class CommandPolicy:
    """Which commands an agent may run."""

    allowed: tuple[str, ...] = ()
    """Regular expressions; when any are given, a command must match one."""
    blocked: tuple[str, ...] = ()
    """Regular expressions; a command matching one is refused."""
    host: bool = False
    """The command runs outside the sandbox: MassGen's ``DANGEROUS`` refusals apply."""

    @classmethod
    def of(cls, allowed: Iterable[str] | None, blocked: Iterable[str] | None, host: bool):
        return cls(tuple(allowed or ()), tuple(blocked or ()), host)

    def refusal(self, command: str) -> str | None:
        """Why ``command`` may not run (a message for the model), or None."""
        if not command.strip():
            return "the command is empty"
        if len(command) > MAX_COMMAND_CHARS:
            return f"the command is longer than {MAX_COMMAND_CHARS} characters"
        if "\x00" in command:
            return "the command contains a NUL byte"
        if self.host:
            for pattern, what in DANGEROUS:
                if re.search(pattern, command):
                    return (
                        f"{what} is not allowed for commands run on the host (this gateway "
                        "has no sandbox)"
                    )
        if self.allowed and not any(re.match(p, command) for p in self.allowed):
            return (
                "the command matches none of the allowed patterns "
                f"(command_line_allowed_commands: {', '.join(map(repr, self.allowed))})"
            )
        for pattern in self.blocked:
            if re.match(pattern, command):
                return f"the command matches the blocked pattern {pattern!r}"
        return None


def command_env(workspace: str, path_prefix: list[str]) -> dict[str, str]:
    """The whole environment of a command: nothing of the gateway's is inherited."""
    path = ":".join([*path_prefix, "/usr/local/bin", "/usr/bin", "/bin"])
    return {
        "PATH": path,
        "HOME": workspace,
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
    }


def shell_line(command: str, prefix: str | None) -> list[str]:
    """``sh -c`` of the command, with MassGen's ``command_execution_prefix`` in front."""
    line = f"{prefix.strip()} {command}" if prefix and prefix.strip() else command
    return ["/bin/sh", "-c", line]


def format_outcome(command: str, outcome: ExecOutcome, timeout: float) -> str:
    """The text the model reads: how it ended, then stdout and stderr."""
    if outcome.timed_out:
        head = (
            f"Killed after {timeout:g} s (timeout): the command and every process it "
            "started were stopped."
        )
    elif outcome.signal:
        head = f"Killed by signal {outcome.signal} after {outcome.seconds:.2f} s."
    else:
        head = f"Exit code {outcome.exit_code} after {outcome.seconds:.2f} s."
    if outcome.exit_code == 137 or outcome.signal == 9:
        head += " (SIGKILL: a CPU, memory or process limit may have been reached.)"
    shown = command if len(command) <= 500 else command[:500] + " [...]"
    parts = [f"$ {shown}", head]
    parts.append("--- stdout ---\n" + (outcome.stdout or "(empty)"))
    parts.append("--- stderr ---\n" + (outcome.stderr or "(empty)"))
    return "\n".join(parts)
