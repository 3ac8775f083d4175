"""Reading a skills folder: front matter, bounds, hostile entries; the skills root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from massgen_gateway.permissions import build_scope
from massgen_gateway.skills import (
    MAX_SKILL_BYTES,
    MAX_SKILLS,
    SKILLS_KEY,
    SkillSkipped,
    front_matter,
    read_skills,
)

GOOD = "---\nname: pdf\ndescription: Read and fill\n  PDF forms.\n---\n# PDF\nUse pypdf.\n"


def _skill(root: Path, folder: str, text: str) -> Path:
    (root / folder).mkdir(parents=True, exist_ok=True)
    path = root / folder / "SKILL.md"
    path.write_text(text, encoding="utf-8")
    return path


def test_front_matter_gives_name_and_one_line_description():
    assert front_matter(GOOD) == ("pdf", "Read and fill PDF forms.")
    assert front_matter("\ufeff---\nname: x\ndescription: y\nlicense: MIT\n---\n") == ("x", "y")


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("# no front matter\n", "no front matter"),
        ("---\nname: x\ndescription: y\n", "no closing"),
        ("---\nname: [x\n---\n", "not valid YAML"),
        ("---\n- a list\n---\n", "not a mapping"),
        ("---\ndescription: y\n---\n", "no 'name'"),
        ("---\nname: x\ndescription: 3\n---\n", "no 'description'"),
        ("---\nname: " + "n" * 65 + "\ndescription: y\n---\n", "longer than 64"),
        ("---\nname: x\ndescription: " + "d" * 1025 + "\n---\n", "longer than 1024"),
        ("---\nname: x\ndescription: y\nz: " + "z" * 9000 + "\n---\n", "front matter longer"),
    ],
)
def test_malformed_front_matter_is_refused_with_a_reason(text: str, why: str):
    with pytest.raises(SkillSkipped, match=why):
        front_matter(text)


def test_folder_lists_good_skills_and_skips_malformed_oversize_and_links(tmp_path: Path):
    root = tmp_path / "skills"
    good = _skill(root, "pdf", GOOD)
    _skill(root, "broken", "no front matter here")
    _skill(root, "huge", GOOD + "x" * (10 * 1024 * 1024))  # a 10 MB SKILL.md
    outside = _skill(tmp_path / "outside", "secret", "---\nname: s\ndescription: d\n---\n")
    (root / "linked").symlink_to(outside.parent, target_is_directory=True)
    _skill(root, "md_link", "")
    (root / "md_link" / "SKILL.md").unlink()
    (root / "md_link" / "SKILL.md").symlink_to(outside)
    (root / "not_a_skill.txt").write_text("loose file")
    (root / "empty").mkdir()
    found = read_skills(str(root))
    assert found.problem is None
    assert found.folder == os.path.realpath(root)
    assert [(s.name, s.description, s.path) for s in found.skills] == [
        ("pdf", "Read and fill PDF forms.", os.path.realpath(good))
    ]


def test_at_most_max_skills_are_listed(tmp_path: Path):
    for i in range(MAX_SKILLS + 3):
        _skill(tmp_path, f"s{i:03d}", f"---\nname: s{i}\ndescription: d{i}\n---\n")
    found = read_skills(str(tmp_path))
    assert len(found.skills) == MAX_SKILLS
    assert found.skills[0].name == "s0"


def test_a_file_just_over_the_cap_is_skipped(tmp_path: Path):
    text = GOOD + "x" * (MAX_SKILL_BYTES - len(GOOD.encode()) + 1)
    _skill(tmp_path, "big", text)
    _skill(tmp_path, "fits", GOOD.replace("pdf", "fits", 1))
    assert [s.name for s in read_skills(str(tmp_path)).skills] == ["fits"]


def test_missing_or_unusable_folder_is_a_problem_naming_key_and_path(tmp_path: Path):
    missing = read_skills(str(tmp_path / "nowhere"))
    assert missing.skills == []
    assert missing.problem is not None
    assert missing.problem.startswith(SKILLS_KEY) and "nowhere" in missing.problem
    assert "does not exist" in missing.problem
    (tmp_path / "file").write_text("x")
    assert "is not a folder" in (read_skills(str(tmp_path / "file")).problem or "")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o000)
    try:
        if os.access(locked, os.R_OK):
            pytest.skip("running as root: permissions do not lock a folder")
        problem = read_skills(str(locked)).problem or ""
        assert problem.startswith(SKILLS_KEY) and "cannot be read" in problem
    finally:
        locked.chmod(0o700)


def test_skills_root_is_read_only_for_every_agent_and_phase(tmp_path: Path):
    skills = tmp_path / "skills"
    skill = _skill(skills, "pdf", GOOD)
    (tmp_path / "ws").mkdir()
    for phase, winner in (("coordinate", False), ("present", True)):
        scope = build_scope(
            label="agent1", phase=phase, is_winner=winner, workspace=str(tmp_path / "ws"),
            reference=None, labels=["agent1"], skills=str(skills),
        )  # fmt: skip
        assert scope.check(str(skill), "read").allowed
        denied = scope.check(str(skills / "pdf" / "new.md"), "write")
        assert not denied.allowed and denied.rule == "skills_read_only"
        assert "read: skills" in denied.message
