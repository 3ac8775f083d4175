"""Fixtures for the e2e tests: ``cli`` runs the ``massgen`` command in a private folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e_support import Cli


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """A ``massgen`` runner with its own working folder and HOME."""
    return Cli(tmp_path)
