"""Every failure of the service answers with one plain sentence in JSON `detail`, never a traceback."""
from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("transferlab.serve")

_WHERE = {"query": "the query parameter", "header": "the header", "path": "the path"}


def validation_sentence(errors: list[dict[str, Any]]) -> str:
    """FastAPI's list of validation errors as one sentence a client developer can act on."""
    if not errors:
        return "The request is not valid."
    first = errors[0]
    location = [str(part) for part in first.get("loc", ())]
    if location == ["body", "file"] and first.get("type") == "missing":
        return "Send one or more images as multipart form data in the field 'file'."
    if first.get("type") == "json_invalid" or location == ["body"]:
        return "The request body must be JSON such as {\"id\": \"...\", \"label\": \"...\"}."
    field = ".".join(location[1:])
    if location[:1] == ["body"]:
        subject = f"The field '{field}' in the request body"
    else:
        subject = f"{_WHERE.get(location[0], 'the value') if location else 'the value'} '{field}'".capitalize()
    message = str(first.get("msg", "is not valid")).rstrip(".")
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

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        logger.exception("unexpected error on %s", request.url.path)  # the details stay in the server's log
        return JSONResponse({"detail": "The service could not answer this request because of an internal error."},
                            status_code=500)
