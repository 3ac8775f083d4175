"""A run's media files for the API: ``<label>/<path>`` read in chunks, or listed.

``<label>/<path>`` is how answers name an agent's files (the other agents read them the
same way, in the reference folder). It means the agent's latest snapshot
(``<reference>/<label>/<path>``); for the winner, its final workspace first (the
presentation may add files after its last answer). The path is checked as any agent's
path is (``permissions``: no ``..`` or symlink out of that folder, no odd characters)
and walked with ``O_NOFOLLOW``. Only media files are served (``media_files.MEDIA_TYPES``,
by content), and for an agent that writes documents (``enable_file_generation``) its
documents too (``doc_types``): the route shows artifacts, not a run's workspace.

Which run, and whether the caller may see it, is the API's business (it checks the
tenant); the gateway only ever looks under its own ``workspace_root`` and the run's
configured reference folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from massgen_proto.ids import label_for
from massgen_proto.media import FileChunk, RunFile, RunFileRequest, RunFiles
from massgen_proto.messages import ErrorReply
from massgen_proto.record import RunRecord

from .doc_types import DOCUMENT_SUFFIXES, DOCUMENT_TYPES, document_type
from .fdwalk import SymlinkRace, ToolError
from .media_files import MEDIA_TYPES, MediaError, chunk_of, open_checked, sniff
from .permissions import build_scope
from .workspace import layout_for

__all__ = ["MAX_LISTED", "MEDIA_SUFFIXES", "list_files", "read_chunk"]

MAX_LISTED = 200
"""Files a listing names at most."""
MEDIA_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".gif", ".webp", ".mp3", ".wav", ".mp4", ".mov", ".webm"}
)
"""Names a listing looks at (then checked by content)."""


def _bases(root: Path, record: RunRecord) -> dict[str, list[Path]]:
    """Label -> the folders its files are looked up in, in order."""
    layout = layout_for(root, record.run_id, record.config)
    bases: dict[str, list[Path]] = {}
    for index in range(len(record.config.agents)):
        label = label_for(index)
        found = [layout.reference / label]
        if label == record.winner_label:
            found.insert(0, layout.final)
        bases[label] = found
    return bases


def _kinds(record: RunRecord, label: str) -> tuple[frozenset[str], frozenset[str]]:
    """``(media types, file suffixes)`` served for ``label``'s agent."""
    index = next(i for i in range(len(record.config.agents)) if label_for(i) == label)
    if record.config.agents[index].backend.enable_file_generation:
        return MEDIA_TYPES | DOCUMENT_TYPES, MEDIA_SUFFIXES | DOCUMENT_SUFFIXES
    return MEDIA_TYPES, MEDIA_SUFFIXES


def read_chunk(
    root: Path, record: RunRecord, request: RunFileRequest, max_bytes: int
) -> FileChunk | ErrorReply:
    """A chunk of the run's file ``request.path`` (blocking I/O: run in a thread)."""
    label, _, rest = request.path.partition("/")
    bases = _bases(root, record)
    if label not in bases or not rest:
        known = ", ".join(bases)
        return ErrorReply(
            error=f"{request.path!r} is not <label>/<path> of this run (labels: {known})",
            code="not_found",
        )
    for base in bases[label]:
        if not base.is_dir():
            continue
        scope = build_scope(
            label=label, phase="coordinate", is_winner=False, workspace=str(base),
            reference=None, labels=(),
        )  # fmt: skip
        decision = scope.check(rest, "read")
        if not decision.allowed:
            return ErrorReply(error=f"{request.path!r}: not a file of the run", code="forbidden")
        try:
            fd = open_checked(decision)
        except ToolError:
            continue  # not in this folder: the next one may have it
        except SymlinkRace:
            return ErrorReply(error=f"{request.path!r}: not a file of the run", code="forbidden")
        try:
            kinds = _kinds(record, label)[0]
            chunk = chunk_of(fd, request.path, request.offset, request.version, max_bytes, kinds)
        except MediaError as error:
            return ErrorReply(error=str(error))
        return chunk
    return ErrorReply(error=f"no file {request.path!r} in run {record.run_id}", code="not_found")


def _media_type(path: Path, kinds: frozenset[str]) -> str | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        mime = sniff(os.pread(fd, 16, 0))
        if mime is None and kinds & DOCUMENT_TYPES:
            mime = document_type(fd, path.name)
    finally:
        os.close(fd)
    return mime if mime in kinds else None


def list_files(root: Path, record: RunRecord) -> RunFiles:
    """The run's media files, ``<label>/<path>`` each (a file in both of the winner's
    folders is listed once, as its final version)."""
    files: dict[str, RunFile] = {}
    for label, bases in _bases(root, record).items():
        kinds, suffixes = _kinds(record, label)
        for base in bases:
            for folder, dirs, names in os.walk(base):  # never follows symlinked folders
                dirs.sort()
                for name in sorted(names):
                    path = Path(folder) / name
                    shown = f"{label}/{path.relative_to(base).as_posix()}"
                    if shown in files or path.suffix.lower() not in suffixes:
                        continue
                    if path.is_symlink() or len(files) >= MAX_LISTED:
                        continue
                    mime = _media_type(path, kinds)
                    if mime is not None:
                        files[shown] = RunFile(path=shown, mime=mime, size=path.stat().st_size)
    return RunFiles(files=list(files.values()))
