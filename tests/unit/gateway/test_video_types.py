"""Videos at the gateway: known by their first bytes, served and listed as a run's media."""

from __future__ import annotations

import base64
import os

import pytest
from massgen_gateway.media_files import MediaError, chunk_of, sniff
from massgen_gateway.run_files import list_files
from massgen_proto.config import parse_config
from massgen_proto.record import RunRecord

from tests.support.video_files import tiny_video


@pytest.mark.parametrize(
    ("head", "mime"),
    [
        (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00", "video/mp4"),
        (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00", "video/mp4"),
        (b"\x00\x00\x00\x14ftypqt  \x00\x00\x02\x00", "video/quicktime"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\xf2\x81", "video/webm"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", None),  # a HEIC picture, same box
        (b"\x00\x00\x00\x18ftypavif\x00\x00\x00\x00", None),
        (b"\x00\x00\x00\x18moovdata\x00\x00\x00\x00", None),
    ],
)
def test_a_video_is_known_by_its_first_bytes(head, mime):
    assert sniff(head) == mime


def test_a_real_video_is_served_and_bytes_named_mp4_are_not(tmp_path):
    clip = tiny_video()
    (tmp_path / "clip.mp4").write_bytes(clip)
    (tmp_path / "fake.mp4").write_bytes(b"#!/bin/sh\necho not a video\n")
    fd = os.open(tmp_path / "clip.mp4", os.O_RDONLY)
    chunk = chunk_of(fd, "clip.mp4", 0, None, 1 << 20)
    assert (chunk.mime, base64.b64decode(chunk.data)) == ("video/mp4", clip)
    fd = os.open(tmp_path / "fake.mp4", os.O_RDONLY)
    with pytest.raises(MediaError, match=r"fake\.mp4: not a supported media file"):
        chunk_of(fd, "fake.mp4", 0, None, 1 << 20)


def test_a_generated_video_is_listed_among_the_runs_files(tmp_path):
    folder = tmp_path / "r1" / "reference" / "agent1" / "film"
    folder.mkdir(parents=True)
    (folder / "fox.mp4").write_bytes(tiny_video())
    (folder / "fox.txt").write_text("a script")
    config = parse_config(
        {"agents": [{"id": "a", "backend": {"type": "openai", "model": "gpt-4o"}}]}
    )
    record = RunRecord(run_id="r1", status="completed", config=config, winner_label=None,
                       secret="s", agents=[])  # fmt: skip
    listed = [(f.path, f.mime) for f in list_files(tmp_path, record).files]
    assert listed == [("agent1/film/fox.mp4", "video/mp4")]
