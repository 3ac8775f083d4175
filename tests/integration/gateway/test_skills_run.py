"""Skills (``use_skills``) through orchestrator, worker and gateway: the model is told
which skills exist, reads one's SKILL.md, may not write into the folder, and never sees
a skill that is a symlink out of the folder or an oversize SKILL.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.support.fakes.openai_server import answer, text, tool_call, vote

SKILL = (
    "---\nname: haiku-writer\ndescription: Write a haiku in 5-7-5 syllables.\n---\n"
    "# Haiku writer\nCount syllables line by line: 5, 7, 5.\n"
)


def _skill(root: Path, folder: str, text: str) -> Path:
    (root / folder).mkdir(parents=True, exist_ok=True)
    (root / folder / "SKILL.md").write_text(text, encoding="utf-8")
    return root / folder / "SKILL.md"


def _skills_team(stack: Any, folder: Path, **orchestrator: Any) -> dict[str, Any]:
    config = stack.team(["m1"], **orchestrator)
    config["orchestrator"]["coordination"] = {
        "use_skills": True,
        "skills_directory": str(folder),
    }
    return config


def _results(stack: Any) -> list[dict[str, Any]]:
    chunks = [c for c in stack.kinds("chunk") if c.channel == "tool_result"]
    return [json.loads(c.text) for c in chunks]


async def test_agent_is_told_its_skills_and_reads_one_but_cannot_write(stack, gateway, tmp_path):
    folder = tmp_path / "skills"
    skill = _skill(folder, "haiku", SKILL)
    outside = _skill(tmp_path / "elsewhere", "secret", "---\nname: secret\ndescription: x\n---\n")
    (folder / "escape").symlink_to(outside.parent, target_is_directory=True)
    _skill(folder, "huge", SKILL.replace("haiku-writer", "huge") + "x" * (10 * 1024 * 1024))
    stack.fake.script(
        "m1",
        [
            tool_call("mcp__workspace__read_file", {"path": str(skill)}),
            tool_call("mcp__workspace__write_file",
                      {"path": str(folder / "haiku" / "extra.md"), "content": "mine"}),
            tool_call("mcp__workspace__read_file", {"path": str(folder / "escape" / "SKILL.md")}),
            answer("Old pond / a frog jumps in / sound of water"),
            vote("agent1", "follows the skill"),
            text("Final: a haiku."),
        ],
    )  # fmt: skip
    summary = await stack.run("Write a haiku.", _skills_team(stack, folder))
    assert summary.status == "completed", summary

    first = stack.fake.requests_for("m1")[0]
    system = "\n".join(str(m["content"]) for m in first.messages if m["role"] == "system")
    assert "haiku-writer: Write a haiku in 5-7-5 syllables." in system
    assert f"(SKILL.md: {skill})" in system and "read its SKILL.md" in system
    assert "secret" not in system and "huge" not in system
    assert "mcp__workspace__read_file" in {t["function"]["name"] for t in first.tools}

    read, write, escape = _results(stack)
    assert "Count syllables line by line: 5, 7, 5." in read["content"]
    assert "Permission denied" in write["content"] and "skills_read_only" in write["content"]
    assert not (folder / "haiku" / "extra.md").exists()
    assert "Permission denied" in escape["content"] and "outside_roots" in escape["content"]
    assert "name: secret" not in escape["content"]


async def test_a_missing_skills_folder_fails_the_run_naming_key_and_path(stack, gateway, tmp_path):
    missing = tmp_path / "no-skills-here"
    summary = await stack.run("Write a haiku.", _skills_team(stack, missing, max_agent_failures=1))
    assert summary.status == "failed", summary
    failed = stack.kinds("agent_error") + stack.kinds("agent_failed") + stack.kinds("run_finished")
    words = json.dumps([e.model_dump() for e in failed])
    assert "orchestrator.coordination.skills_directory" in words
    assert str(missing) in words and "does not exist" in words
    assert stack.fake.requests_for("m1") == []  # the model was never called
