"""Example team configs shipped with the command (``massgen_cli/examples/*.yaml``).

``--config NAME`` takes a file path or the name of one of these (with or without
``.yaml``); ``massgen --list-examples`` lists them with their first comment line.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["examples", "resolve_config_path"]

_DIR = Path(__file__).resolve().parent / "examples"


def examples() -> dict[str, tuple[Path, str]]:
    """Name -> (file, one-line description), sorted by name."""
    out: dict[str, tuple[Path, str]] = {}
    for path in sorted(_DIR.glob("*.yaml")):
        first = path.read_text(encoding="utf-8").splitlines()[:1]
        description = first[0].lstrip("# ").strip() if first and first[0].startswith("#") else ""
        out[path.stem] = (path, description)
    return out


def resolve_config_path(value: str) -> str:
    """A ``--config`` value as a file path: an existing file wins, then an example name.

    Returns ``value`` unchanged when neither matches, so loading it reports the
    missing file.
    """
    if Path(value).expanduser().exists():
        return str(Path(value).expanduser())
    name = value.removesuffix(".yaml").removesuffix(".yml")
    found = examples().get(name)
    return str(found[0]) if found else value
