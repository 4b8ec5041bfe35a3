"""The base of every settings group."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt variable must not be silently ignored
