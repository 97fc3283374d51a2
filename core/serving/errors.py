"""Every failure of the service answers with one plain sentence in JSON `detail`, never a traceback."""
from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.serving.predlog import MAX_FEEDBACK, FeedbackFull, LogUnavailable

logger = logging.getLogger("transferlab.serve")

LOG_DOWN = ("The prediction log cannot be reached right now, so nothing was answered or recorded; try again in a "
            "moment.")
UNPARSABLE = "The request body could not be parsed: send JSON in UTF-8, or images as multipart form data."
_WHERE = {"query": "the query parameter", "header": "the header", "path": "the path"}


def validation_sentence(errors: list[dict[str, Any]]) -> str:
    """FastAPI's list of validation errors as one sentence a client developer can act on."""
    if not errors:
        return "The request is not valid."
    first = errors[0]
    location = [str(part) for part in first.get("loc", ())]
    if location == ["body", "file"] and first.get("type") == "missing":
        return "Send one or more images as multipart form data in the field 'file'."
    if location[:2] == ["body", "file"] and first.get("type") == "too_long":
        return f"Send at most {(first.get('ctx') or {}).get('max_length', 'a few')} images per request."
    if first.get("type") == "json_invalid" or location == ["body"]:
        return "The request body must be JSON such as {\"id\": \"...\", \"label\": \"...\"}."
    field = ".".join(location[1:])
    if location[:2] == ["body", "label"] and first.get("type") == "literal_error":
        return "The field 'label' in the request body must be one of this model's classes (GET /model lists them)."
    if location[:1] == ["body"]:
        subject = f"The field '{field}' in the request body"
    else:
        subject = f"{_WHERE.get(location[0], 'the value') if location else 'the value'} '{field}'".capitalize()
    message = str(first.get("msg", "is not valid")).rstrip(".").removeprefix("Value error, ")
    return f"{subject} is invalid: {message[:1].lower() + message[1:]}."


def megabytes(size: int) -> str:
    return f"{round(size / 2**20, 2):g} MB"


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request is larger than the limit of {megabytes(limit)}.")


class BodyLimit:
    """Refuses a request body over `limit` bytes while it streams in, before it is spooled anywhere."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            response = JSONResponse({"detail": BodyTooLarge(self.limit).detail}, status_code=413)
            return await response(scope, receive, send)
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:  # a chunked body without a length: stop reading at the limit
                    raise BodyTooLarge(self.limit)
            return message

        await self.app(scope, counted, send)


def install_error_handlers(app: FastAPI, max_request_bytes: int) -> None:
    app.add_middleware(BodyLimit, limit=max_request_bytes)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_sentence(list(error.errors()))}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        # FastAPI's own words for a body it cannot parse (e.g. not UTF-8) become a sentence a client can act on.
        detail = UNPARSABLE if error.detail == "There was an error parsing the body" else error.detail
        return JSONResponse({"detail": detail}, status_code=error.status_code, headers=error.headers)

    @app.exception_handler(LogUnavailable)
    async def log_down(request: Request, error: LogUnavailable) -> JSONResponse:
        # Fail fast and say so: no answer without its row; the client retries (with the same Idempotency-Key).
        logger.warning("prediction log unavailable on %s: %s", request.url.path, error)
        return JSONResponse({"detail": LOG_DOWN}, status_code=503, headers={"Retry-After": "2"})

    @app.exception_handler(FeedbackFull)
    async def feedback_full(_request: Request, _error: FeedbackFull) -> JSONResponse:
        return JSONResponse({"detail": f"This prediction already has {MAX_FEEDBACK} feedback labels; no more are "
                                       f"recorded."}, status_code=409)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        logger.exception("unexpected error on %s", request.url.path)  # the details stay in the server's log
        return JSONResponse({"detail": "The service could not answer this request because of an internal error."},
                            status_code=500)
