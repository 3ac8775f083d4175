"""``massgen`` with images in and out: a real subprocess, its private stack, the fake model.

The agent gets an uploaded picture (a path relative to the working folder, read by the
command's gateway) and generates one (the fake's images API); the command copies the
generated image into the run's log folder and names it with its size, in the JSON
result and on stderr.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from tests.integration.gateway.test_media import png
from tests.support.fakes.openai_server import answer, text, tool_call, vote

pytestmark = pytest.mark.timeout(240)


def painter(base_url: str) -> dict:
    return {"agents": [{"id": "painter", "backend": {
        "type": "openai", "model": "gpt-4o", "base_url": base_url, "api_key": "sk-fake",
        "cwd": "ws", "enable_image_generation": True,
        "upload_files": [{"image_path": "sketch.png"}]}}]}  # fmt: skip


def script(fake, picture: bytes) -> None:
    fake.script_media("images", "gpt-image-1", [picture])
    fake.script("gpt-4o", [
        tool_call("generate_image", {"prompt": "the sketch, in colour", "path": "art/fox.png"}),
        answer("Drew agent1/art/fox.png."), vote("agent1"), text("See agent1/art/fox.png"),
    ])  # fmt: skip


def test_an_uploaded_sketch_in_and_a_generated_image_out(cli, fake_model):
    sketch, picture = png(24, 24, seed=1), png(300, 200, seed=2)
    (cli.cwd / "sketch.png").write_bytes(sketch)
    path = cli.write_config(painter(fake_model.base_url))
    script(fake_model, picture)

    result = cli.run("--config", path.name, "--output", "json", "Colour my sketch")

    assert result.code == 0, result.stderr
    out = result.json()
    assert out["status"] == "completed" and out["final_answer"] == "See agent1/art/fox.png"
    log_dir = Path(out["log_dir"])
    copy = log_dir / "files" / "agent1" / "art" / "fox.png"
    assert out["artifacts"] == [
        {"path": "agent1/art/fox.png", "mime": "image/png", "size": len(picture),
         "file": str(copy)}
    ]  # fmt: skip
    assert copy.read_bytes() == picture
    assert (log_dir / "final_workspace" / "art" / "fox.png").read_bytes() == picture
    first = fake_model.requests_for("gpt-4o")[0]
    task = [m for m in first.messages if m["role"] == "user"][-1]
    sketch_url = f"data:image/png;base64,{base64.b64encode(sketch).decode()}"
    assert task["content"][-1] == {"type": "image_url", "image_url": {"url": sketch_url}}

    # On a terminal's stderr, the artifact is named with its size and its copy.
    script(fake_model, picture)
    shown = cli.run("--config", path.name, "--no-display", "Colour my sketch")
    assert shown.code == 0, shown.stderr
    size = f"{len(picture) / 1024:.1f} KB"
    line = next(li for li in shown.stderr.splitlines() if li.startswith("artifact: "))
    assert line.startswith(f"artifact: agent1/art/fox.png ({size}, image/png) -> ")
    assert line.endswith("/files/agent1/art/fox.png")
    assert Path(line.split(" -> ", 1)[1]).read_bytes() == picture
    fake_model.assert_complete()


def test_a_model_without_vision_is_refused_before_the_run(cli, fake_model):
    config = painter(fake_model.base_url)
    config["agents"][0]["backend"]["model"] = "gpt-3.5-turbo"
    path = cli.write_config(config)
    result = cli.run("--config", path.name, "Describe the sketch")
    assert result.code == 2
    assert "team.yaml: agents[0]: backend.upload_files[0].image_path: agent 'painter'" in (
        result.stderr
    )
    assert "does not take images" in result.stderr
    assert fake_model.requests == []
