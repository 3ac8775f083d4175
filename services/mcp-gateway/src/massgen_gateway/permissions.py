"""Path permissions of one agent in one phase: resolve a path, then allow or deny it.

Pure: no NATS, no global state. The only I/O is path resolution (``realpath`` reads
symlinks), because a check that ignored the disk would be a check of a different path.

Roots an agent may touch, deepest match wins:

- its **workspace**: read and write;
- the **reference** folder: read only, and only ``<reference>/<label>/...`` for labels
  that exist in the run (snapshots are stored under labels, never real agent ids);
- the **previous turn**'s final workspace (a session's earlier run): read only; the
  agent edits its own copy, in its workspace;
- the run's **skills** folder (``use_skills``): read only, for every agent and phase;
- each **context path**: read; write only while presenting, only for the winner, only
  when declared ``permission: write``, and never inside a protected path or a
  protected name (``.git``, ``.env``, ``node_modules``, virtualenvs ...). A context
  path that is a file grants that file only.

Anything else is denied with a message naming the path, the agent's label, the phase,
the rule and the allowed roots. Deleting (and moving away) needs a prior read or
creation of the path by the same agent (``AccessLedger``).
"""

from __future__ import annotations

import os
import posixpath
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "PROTECTED_NAMES",
    "Access",
    "AccessLedger",
    "AgentScope",
    "ContextRoot",
    "Decision",
    "PathDenied",
    "Root",
    "build_scope",
]

Access = Literal["read", "write", "delete"]
Phase = Literal["coordinate", "present"]

PROTECTED_NAMES: frozenset[str] = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".env",
        ".massgen",
        "node_modules",
        "__pycache__",
        ".venv",
        "venv",
        ".virtualenv",
        "virtualenv",
        ".tox",
        ".nox",
    }
)
"""Path components that stay read-only inside context paths (``.env.*`` too)."""

# Characters that look like a separator or a dot but are not one; a path holding one is
# refused rather than guessed at (a server might normalise it into a real separator).
_LOOKALIKES = frozenset(
    "\u2215\u2044\u29f8\u29f9\uff0f\uff3c\u2216\ufe68\u2024\u2025\u2026\uff0e\u3002\ufe52"
    "\u0338\u2cc6\u30fb\uff65"
)
_ENCODED = re.compile(r"%(2[eEfF5]|5[cC]|00|25)")
"""Percent-escapes of ``.``, ``/``, ``\\``, NUL and ``%`` itself (double encoding)."""


@dataclass(frozen=True, slots=True)
class Root:
    """A folder (or file) an agent may touch."""

    path: str
    """Absolute real path (symlinks resolved, no trailing separator)."""
    kind: Literal["workspace", "reference", "previous", "skills", "context"]
    writable: bool
    """Writable in the current phase for this agent."""
    declared_write: bool = False
    """Context paths: declared ``permission: write`` in the config."""
    is_file: bool = False
    """Grants exactly this file, nothing under it."""
    protected: tuple[str, ...] = ()
    """Real paths inside this root that stay read-only."""

    def contains(self, real: str) -> bool:
        """True when ``real`` is this root or (for folders) inside it."""
        if real == self.path:
            return True
        if self.is_file:
            return False
        prefix = self.path if self.path.endswith("/") else self.path + "/"
        return real.startswith(prefix)

    def describe(self) -> str:
        """One entry of the allowed-roots list in a denial."""
        if self.kind == "workspace":
            return f"{self.path} (read/write: your workspace)"
        if self.kind == "reference":
            return f"{self.path}/<label> (read: other agents' latest snapshots)"
        if self.kind == "previous":
            return f"{self.path} (read: the previous turn's final files; edit your copy)"
        if self.kind == "skills":
            return f"{self.path} (read: skills; read a skill's SKILL.md before using it)"
        what = "file" if self.is_file else "folder"
        if self.writable:
            mode = "read/write"
        elif self.declared_write:
            mode = "read; writable only by the winner while presenting"
        else:
            mode = "read"
        return f"{self.path} ({mode}: context {what})"


@dataclass(frozen=True, slots=True)
class ContextRoot:
    """A context path from the config (``orchestrator.context_paths``), before resolution."""

    path: str
    permission: Literal["read", "write"] = "read"
    protected_paths: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one path check."""

    allowed: bool
    raw: str
    """The path as the agent gave it."""
    path: str
    """The resolved real path ("" when the text could not be a path at all)."""
    rule: str
    """``allowed`` or the rule that refused it."""
    access: Access
    root: Root | None = None
    message: str = ""
    """The denial text (empty when allowed)."""


class PathDenied(Exception):
    """A path check said no; ``decision`` holds the path, rule and message."""

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        super().__init__(decision.message)


@dataclass(slots=True)
class AccessLedger:
    """What one agent has read or created in a run: deleting needs one of the two."""

    read: set[str] = field(default_factory=set)
    created: set[str] = field(default_factory=set)

    def record_read(self, real: str) -> None:
        self.read.add(real)

    def record_created(self, real: str) -> None:
        self.created.add(real)

    def may_delete(self, real: str) -> bool:
        """True when ``real`` was read, or it or a folder above it was created."""
        if real in self.read:
            return True
        path = real
        while True:
            if path in self.created:
                return True
            parent = posixpath.dirname(path)
            if parent == path:
                return False
            path = parent


_REASONS: dict[str, str] = {
    "not_a_string": "a path must be a string",
    "empty_path": "the path is empty",
    "nul_byte": "the path contains a NUL byte",
    "backslash": "backslashes are not path separators here; use '/'",
    "encoded_separator": "percent-encoded dots, separators or '%' are not accepted in paths",
    "lookalike_separator": "the path contains a character that looks like '/' or '.' but is not",
    "outside_roots": "the path is outside every folder this agent may use",
    "reference_read_only": "other agents' snapshots are read-only",
    "reference_unknown_label": "the reference folder holds only <label> folders of this run",
    "previous_turn_read_only": "the previous turn's files are read-only; your workspace "
    "holds a copy of them to edit",
    "skills_read_only": "the skills folder is read-only",
    "context_read_only_while_coordinating": "context paths are read-only until the final "
    "presentation",
    "context_read_only_not_winner": "only the winning agent may write context paths",
    "context_read_only": "this context path is declared 'permission: read'",
    "protected_path": "this path is protected (protected_paths) and stays read-only",
    "protected_name": "version-control, secret, dependency and virtualenv folders (.git, .env, "
    "node_modules, .venv, ...) inside context paths stay read-only",
    "root_itself": "a root folder itself cannot be deleted or moved",
    "delete_without_read": "delete or move only what this agent has read or created in this run",
    "symlink_race": "a symlink appeared on the path after it was checked",
}

_VERBS: dict[str, str] = {"read": "read", "write": "write", "delete": "delete or move"}


def _bad_text(raw: str) -> str | None:
    """The rule a path's text breaks before any resolution, or None."""
    if not raw:
        return "empty_path"
    if "\x00" in raw:
        return "nul_byte"
    if "\\" in raw:
        return "backslash"
    if "%" in raw and _ENCODED.search(raw):
        return "encoded_separator"
    if not raw.isascii():
        if any(c in _LOOKALIKES for c in raw):
            return "lookalike_separator"
        normal = unicodedata.normalize("NFKC", raw)
        if normal.count("/") != raw.count("/") or normal.count(".") != raw.count("."):
            return "lookalike_separator"
    return None


def _real(path: str) -> str:
    return os.path.realpath(path)


def _is_protected_name(name: str) -> bool:
    return name in PROTECTED_NAMES or name.startswith(".env.")


@dataclass(frozen=True, slots=True)
class AgentScope:
    """The permissions of one agent in one phase of a run. Build with ``build_scope``."""

    label: str
    phase: Phase
    workspace: str
    """Real path of the agent's workspace (relative paths resolve against it)."""
    roots: tuple[Root, ...]
    """Deepest first."""
    labels: frozenset[str]
    """Labels of the run (the only folder names allowed under the reference root)."""
    home: str
    """What ``~`` expands to."""

    def resolve(self, raw: str) -> str:
        """Absolute real path of ``raw``: ``~`` expanded, relative to the workspace,
        ``..`` and symlinks resolved. Does not check anything."""
        if raw.startswith("file://"):
            raw = raw[len("file://") :]
        if raw == "~" or raw.startswith("~/"):
            raw = self.home + raw[1:]
        elif raw.startswith("~"):
            raw = os.path.expanduser(raw)
            if raw.startswith("~"):  # unknown user: keep it relative, harmless
                raw = "./" + raw
        if not raw.startswith("/"):
            raw = self.workspace + "/" + raw
        return _real(raw)

    def check(self, raw: object, access: Access, ledger: AccessLedger | None = None) -> Decision:
        """Decide whether this agent may ``access`` the path ``raw`` now.

        Args:
            raw: the path argument as the agent wrote it.
            access: ``read``, ``write`` (create / modify) or ``delete`` (delete / move away).
            ledger: the agent's reads and creations; required for ``delete``.

        Returns:
            A Decision; ``allowed`` False carries the rule and a message for the model.
        """
        if not isinstance(raw, str):
            return self.deny(repr(raw), "", "not_a_string", access, None)
        rule = _bad_text(raw)
        if rule is not None:
            return self.deny(raw, "", rule, access, None)
        real = self.resolve(raw)
        root = None
        for candidate in self.roots:
            if candidate.contains(real):
                root = candidate
                break
        if root is None:
            return self.deny(raw, real, "outside_roots", access, None)
        rule = self._rule(root, real, access, ledger)
        if rule is not None:
            return self.deny(raw, real, rule, access, root)
        return Decision(True, raw, real, "allowed", access, root)

    def _rule(
        self, root: Root, real: str, access: Access, ledger: AccessLedger | None
    ) -> str | None:
        if root.kind == "reference":
            if real != root.path:
                label = real[len(root.path) + 1 :].split("/", 1)[0]
                if label not in self.labels:
                    return "reference_unknown_label"
            return None if access == "read" else "reference_read_only"
        if root.kind == "previous":
            return None if access == "read" else "previous_turn_read_only"
        if root.kind == "skills":
            return None if access == "read" else "skills_read_only"
        if access == "read":
            return None
        if root.kind == "context":
            if self.phase != "present" and root.declared_write:
                return "context_read_only_while_coordinating"
            if not root.declared_write:
                return "context_read_only"
            if not root.writable:
                return "context_read_only_not_winner"
            for protected in root.protected:
                if real == protected or real.startswith(protected + "/"):
                    return "protected_path"
            if real != root.path:
                for name in real[len(root.path) + 1 :].split("/"):
                    if _is_protected_name(name):
                        return "protected_name"
        if access == "delete":
            if real == root.path and not root.is_file:
                return "root_itself"
            if ledger is None or not ledger.may_delete(real):
                return "delete_without_read"
        return None

    def deny(self, raw: str, real: str, rule: str, access: Access, root: Root | None) -> Decision:
        """A denial of ``raw`` under ``rule``, with the message the model reads."""
        phase = "presenting" if self.phase == "present" else "coordinating"
        where = f" (resolves to {real})" if real and real != raw else ""
        allowed = "; ".join(r.describe() for r in self.roots)
        message = (
            f"Permission denied: cannot {_VERBS[access]} {raw!r}{where} as {self.label} "
            f"while {phase}: {_REASONS[rule]} [rule: {rule}]. Allowed roots: {allowed}."
        )
        return Decision(False, raw, real, rule, access, root, message)

    def allowed_roots(self) -> list[str]:
        """The roots as listed in denial messages."""
        return [r.describe() for r in self.roots]


def _context_root(entry: ContextRoot, may_write: bool) -> Root:
    """A context path's root: writable only when declared so and ``may_write`` (the
    winner presenting); its protected paths resolve against it unless absolute."""
    real = _real(os.path.expanduser(entry.path))
    declared = entry.permission == "write"
    protected = tuple(
        _real(p if os.path.isabs(os.path.expanduser(p)) else os.path.join(real, p))
        for p in entry.protected_paths
    )
    return Root(
        real, "context", writable=declared and may_write, declared_write=declared,
        is_file=os.path.isfile(real), protected=protected,
    )  # fmt: skip


def build_scope(
    *,
    label: str,
    phase: Phase,
    is_winner: bool,
    workspace: str,
    reference: str | None,
    labels: Iterable[str],
    context_paths: Iterable[ContextRoot] = (),
    home: str | None = None,
    previous: str | None = None,
    skills: str | None = None,
) -> AgentScope:
    """Resolve the roots of one agent in one phase.

    Args:
        label: the agent's label (named in denials).
        phase: ``coordinate`` or ``present``.
        is_winner: the agent won the vote (context writes need it, and ``present``).
        workspace: the agent's workspace folder (must exist for relative paths to mean it).
        reference: the run's reference folder holding ``<label>/`` snapshots, or None.
        labels: every label of the run.
        context_paths: the run's context paths; relative ones resolve against the
            process's current folder, as the config's author meant them.
        home: what ``~`` means (the user's home by default).
        previous: the previous turn's final workspace (a session's earlier run), or None.
        skills: the run's skills folder (``use_skills``), or None.
    """
    roots: list[Root] = [Root(_real(workspace), "workspace", writable=True)]
    if reference:
        roots.append(Root(_real(reference), "reference", writable=False))
    if previous:
        roots.append(Root(_real(previous), "previous", writable=False))
    if skills:
        roots.append(Root(_real(skills), "skills", writable=False))
    roots += [_context_root(entry, phase == "present" and is_winner) for entry in context_paths]
    # Deepest first, so the most specific root decides; on equal paths the earlier
    # (workspace, then reference, previous turn, skills, then config order) wins.
    order = {id(r): i for i, r in enumerate(roots)}
    roots.sort(key=lambda r: (-r.path.count("/"), -len(r.path), order[id(r)]))
    return AgentScope(
        label=label,
        phase=phase,
        workspace=_real(workspace),
        roots=tuple(roots),
        labels=frozenset(labels),
        home=home if home is not None else os.path.expanduser("~"),
    )
