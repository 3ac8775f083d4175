"""Skills an agent may load: what the gateway found in the run's skills folder.

A skill is a folder with a ``SKILL.md`` whose YAML front matter names it and says when
to use it (``orchestrator.coordination.use_skills``). The mcp-gateway reads the front
matter (it holds every file) and sends the list with an agent's tool listing
(``tools.ToolList.skills``); the worker names each skill to the model, which reads the
``SKILL.md`` with its file tools when it needs it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["AgentSkills", "Skill"]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Skill(_Message):
    """One skill, as its front matter describes it."""

    name: str = Field(min_length=1, max_length=64)
    description: str = Field(min_length=1, max_length=1024)
    path: str
    """The ``SKILL.md`` as the agent's file tools name it (an absolute gateway path)."""


class AgentSkills(_Message):
    """The skills of a run's skills folder, sent with an agent's tool list."""

    folder: str
    """The skills folder (absolute, read-only to every agent of the run)."""
    skills: list[Skill] = Field(default_factory=list)
    problem: str | None = None
    """Why the folder cannot be used (missing, not a folder, unreadable), naming the key
    and the path: the worker fails the turn with it."""
