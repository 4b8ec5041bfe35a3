"""What both endpoints share: the request and response bases (what the server accepts forbids unknown fields, a
typo must not be silently ignored; what the client parses allows them, so an older client keeps working against a
newer server) and the one error body."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # no `false` for a number, no "1" for an int


class _Response(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorDetail(_Response):
    type: str
    message: str
    param: str | None = None
    code: str | None = None


class ErrorBody(_Response):
    error: ErrorDetail
