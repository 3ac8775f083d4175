"""The per-run log folder: events.jsonl, one output file per agent, final answer, status,
the coordination table (``coordination_table.txt``) and the config's warnings
(``warnings.txt``: keys accepted but not applied)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import IO

from massgen_proto import events as ev
from massgen_proto.summary import RunSummary

__all__ = ["RunLog", "default_log_root", "run_log_dir"]


def default_log_root() -> Path:
    """``.massgen/logs`` under the current folder."""
    return Path.cwd() / ".massgen" / "logs"


def run_log_dir(root: Path, run_id: str, now: float | None = None) -> Path:
    """``<root>/<YYYYmmdd_HHMMSS>_<run_id>``."""
    stamp = time.strftime("%Y%m%d_%H%M%S", time.localtime(now or time.time()))
    return root / f"{stamp}_{run_id}"


class RunLog:
    """Writes a run's log folder as its events arrive."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        # Line-buffered: a reader tailing the file (or a killed process) misses nothing.
        self._events: IO[str] = (directory / "events.jsonl").open(
            "w", encoding="utf-8", buffering=1
        )
        self._agents: dict[str, IO[str]] = {}
        self._names: dict[str, str] = {}
        self._steps: list[ev.RunEvent] = []
        self._block: dict[str, str] = {}
        """Agent -> the block its file is in the middle of (``answer``)."""
        self.warnings: list[str] = []

    def write_warnings(self, warnings: list[str]) -> None:
        """Keep the config's warnings (``warnings.txt`` now, ``status.json`` at the end)."""
        self.warnings = list(warnings)
        if warnings:
            text = "".join(f"{warning}\n" for warning in warnings)
            (self.directory / "warnings.txt").write_text(text, encoding="utf-8")

    def _agent_file(self, agent: str) -> IO[str]:
        handle = self._agents.get(agent)
        if handle is None:
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in agent)
            handle = (self.directory / f"agent_{safe}.txt").open("w", encoding="utf-8")
            self._agents[agent] = handle
        return handle

    def write(self, event: ev.RunEvent, raw: str | None = None) -> None:
        """Record one event (``raw``: its JSON if already serialized)."""
        self._events.write((raw or event.model_dump_json()) + "\n")
        if not isinstance(event, ev.Chunk | ev.TokenUsage):
            self._steps.append(event)  # for coordination_table.txt
        match event:
            case ev.TurnStarted():
                self._block.pop(event.agent, None)
                self._agent_file(event.agent).write(
                    f"\n--- {event.label} turn {event.number} ({event.phase}) ---\n"
                )
            case ev.Chunk(channel="content" | "reasoning"):
                self._block.pop(event.agent, None)
                self._agent_file(event.agent).write(event.text)
            case ev.Chunk(channel="answer"):
                head = "" if self._block.get(event.agent) == "answer" else "\n[answer]\n"
                self._block[event.agent] = "answer"
                self._agent_file(event.agent).write(head + event.text)
            case ev.Chunk(channel="tool_args"):
                pass  # the whole call follows as a tool_call chunk
            case ev.Chunk():
                self._block.pop(event.agent, None)
                self._agent_file(event.agent).write(f"\n[{event.channel}] {event.text}\n")
            case ev.AnswerAccepted():
                self._agent_file(event.agent).write(f"\n[answer {event.version} accepted]\n")
            case ev.VoteAccepted():
                self._agent_file(event.agent).write(
                    f"\n[vote for {event.target} accepted: {event.reason}]\n"
                )
            case ev.WorkflowRejected():
                self._agent_file(event.agent).write(f"\n[rejected: {event.error}]\n")
            case ev.AgentError() | ev.AgentFailed() | ev.AgentExcluded():
                self._agent_file(event.agent).write(f"\n[error: {event.error}]\n")
            case _:
                pass

    def close(self, summary: RunSummary) -> None:
        """Write the final answer, status and coordination table; close every file."""
        from .table import coordination_table

        (self.directory / "coordination_table.txt").write_text(
            coordination_table(self._steps), encoding="utf-8"
        )
        if summary.final_answer is not None:
            (self.directory / "final_answer.md").write_text(
                summary.final_answer.rstrip() + "\n", encoding="utf-8"
            )
        status = summary.to_json(log_dir=str(self.directory))
        if self.warnings:
            status["warnings"] = self.warnings
        (self.directory / "status.json").write_text(
            json.dumps(status, indent=2) + "\n", encoding="utf-8"
        )
        self._events.close()
        for handle in self._agents.values():
            handle.close()
