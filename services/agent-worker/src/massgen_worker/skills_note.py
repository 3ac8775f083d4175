"""The note that tells a model which skills it may load (``use_skills``).

The gateway lists the run's skills with the agent's tools (``ToolList.skills``); each
turn's system message then names every skill with its description and the path of its
``SKILL.md``, which the model reads with its file tools before it uses the skill (the
folder is read-only to it). Only names and descriptions go into the prompt: a skill's
instructions cost tokens only when the model needs them.
"""

from __future__ import annotations

from massgen_proto.skills import AgentSkills

from .media import with_parts
from .wire import Message

__all__ = ["SkillsError", "add_skills_note", "skills_note"]


class SkillsError(Exception):
    """The run's skills folder cannot be used (the gateway's reason, naming the key)."""


def skills_note(skills: AgentSkills) -> str:
    """The text naming each skill ("" when the folder holds none)."""
    if not skills.skills:
        return ""
    lines = [
        f"Skills are available in {skills.folder} (read-only). Each is a folder of "
        "instructions, and sometimes scripts and references. Before you use a skill, read "
        "its SKILL.md in full with your read_file tool and follow it:",
    ]
    lines += [f"- {s.name}: {s.description} (SKILL.md: {s.path})" for s in skills.skills]
    return "\n".join(lines)


def add_skills_note(skills: AgentSkills | None, messages: list[Message]) -> bool:
    """Add the skills note to the system message of ``messages`` (a new one first when
    there is none). Returns whether a note was added.

    Raises:
        SkillsError: the gateway could not use the skills folder.
    """
    if skills is None:
        return False
    if skills.problem:
        raise SkillsError(skills.problem)
    note = skills_note(skills)
    if not note:
        return False
    first = messages[0] if messages else None
    if first is None or first.get("role") != "system":
        messages.insert(0, {"role": "system", "content": note})
    elif isinstance(first.get("content"), str):
        first["content"] = f"{first['content']}\n\n{note}" if first["content"] else note
    else:
        with_parts(first, [{"type": "text", "text": note}])
    return True
