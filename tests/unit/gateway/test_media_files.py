"""Media files at the gateway: chunked reads and writes on checked paths, and a run's
files as the API sees them (``<label>/<path>``), on real folders."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from massgen_gateway.fdwalk import SymlinkRace
from massgen_gateway.media_files import (
    MediaError,
    chunk_of,
    open_checked,
    open_upload,
    sniff,
    write_chunk,
)
from massgen_gateway.permissions import AccessLedger, build_scope
from massgen_gateway.run_files import list_files, read_chunk
from massgen_proto.config import parse_config
from massgen_proto.media import CHUNK_BYTES, RunFileRequest
from massgen_proto.messages import ErrorReply
from massgen_proto.record import RunRecord

PNG_HEAD = b"\x89PNG\r\n\x1a\n" + b"\x00" * 8


def scope(ws: Path):
    return build_scope(label="agent1", phase="coordinate", is_winner=False, workspace=str(ws),
                       reference=None, labels=["agent1"])  # fmt: skip


@pytest.mark.parametrize(
    ("head", "mime"),
    [
        (PNG_HEAD, "image/png"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 12, "image/jpeg"),
        (b"GIF89a" + b"\x00" * 10, "image/gif"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", "audio/wav"),
        (b"ID3\x04" + b"\x00" * 12, "audio/mpeg"),
        (b"%PDF-1.7" + b"\x00" * 8, "application/pdf"),  # shown to models, not an artifact
        (b"hello, world....", None),
    ],
)
def test_the_type_comes_from_the_first_bytes(head, mime):
    assert sniff(head) == mime


def test_a_large_file_is_read_in_chunks_of_one_version(tmp_path):
    data = PNG_HEAD + os.urandom(CHUNK_BYTES + 1000)
    (tmp_path / "big.png").write_bytes(data)
    first = chunk_of(open_upload(str(tmp_path / "big.png")), "big.png", 0, None, 10 << 20)
    assert (first.mime, first.size, first.offset) == ("image/png", len(data), 0)
    assert base64.b64decode(first.data) == data[:CHUNK_BYTES]
    second = chunk_of(
        open_upload(str(tmp_path / "big.png")), "big.png", CHUNK_BYTES, first.version, 10 << 20
    )
    assert base64.b64decode(first.data) + base64.b64decode(second.data) == data
    (tmp_path / "big.png").write_bytes(data + b"more")  # changed between two chunks
    with pytest.raises(MediaError, match="changed while it was being read"):
        chunk_of(open_upload(str(tmp_path / "big.png")), "big.png", 0, first.version, 10 << 20)


def test_reads_refuse_big_files_non_media_and_folders(tmp_path):
    (tmp_path / "big.png").write_bytes(PNG_HEAD + b"\x00" * 2000)
    with pytest.raises(MediaError, match=r"big.png: 0.0 MB is over the limit of 0.0 MB"):
        chunk_of(open_upload(str(tmp_path / "big.png")), "big.png", 0, None, 1000)
    (tmp_path / "a.txt").write_text("plain text here!")
    with pytest.raises(MediaError, match="not a supported media file"):
        chunk_of(open_upload(str(tmp_path / "a.txt")), "a.txt", 0, None, 1 << 20)
    with pytest.raises(MediaError, match="not a regular file"):
        chunk_of(open_upload(str(tmp_path)), "folder", 0, None, 1 << 20)
    with pytest.raises(MediaError, match="cannot open .*nowhere.png: No such file"):
        open_upload(str(tmp_path / "nowhere.png"))


def test_chunks_are_written_in_order_within_the_limit(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    s, ledger = scope(ws), AccessLedger()
    data = PNG_HEAD + os.urandom(3000)
    decision = s.check("art/x.png", "write", ledger)

    def put(offset: int, piece: bytes, total: int = len(data), limit: int = 1 << 20):
        return write_chunk(decision, offset, base64.b64encode(piece).decode(), total, limit, ledger)

    with pytest.raises(MediaError, match="over the limit"):
        put(0, data[:1000], limit=1000)
    assert put(0, data[:1000]).size == 1000
    with pytest.raises(MediaError, match="out of order"):
        put(2000, data[2000:])
    assert put(1000, data[1000:]).size == len(data)
    assert (ws / "art" / "x.png").read_bytes() == data
    assert ledger.may_delete(str(ws / "art" / "x.png"))  # created by this agent
    with pytest.raises(MediaError, match="past the declared size"):
        put(0, data, total=10)
    with pytest.raises(MediaError, match="not base64"):
        write_chunk(decision, 0, "***", 3, 1 << 20, ledger)


def test_a_symlink_planted_after_the_check_is_not_followed(tmp_path):
    ws = tmp_path / "ws"
    (ws / "pics").mkdir(parents=True)
    (tmp_path / "secret.png").write_bytes(PNG_HEAD)
    decision = scope(ws).check("pics/x.png", "read")
    os.symlink(tmp_path / "secret.png", ws / "pics" / "x.png")
    with pytest.raises(SymlinkRace):
        open_checked(decision)


def run_record(tmp_path: Path, winner: str | None = "agent1") -> RunRecord:
    config = parse_config({"agents": [
        {"id": "a", "backend": {"type": "openai", "model": "gpt-4o"}},
        {"id": "b", "backend": {"type": "openai", "model": "gpt-4o"}}]})  # fmt: skip
    return RunRecord(run_id="r1", status="completed", config=config, winner_label=winner,
                     secret="s", agents=[])  # fmt: skip


def test_a_runs_files_are_its_snapshots_and_the_winners_final_workspace(tmp_path):
    run = tmp_path / "r1"
    (run / "reference" / "agent1").mkdir(parents=True)
    (run / "reference" / "agent2" / "img").mkdir(parents=True)
    (run / "final_workspace").mkdir()
    (run / "reference" / "agent1" / "a.png").write_bytes(PNG_HEAD + b"old")
    (run / "final_workspace" / "a.png").write_bytes(PNG_HEAD + b"final")
    (run / "reference" / "agent2" / "img" / "b.png").write_bytes(PNG_HEAD + b"two")
    (run / "reference" / "agent2" / "notes.md").write_text("# notes")
    record = run_record(tmp_path)

    def read(path: str):
        return read_chunk(tmp_path, record, RunFileRequest(run_id="r1", path=path), 1 << 20)

    assert base64.b64decode(read("agent1/a.png").data).endswith(b"final")  # the winner's last
    assert base64.b64decode(read("agent2/img/b.png").data).endswith(b"two")
    for path, code in (("agent3/a.png", "not_found"), ("agent1", "not_found"),
                       ("agent2/../agent1/a.png", "forbidden"), ("agent2//etc/passwd", "forbidden"),
                       ("agent2/missing.png", "not_found")):  # fmt: skip
        reply = read(path)
        assert isinstance(reply, ErrorReply) and reply.code == code, (path, reply)
    assert "not a supported media file" in read("agent2/notes.md").error
    listed = [(f.path, f.mime) for f in list_files(tmp_path, record).files]
    assert listed == [("agent1/a.png", "image/png"), ("agent2/img/b.png", "image/png")]
