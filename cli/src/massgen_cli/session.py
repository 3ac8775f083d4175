"""Multi-turn sessions on disk: ``.massgen/sessions/<id>/``.

    session.json          how the team was chosen, when, where /clear happened
    turn_1/question.md    the question
    turn_1/answer.md      the final answer
    turn_1/turn.json      run id, status, winner, log folder, times
    turn_1/logs           link to the run's log folder
    SESSION_SUMMARY.md    every turn in one readable page (rewritten after each turn)

Each turn's run gets the earlier turns (after the last ``/clear``) as history:
user / assistant message pairs, and starts from the final workspace of the last
completed one (``previous_run_id``): the gateway copies the winner's files into every
agent's workspace and keeps the originals read-only. ``/clear`` forgets both.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from massgen_proto.messages import ChatMessage

__all__ = ["Session", "SessionNotFound", "TurnRecord", "default_session_root"]


class SessionNotFound(LookupError):
    """No session folder with that id."""


def default_session_root() -> Path:
    """``.massgen/sessions`` under the current folder."""
    return Path.cwd() / ".massgen" / "sessions"


@dataclass
class TurnRecord:
    """One finished turn."""

    number: int
    question: str
    answer: str | None
    status: str
    winner: str | None
    run_id: str
    log_dir: str | None
    seconds: float | None


class Session:
    """A session folder: its turns and the conversation history they make."""

    def __init__(self, directory: Path, meta: dict[str, Any]) -> None:
        self.directory = directory
        self.meta = meta

    @property
    def id(self) -> str:
        return self.directory.name

    @classmethod
    def create(cls, root: Path, source: dict[str, Any]) -> Session:
        """A new session; ``source`` records how the team was chosen (for resuming)."""
        stamp = time.strftime("%Y%m%d_%H%M%S")
        directory = root / f"session_{stamp}_{secrets.token_hex(2)}"
        directory.mkdir(parents=True, exist_ok=False)
        session = cls(directory, {"created": time.time(), "source": source, "cleared_after": 0})
        session._save_meta()
        session._write_summary()
        return session

    @classmethod
    def open(cls, root: Path, name: str) -> Session:
        """An existing session by id (or unique prefix, or path).

        Raises:
            SessionNotFound: with the ids that exist.
        """
        candidates = [Path(name).expanduser(), root / name]
        for path in candidates:
            if (path / "session.json").exists():
                return cls(path, json.loads((path / "session.json").read_text(encoding="utf-8")))
        found = sorted(root.glob(f"{name}*")) + sorted(root.glob(f"session_{name}*"))
        found = [p for p in dict.fromkeys(found) if (p / "session.json").exists()]
        if len(found) == 1:
            meta = json.loads((found[0] / "session.json").read_text(encoding="utf-8"))
            return cls(found[0], meta)
        known = ", ".join(p.name for p in sorted(root.glob("session_*"))[-5:]) or "none"
        raise SessionNotFound(f"no session {name!r} under {root} (recent: {known})")

    def _save_meta(self) -> None:
        (self.directory / "session.json").write_text(
            json.dumps(self.meta, indent=2) + "\n", encoding="utf-8"
        )

    def turns(self) -> list[TurnRecord]:
        """Finished turns, in order."""
        out = []
        for folder in sorted(
            self.directory.glob("turn_*"), key=lambda p: int(p.name.split("_")[1])
        ):
            try:
                data = json.loads((folder / "turn.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            out.append(TurnRecord(**data))
        return out

    def history(self) -> list[ChatMessage]:
        """User/assistant pairs of the completed turns since the last ``/clear``."""
        messages: list[ChatMessage] = []
        for turn in self.turns():
            if turn.number <= self.meta.get("cleared_after", 0) or not turn.answer:
                continue
            messages.append(ChatMessage(role="user", content=turn.question))
            messages.append(ChatMessage(role="assistant", content=turn.answer))
        return messages

    def previous_run_id(self) -> str | None:
        """The run of the last completed turn since the last ``/clear`` (its winner's
        final workspace is where the next turn starts), or None: start empty."""
        cleared = self.meta.get("cleared_after", 0)
        for turn in reversed(self.turns()):
            if turn.number <= cleared:
                return None
            if turn.status == "completed" and turn.winner:
                return turn.run_id
        return None

    def clear(self) -> None:
        """Forget the history and the workspace so far (the turns stay on disk)."""
        turns = self.turns()
        self.meta["cleared_after"] = turns[-1].number if turns else 0
        self._save_meta()
        self._write_summary()

    def next_number(self) -> int:
        turns = self.turns()
        return turns[-1].number + 1 if turns else 1

    def record(self, turn: TurnRecord) -> Path:
        """Write one finished turn and refresh the summary; returns its folder."""
        folder = self.directory / f"turn_{turn.number}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "question.md").write_text(turn.question.rstrip() + "\n", encoding="utf-8")
        if turn.answer is not None:
            (folder / "answer.md").write_text(turn.answer.rstrip() + "\n", encoding="utf-8")
        (folder / "turn.json").write_text(
            json.dumps(turn.__dict__, indent=2) + "\n", encoding="utf-8"
        )
        if turn.log_dir:
            link = folder / "logs"
            try:
                if link.is_symlink() or link.exists():
                    link.unlink()
                os.symlink(os.path.relpath(turn.log_dir, folder), link)
            except OSError:
                (folder / "logs.txt").write_text(turn.log_dir + "\n", encoding="utf-8")
        self._write_summary()
        return folder

    def _write_summary(self) -> None:
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.meta.get("created", 0)))
        source = self.meta.get("source") or {}
        team = source.get("config") or source.get("model") or "default team"
        lines = [f"# Session {self.id}", "", f"- started: {created}", f"- team: {team}", ""]
        cleared = self.meta.get("cleared_after", 0)
        for turn in self.turns():
            lines.append(f"## Turn {turn.number}")
            lines.append("")
            lines.append(f"**Question:** {turn.question.strip()}")
            lines.append("")
            who = f", winner {turn.winner}" if turn.winner else ""
            took = f", {turn.seconds:.1f}s" if turn.seconds is not None else ""
            lines.append(f"*{turn.status}{who}{took} — run {turn.run_id}*")
            if turn.log_dir:
                lines.append(f"*logs: {turn.log_dir}*")
            lines.append("")
            lines.append(turn.answer.strip() if turn.answer else "(no answer)")
            lines.append("")
            if cleared and turn.number == cleared:
                lines.append("---")
                lines.append("*history cleared here (/clear)*")
                lines.append("")
        (self.directory / "SESSION_SUMMARY.md").write_text("\n".join(lines), encoding="utf-8")
