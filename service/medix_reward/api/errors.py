"""Every error the service answers: one body (`ErrorBody`), one table from exception type to
(status, type, code), and the handlers that apply it. Nothing else builds an error response.

Messages are bounded and never carry an exception's text, a stack trace or a path.
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from medix_reward.embedding.backends import EmbedderError

if TYPE_CHECKING:
    from medix_reward.judge.health import ReplicaHealth
from medix_reward_client.schema import ErrorBody, ErrorDetail
from medix_reward_client.scores import ItemRejected, RewardUnavailable

log = logging.getLogger(__name__)

_MAX_MESSAGE_CHARS = 500


class ServiceError(Exception):
    """An error with a message fit for the caller; `param` names the offending field, `code` refines the table's."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message, self.param, self.code = message, param, code


class InvalidJSON(ServiceError):
    pass


class Unauthorized(ServiceError):
    pass


class BodyTooLarge(ServiceError):
    pass


class BodyTimedOut(ServiceError):
    """The request body stopped arriving; the connection is closed."""


class InvalidField(ServiceError):
    pass


class Overloaded(ServiceError):
    """More work in flight than the service admits; the caller should retry later."""


class ClientGone(ServiceError):
    """The caller disconnected; its work was cancelled."""


class JudgeDown(ServiceError):
    """Every judge call of the request failed: the whole request fails rather than return a batch of nulls."""


class JudgeTimedOut(JudgeDown):
    """Every judge call of the request timed out."""


def judge_down(code: str | None, message: str) -> JudgeDown:
    """The one rule for a request that failed because the judge did (every call failed, or its calibration
    could not be asked): 504 when the judge timed out, 502 otherwise, with the judge's error code."""
    down = JudgeTimedOut if code == "judge_timeout" else JudgeDown
    return down(message, code=code)


async def raise_if_judge_down(health: ReplicaHealth, code: str | None, message: str) -> None:
    """The one rule for a request (/reward, /evaluate) whose every judged call failed, the first with `code` and
    `message`: it fails whole (`judge_down`) only when no replica is healthy (`confirm`); otherwise it returns,
    and the failed items are null with their reason in a 200."""
    if not await health.confirm():
        raise judge_down(code, f"every judge call failed and no judge replica is healthy: {message}")


class NotReady(ServiceError):
    pass


class JudgeUncalibrated(ServiceError):
    """The evaluation judge failed calibration (calibration.py): its table would measure the judge, not the answers.
    Not retried by clients (a 4xx): the same judge fails again; `options.force` grades anyway."""


# exception type → (HTTP status, error type, default code). Subclasses come before their bases.
ERROR_TABLE: dict[type[Exception], tuple[int, str, str]] = {
    InvalidJSON: (400, "invalid_request", "invalid_json"),
    Unauthorized: (401, "unauthorized", "unauthorized"),
    BodyTimedOut: (408, "timeout", "body_timeout"),
    BodyTooLarge: (413, "too_large", "body_too_large"),
    InvalidField: (422, "invalid_request", "validation_error"),
    Overloaded: (429, "overloaded", "overloaded"),
    ClientGone: (499, "cancelled", "client_disconnected"),
    EmbedderError: (500, "embedder_error", "embedder_error"),
    ItemRejected: (422, "unscored", "judge_rejected_input"),
    RewardUnavailable: (502, "unscored", "unscored"),
    JudgeTimedOut: (504, "judge_error", "judge_timeout"),
    JudgeDown: (502, "judge_error", "judge_unreachable"),
    NotReady: (503, "not_ready", "not_ready"),
    JudgeUncalibrated: (424, "judge_uncalibrated", "judge_calibration"),
}
_HEADERS: dict[int, dict[str, str]] = {
    401: {"WWW-Authenticate": "Bearer"},
    408: {"Connection": "close"},  # the rest of the body may never come: do not wait for it
    429: {"Retry-After": "1"},
}
# What each status means, for the OpenAPI document.
_DESCRIPTIONS = {
    400: "The body is not valid JSON",
    401: "Missing or wrong bearer token",
    408: "The request body stopped arriving (`limits.body_timeout_s`)",
    413: "Request body too large",
    422: "Invalid request: `error.param` names the field; on the trainer endpoints also an item the judge "
    "refuses for good (code `judge_rejected_input`), which no retry changes",
    424: "The evaluation judge failed calibration (`judge_calibration`, `judge_order_bias`); `options.force` grades "
    "anyway",
    429: "Overloaded: retry after `Retry-After` seconds",
    500: "Internal error (e.g. the embedding model failed)",
    502: "Every judge call of the batch failed",
    503: "Not ready",
    504: "Every judge call of the batch timed out",
}


def classify(exc: Exception) -> tuple[int, str, str]:
    for kind, entry in ERROR_TABLE.items():
        if isinstance(exc, kind):
            status, type_, code = entry
            return status, type_, getattr(exc, "code", None) or code
    return 500, "internal_error", "internal_error"


def error_body(status: int, type_: str, message: str, *, param: str | None = None, code: str) -> dict[str, Any]:
    detail = ErrorDetail(type=type_, message=message[:_MAX_MESSAGE_CHARS], param=param, code=code)
    return ErrorBody(error=detail).model_dump()


def error_response(exc: Exception) -> JSONResponse:
    """The response for an exception of the table; anything else is a 500 whose message says nothing."""
    status, type_, code = classify(exc)
    if status == 500 and not isinstance(exc, EmbedderError):
        message = "internal error; see the service log"
    else:
        message = getattr(exc, "message", None) or str(exc)
    body = error_body(status, type_, message, param=getattr(exc, "param", None), code=code)
    return JSONResponse(body, status_code=status, headers=_HEADERS.get(status))


def raw_error(exc: ServiceError) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """The same response for plain ASGI middleware, which answers before the app runs."""
    status, type_, code = classify(exc)
    body = json.dumps(error_body(status, type_, exc.message, param=exc.param, code=code)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in _HEADERS.get(status, {}).items()]
    return status, headers, body


def field_path(loc: tuple[Any, ...]) -> str:
    """('body', 'items', 3, 'response') → 'items[3].response'."""
    out = ""
    for part in loc[1:] if loc and loc[0] == "body" else loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def _from_validation(exc: RequestValidationError) -> ServiceError:
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": ""}
    if first.get("type") == "json_invalid":
        return InvalidJSON("the body is not valid JSON")
    more = f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
    param = field_path(tuple(first.get("loc", ())))
    return InvalidField(f"{param}: {first['msg']}{more}", param=param)


def _from_http(exc: StarletteHTTPException) -> JSONResponse:
    phrase = HTTPStatus(exc.status_code).phrase
    code = phrase.lower().replace(" ", "_").replace("-", "_")
    body = error_body(exc.status_code, "http_error", str(exc.detail), code=code)
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


def install_error_handlers(app: FastAPI) -> None:
    async def known(_: Request, exc: Exception) -> JSONResponse:
        return error_response(exc)

    async def validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(_from_validation(exc))

    async def http(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return _from_http(exc)

    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return error_response(exc)

    for kind in ERROR_TABLE:
        app.add_exception_handler(kind, known)
    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(StarletteHTTPException, http)
    app.add_exception_handler(Exception, unexpected)


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The error responses a route declares, so OpenAPI shows them."""
    return {status: {"model": ErrorBody, "description": _DESCRIPTIONS[status]} for status in statuses}
