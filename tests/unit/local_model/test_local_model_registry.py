"""Weight assembly and verification on small fake chunk packages."""

from __future__ import annotations

import hashlib
import importlib.metadata
from pathlib import Path

import pytest
from massgen_local_model import registry
from massgen_local_model.registry import (
    ChunkedModel,
    ModelNotInstalledError,
    PackagedModel,
    UnknownModelError,
    WeightsMismatchError,
    assemble_chunks,
    resolve_model,
)

CHUNKS = [b"alpha-" * 1000, b"bravo-" * 700, b"charlie" * 3]
WHOLE = b"".join(CHUNKS)
FAKE = ChunkedModel(
    name="fake-model",
    packages=("fake-part1", "fake-part2", "fake-part3"),
    version="1.0",
    size=len(WHOLE),
    sha256=hashlib.sha256(WHOLE).hexdigest(),
    extra="fake",
)


@pytest.fixture
def fake_models(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.MODELS, FAKE.name, FAKE)
    monkeypatch.setitem(
        registry.MODELS, "fake-packaged", PackagedModel("fake-packaged", "fake-whole", "1.0")
    )


def make_packages(root: Path, chunks: list[bytes]) -> dict[str, list[Path]]:
    """Lay out chunk files like the real wheels: ``<pkg>/data/partNN.bin`` + ``__init__``."""
    installed: dict[str, list[Path]] = {}
    for i, data in enumerate(chunks, start=1):
        pkg = root / f"fake_part{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("raise RuntimeError('never import weights')\n")
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(data)
        installed[f"fake-part{i}"] = [pkg / "__init__.py", pkg / "data" / f"part{i:02d}.bin"]
    return installed


def files_from(installed: dict[str, list[Path]]):
    def files_of(name: str) -> list[Path]:
        if name not in installed:
            raise importlib.metadata.PackageNotFoundError(name)
        return installed[name]

    return files_of


def test_assembles_verifies_and_marks(tmp_path: Path, fake_models: None) -> None:
    installed = make_packages(tmp_path / "site", CHUNKS)
    seen: list[tuple[int, int]] = []
    cache = tmp_path / "cache"

    model = resolve_model(
        "fake-model",
        cache_dir=cache,
        on_progress=lambda d, t: seen.append((d, t)),
        files_of=files_from(installed),
    )

    assert model.name == "fake-model"
    assert model.path.read_bytes() == WHOLE
    assert (cache / (model.path.name + ".sha256")).read_text().strip() == FAKE.sha256
    assert seen[-1] == (len(WHOLE), len(WHOLE))
    assert sorted(p.name for p in cache.iterdir()) == [model.path.name, model.path.name + ".sha256"]


def test_cache_hit_does_not_read_chunks_again(tmp_path: Path, fake_models: None) -> None:
    installed = make_packages(tmp_path / "site", CHUNKS)
    cache = tmp_path / "cache"
    first = resolve_model(
        "fake-model", cache_dir=cache, on_progress=lambda d, t: None, files_of=files_from(installed)
    )
    seen: list[int] = []

    again = resolve_model(
        "fake-model",
        cache_dir=cache,
        on_progress=lambda d, t: seen.append(d),
        files_of=files_from(installed),
    )

    assert again.path == first.path
    assert seen == []


def test_cache_hit_needs_no_packages(tmp_path: Path, fake_models: None) -> None:
    installed = make_packages(tmp_path / "site", CHUNKS)
    cache = tmp_path / "cache"
    first = resolve_model(
        "fake-model", cache_dir=cache, on_progress=lambda d, t: None, files_of=files_from(installed)
    )

    assert resolve_model("fake-model", cache_dir=cache, files_of=files_from({})) == first


def test_cached_file_without_marker_is_rebuilt(tmp_path: Path, fake_models: None) -> None:
    installed = make_packages(tmp_path / "site", CHUNKS)
    cache = tmp_path / "cache"
    cache.mkdir()
    stale = cache / f"fake-model-{FAKE.sha256[:12]}.gguf"
    stale.write_bytes(b"x" * len(WHOLE))  # right size, wrong content, no marker

    model = resolve_model(
        "fake-model", cache_dir=cache, on_progress=lambda d, t: None, files_of=files_from(installed)
    )

    assert model.path.read_bytes() == WHOLE


def test_corrupted_chunk_names_packages_and_expected_hash(
    tmp_path: Path, fake_models: None
) -> None:
    bad = [CHUNKS[0], CHUNKS[1][:-1] + b"X", CHUNKS[2]]
    installed = make_packages(tmp_path / "site", bad)
    cache = tmp_path / "cache"

    with pytest.raises(WeightsMismatchError, match=FAKE.sha256) as excinfo:
        resolve_model(
            "fake-model",
            cache_dir=cache,
            on_progress=lambda d, t: None,
            files_of=files_from(installed),
        )

    err = excinfo.value
    assert "fake-part1" in str(err) and "fake-part3" in str(err)
    assert f"{len(WHOLE):,} bytes" in str(err)
    assert err.found_sha256 == hashlib.sha256(b"".join(bad)).hexdigest()
    assert "uv sync --all-packages --extra fake" in str(err)
    assert list(cache.iterdir()) == []  # no temp file, no marker, no final file


def test_oversized_chunks_stop_early_and_leave_nothing(tmp_path: Path, fake_models: None) -> None:
    installed = make_packages(tmp_path / "site", [*CHUNKS[:2], CHUNKS[2] * 50])
    cache = tmp_path / "cache"

    with pytest.raises(WeightsMismatchError) as excinfo:
        resolve_model(
            "fake-model",
            cache_dir=cache,
            on_progress=lambda d, t: None,
            files_of=files_from(installed),
        )

    assert excinfo.value.found_size == len(CHUNKS[0]) + len(CHUNKS[1]) + len(CHUNKS[2]) * 50
    assert list(cache.iterdir()) == []


def test_interrupted_assembly_removes_temp_file(tmp_path: Path) -> None:
    chunk = tmp_path / "c.bin"
    chunk.write_bytes(WHOLE)
    dest = tmp_path / "cache" / "m.gguf"

    def interrupt(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        assemble_chunks([chunk], dest, size=len(WHOLE), sha256=FAKE.sha256, on_progress=interrupt)

    assert list(dest.parent.iterdir()) == []


def test_missing_package_names_it_and_the_install_command(
    tmp_path: Path, fake_models: None
) -> None:
    installed = make_packages(tmp_path / "site", CHUNKS)
    del installed["fake-part2"]

    with pytest.raises(ModelNotInstalledError, match="'fake-part2'") as excinfo:
        resolve_model("fake-model", cache_dir=tmp_path / "cache", files_of=files_from(installed))

    assert "make install-models" in str(excinfo.value)
    assert "uv sync --all-packages --extra fake" in str(excinfo.value)
    assert not (tmp_path / "cache").exists()


def test_package_without_its_data_file_counts_as_missing(tmp_path: Path, fake_models: None) -> None:
    installed = make_packages(tmp_path / "site", CHUNKS)
    installed["fake-part3"] = installed["fake-part3"][:1]

    with pytest.raises(ModelNotInstalledError, match="'fake-part3'"):
        resolve_model("fake-model", cache_dir=tmp_path / "cache", files_of=files_from(installed))


def test_packaged_model_is_found_by_metadata(tmp_path: Path, fake_models: None) -> None:
    gguf = tmp_path / "fake_whole" / "Model.Q4.gguf"
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF")

    model = resolve_model("fake-packaged", files_of=files_from({"fake-whole": [gguf]}))

    assert model.path == gguf


def test_missing_packaged_model_says_no_deps(tmp_path: Path, fake_models: None) -> None:
    with pytest.raises(ModelNotInstalledError, match="--no-deps fake-whole==1.0"):
        resolve_model("fake-packaged", files_of=files_from({}))


def test_gguf_path_is_served_by_its_stem(tmp_path: Path) -> None:
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF")

    assert resolve_model(str(gguf)).name == "tiny"


def test_unknown_model_lists_known_ones(tmp_path: Path) -> None:
    with pytest.raises(UnknownModelError, match="qwen2.5-coder-0.5b"):
        resolve_model(str(tmp_path / "nope.gguf"))


def test_real_metadata_lookup_without_importing() -> None:
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        registry.package_files("surely-not-installed-massgen-weights")
    files = registry.package_files("xllamacpp")
    assert any(p.name == "__init__.py" for p in files)


def test_cache_dir_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MASSGEN_CACHE_DIR", str(tmp_path))
    assert registry.default_cache_dir() == tmp_path
    monkeypatch.delenv("MASSGEN_CACHE_DIR")
    assert registry.default_cache_dir().parts[-3:] == (".cache", "massgen", "models")
