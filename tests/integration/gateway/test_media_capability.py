"""File requests to the real gateway (``GATEWAY_FILES``) act only for the caller's current
turn, on that agent's own files, under its path permissions; the listing tells each
worker its agent's uploads."""

from __future__ import annotations

import asyncio
import base64

from massgen_kit.keepalive import request_with_keepalive
from massgen_proto import subjects
from massgen_proto.media import (
    FileChunk,
    FileReadRequest,
    FilesReplyAdapter,
    FileWriteRequest,
    FileWritten,
)
from massgen_proto.messages import ErrorReply

from tests.integration.gateway.test_media import png


async def ask(client, request) -> object:
    reply = await request_with_keepalive(
        client.nc, subjects.GATEWAY_FILES, request.model_dump_json().encode(), timeout=30
    )
    return FilesReplyAdapter.validate_json(reply)


async def refused_within(client, request, seconds: float) -> ErrorReply:
    """The gateway's refusal of ``request``, asked until it comes (at most ``seconds``)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        reply = await ask(client, request)
        if isinstance(reply, ErrorReply) or asyncio.get_running_loop().time() > deadline:
            assert isinstance(reply, ErrorReply), f"still served after {seconds} s: {reply!r}"
            return reply
        await asyncio.sleep(0.02)


def caller(client, run_id: str, agent_id: str, label: str, **overrides) -> dict:
    values = {"run_id": run_id, "agent_id": agent_id, "label": label, "phase": "coordinate",
              "turn_id": client.turn_id(run_id, agent_id),
              "token": client.token(run_id, agent_id)}  # fmt: skip
    return {**values, **overrides}


def team(tmp_path, **second) -> dict:
    return {"agents": [
        {"id": "a1", "backend": {"type": "openai", "model": "gpt-4o", "cwd": "w1",
                                 "upload_files": [{"image_path": str(tmp_path / "mine.png")},
                                                  {"image_path": "https://example.org/x.png"}]}},
        {"id": "a2", "backend": {"type": "openai", "model": "gpt-4o", "cwd": "w2",
                                 "enable_image_generation": True, **second}},
    ]}  # fmt: skip


async def test_uploads_are_listed_and_read_only_by_their_agents_turn(client, tmp_path):
    picture = png(16, 16)
    (tmp_path / "mine.png").write_bytes(picture)
    await client.put_run("run-up", team(tmp_path))

    listing = await client.list("run-up")
    assert listing.media.uploads[0].model_dump() == {
        "index": 0,
        "name": "mine.png",
        "url": None,
        "mime": "image/png",
        "size": len(picture),
        "kind": "image",
    }
    assert listing.media.uploads[1].url == "https://example.org/x.png"
    assert listing.media.problems == [] and not listing.media.image_generation

    read = await ask(client, FileReadRequest(upload=0, **caller(client, "run-up", "a1", "agent1")))
    assert isinstance(read, FileChunk) and base64.b64decode(read.data) == picture

    wrong = caller(client, "run-up", "a1", "agent1", token="0" * 64)
    refused = await ask(client, FileReadRequest(upload=0, **wrong))
    assert isinstance(refused, ErrorReply) and refused.code == "forbidden"
    assert "bad_token" in refused.error
    old_turn = caller(client, "run-up", "a1", "agent1")
    await client.new_turn("run-up", "a1")
    # A read changes nothing, so the gateway answers it from its watched cache, which
    # learns of the new turn some milliseconds after the write: the old turn is refused
    # once the watch delivers it.
    stale = await refused_within(client, FileReadRequest(upload=0, **old_turn), seconds=5.0)
    assert "stale_turn" in stale.error
    # a2's turn cannot read a1's upload: uploads are per agent, by index.
    other = await ask(client, FileReadRequest(upload=0, **caller(client, "run-up", "a2", "agent2")))
    assert isinstance(other, ErrorReply) and "no upload 0 the gateway serves" in other.error
    url = await ask(client, FileReadRequest(upload=1, **caller(client, "run-up", "a1", "agent1")))
    assert isinstance(url, ErrorReply)  # a URL is the provider's to fetch, not the gateway's


async def test_writes_need_generation_and_stay_in_the_agents_roots(client, tmp_path):
    (tmp_path / "mine.png").write_bytes(png(4, 4))
    await client.put_run("run-w", team(tmp_path))
    data = png(8, 8)

    def write(agent_id: str, label: str, path: str):
        return FileWriteRequest(path=path, offset=0, data=base64.b64encode(data).decode(),
                                total=len(data), **caller(client, "run-w", agent_id, label))  # fmt: skip

    written = await ask(client, write("a2", "agent2", "art/x.png"))
    assert isinstance(written, FileWritten) and written.size == len(data)
    assert (tmp_path / "runs" / "run-w" / "w2" / "art" / "x.png").read_bytes() == data
    no_switch = await ask(client, write("a1", "agent1", "x.png"))
    assert isinstance(no_switch, ErrorReply) and "generates no media" in no_switch.error
    outside = await ask(client, write("a2", "agent2", str(tmp_path / "escape.png")))
    assert isinstance(outside, ErrorReply) and "outside_roots" in outside.error
    assert not (tmp_path / "escape.png").exists()
    into_other = await ask(client, write("a2", "agent2", "../w1/planted.png"))
    assert isinstance(into_other, ErrorReply) and into_other.code == "forbidden"
    # Reading back through the agent's path permissions, as read_multimodal_files does.
    back = await ask(client, FileReadRequest(path="art/x.png",
                                             **caller(client, "run-w", "a2", "agent2")))  # fmt: skip
    assert isinstance(back, FileChunk) and base64.b64decode(back.data) == data


async def test_an_upload_problem_is_listed_with_the_key_and_the_file(client, tmp_path):
    await client.put_run("run-bad", team(tmp_path))  # mine.png was never written
    listing = await client.list("run-bad")
    assert listing.media.problems == [
        f"agents[0].backend.upload_files[0].image_path: cannot open {tmp_path / 'mine.png'}: "
        "No such file or directory"
    ]
    second = await client.list("run-bad", agent_id="a2", label="agent2")
    assert second.media.image_generation and second.media.uploads == []
