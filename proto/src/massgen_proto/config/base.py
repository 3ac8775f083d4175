"""The base of the config models."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["ConfigModel"]


class ConfigModel(BaseModel):
    """A config section: unknown keys are errors (named by their path), and a field with an
    alias may be given by its name too."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
