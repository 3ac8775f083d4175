"""The run's skills folder: each skill's name and description from its ``SKILL.md``.

A skill is a sub-folder holding a ``SKILL.md`` that starts with YAML front matter
(``name``, ``description``) between ``---`` lines. Reading is bounded, because the
folder is user content: at most ``MAX_SKILLS`` skills, a ``SKILL.md`` of at most
``MAX_SKILL_BYTES``, front matter of at most ``MAX_FRONT_MATTER`` characters. Symlinks
are not followed (a skill folder or ``SKILL.md`` that is one is skipped), so a listing
never describes a file outside the folder; the permission check (``permissions``) keeps
reads there too. A skill that cannot be used is skipped with a logged reason.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import structlog
import yaml
from massgen_proto.skills import AgentSkills, Skill

__all__ = [
    "MAX_FRONT_MATTER",
    "MAX_SKILLS",
    "MAX_SKILL_BYTES",
    "SKILL_FILE",
    "SKILLS_KEY",
    "front_matter",
    "read_skills",
]

log = structlog.get_logger("massgen_gateway.skills")

SKILL_FILE = "SKILL.md"
SKILLS_KEY = "orchestrator.coordination.skills_directory"
MAX_SKILLS = 64
MAX_SKILL_BYTES = 256 * 1024
MAX_FRONT_MATTER = 8 * 1024
_MAX_ENTRIES = 4096
"""Folder entries looked at, skills or not: a huge folder costs a bounded scan."""


class SkillSkipped(ValueError):
    """Why one skill is not offered."""


def front_matter(text: str) -> tuple[str, str]:
    """``(name, description)`` from a ``SKILL.md``'s front matter.

    Raises:
        SkillSkipped: no front matter, not YAML, or a missing or unusable field.
    """
    lines = text.removeprefix("\ufeff").split("\n")
    if not lines or lines[0].strip() != "---":
        raise SkillSkipped("no front matter (the file must start with a '---' line)")
    end = next((i for i, line in enumerate(lines[1:], 1) if line.strip() == "---"), None)
    if end is None:
        raise SkillSkipped("front matter has no closing '---' line")
    block = "\n".join(lines[1:end])
    if len(block) > MAX_FRONT_MATTER:
        raise SkillSkipped(f"front matter longer than {MAX_FRONT_MATTER} characters")
    try:
        data = yaml.safe_load(block)
    except yaml.YAMLError as error:
        raise SkillSkipped(f"front matter is not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise SkillSkipped("front matter is not a mapping of keys")
    return _field(data, "name", 64), _field(data, "description", 1024)


def _field(data: dict[object, object], key: str, limit: int) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise SkillSkipped(f"front matter has no {key!r} text")
    text = " ".join(value.split())  # one line: it goes into a list the model reads
    if len(text) > limit:
        raise SkillSkipped(f"{key!r} is longer than {limit} characters")
    return text


def _read_skill_file(folder_fd: int, name: str) -> str:
    """The text of ``<name>/SKILL.md`` under the open folder, without following links."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
    try:
        skill_fd = os.open(name, flags | os.O_DIRECTORY, dir_fd=folder_fd)
    except OSError as error:
        raise SkillSkipped(f"not a folder that can be opened ({error.strerror})") from None
    try:
        fd = os.open(SKILL_FILE, flags, dir_fd=skill_fd)
    except OSError as error:
        raise SkillSkipped(f"no readable {SKILL_FILE} ({error.strerror})") from None
    finally:
        os.close(skill_fd)
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise SkillSkipped(f"{SKILL_FILE} is not a regular file")
        if info.st_size > MAX_SKILL_BYTES:
            raise SkillSkipped(f"{SKILL_FILE} is {info.st_size} bytes, over {MAX_SKILL_BYTES}")
        data = handle.read(MAX_SKILL_BYTES + 1)
    if len(data) > MAX_SKILL_BYTES:
        raise SkillSkipped(f"{SKILL_FILE} grew over {MAX_SKILL_BYTES} bytes while read")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise SkillSkipped(f"{SKILL_FILE} is not UTF-8 text") from None


def _candidates(folder: str) -> list[str]:
    """Names of the real sub-folders of ``folder``, sorted (symlinks skipped, logged)."""
    names = []
    with os.scandir(folder) as entries:
        for count, entry in enumerate(entries):
            if count >= _MAX_ENTRIES:
                log.warning("skills_scan_truncated", folder=folder, entries=_MAX_ENTRIES)
                break
            if entry.is_symlink():
                log.warning("skill_skipped", skill=entry.name, reason="a symlink (not followed)")
            elif entry.is_dir(follow_symlinks=False):
                names.append(entry.name)
    return sorted(names)


def read_skills(configured: str) -> AgentSkills:
    """The skills of the folder ``configured`` (the config's ``skills_directory``,
    relative to the current folder), or the problem that makes it unusable."""
    folder = os.path.realpath(os.path.expanduser(configured))
    where = f"{configured!r}" + (f" ({folder})" if folder != configured else "")
    if not os.path.isdir(folder):
        what = "is not a folder" if os.path.exists(folder) else "does not exist"
        return AgentSkills(
            folder=folder,
            problem=f"{SKILLS_KEY}: the skills folder {where} {what}; use_skills is on, so "
            "install skills there (one sub-folder with a SKILL.md per skill) or point "
            "skills_directory at them",
        )
    try:
        names = _candidates(folder)
        folder_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as error:
        return AgentSkills(
            folder=folder,
            problem=f"{SKILLS_KEY}: the skills folder {where} cannot be read ({error.strerror})",
        )
    skills: list[Skill] = []
    try:
        for name in names:
            if len(skills) >= MAX_SKILLS:
                log.warning("skills_truncated", folder=folder, offered=MAX_SKILLS)
                break
            try:
                title, description = front_matter(_read_skill_file(folder_fd, name))
            except SkillSkipped as skipped:
                log.warning("skill_skipped", skill=name, folder=folder, reason=str(skipped))
                continue
            path = str(Path(folder) / name / SKILL_FILE)
            skills.append(Skill(name=title, description=description, path=path))
    finally:
        os.close(folder_fd)
    log.info("skills_read", folder=folder, skills=len(skills))
    return AgentSkills(folder=folder, skills=skills)
