"""Every failure of the service answers with one plain sentence in JSON `detail`, never a traceback, in the language
the request's Accept-Language asks for (English when it names none of ours)."""
from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.i18n import N_, _, from_accept_language, number, using
from core.serving.predlog import MAX_FEEDBACK, FeedbackFull, LogUnavailable

logger = logging.getLogger("transferlab.serve")

LOG_DOWN = N_("The prediction log cannot be reached right now, so nothing was answered or recorded; try again in a "
              "moment.")
UNPARSABLE = N_("The request body could not be parsed: send JSON in UTF-8, or images as multipart form data.")
_WHERE = {"query": N_("The query parameter {field}"), "header": N_("The header {field}"),
          "path": N_("The path {field}")}
_ANYWHERE = N_("The value {field}")


def validation_sentence(errors: list[dict[str, Any]]) -> str:
    """FastAPI's list of validation errors as one sentence a client developer can act on."""
    if not errors:
        return _("The request is not valid.")
    first = errors[0]
    location = [str(part) for part in first.get("loc", ())]
    if location == ["body", "file"] and first.get("type") == "missing":
        return _("Send one or more images as multipart form data in the field 'file'.")
    if location[:2] == ["body", "file"] and first.get("type") == "too_long":
        return _("Send at most {count} images per request.").format(
            count=(first.get("ctx") or {}).get("max_length", _("a few")))
    if first.get("type") == "json_invalid" or location == ["body"]:
        return _("The request body must be JSON such as {example}.").format(example='{"id": "...", "label": "..."}')
    field = ".".join(location[1:])
    if location[:2] == ["body", "label"] and first.get("type") == "literal_error":
        return _("The field 'label' in the request body must be one of this model's classes (GET /model lists them).")
    if location[:1] == ["body"]:
        subject = _("The field {field} in the request body").format(field=f"'{field}'")
    else:
        subject = _(_WHERE.get(location[0] if location else "", _ANYWHERE)).format(field=f"'{field}'")
    # Pydantic's own words stay English: they name the rule broken (a pattern, a bound) in a developer's terms.
    message = str(first.get("msg", "is not valid")).rstrip(".").removeprefix("Value error, ")
    return _("{subject} is invalid: {reason}.").format(subject=subject, reason=message[:1].lower() + message[1:])


def megabytes(size: int) -> str:
    return f"{number(round(size / 2**20, 2), 2).rstrip('0').rstrip('.')} MB"


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, _("The request is larger than the limit of {size}.").format(size=megabytes(limit)))


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


class RequestLanguage:
    """Sets the language of the request (its Accept-Language) for everything that answers it, handlers included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        with using(language_of(scope)):
            await self.app(scope, receive, send)


def language_of(scope: Scope) -> str:
    return from_accept_language(Headers(scope=scope).get("accept-language"))


def install_error_handlers(app: FastAPI, max_request_bytes: int) -> None:
    app.add_middleware(BodyLimit, limit=max_request_bytes)
    app.add_middleware(RequestLanguage)  # added last, so outermost: the body limit's refusal is translated too

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_sentence(list(error.errors()))}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        # FastAPI's own words for a body it cannot parse (e.g. not UTF-8) become a sentence a client can act on.
        detail = _(UNPARSABLE) if error.detail == "There was an error parsing the body" else error.detail
        return JSONResponse({"detail": detail}, status_code=error.status_code, headers=error.headers)

    @app.exception_handler(LogUnavailable)
    async def log_down(request: Request, error: LogUnavailable) -> JSONResponse:
        # Fail fast and say so: no answer without its row; the client retries (with the same Idempotency-Key).
        logger.warning("prediction log unavailable on %s: %s", request.url.path, error)
        return JSONResponse({"detail": _(LOG_DOWN)}, status_code=503, headers={"Retry-After": "2"})

    @app.exception_handler(FeedbackFull)
    async def feedback_full(_request: Request, _error: FeedbackFull) -> JSONResponse:
        return JSONResponse({"detail": _("This prediction already has {count} feedback labels; no more are "
                                         "recorded.").format(count=MAX_FEEDBACK)}, status_code=409)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        logger.exception("unexpected error on %s", request.url.path)  # the details stay in the server's log
        # Starlette answers this one outside every middleware, so the language is read here again.
        with using(language_of(request.scope)):
            detail = _("The service could not answer this request because of an internal error.")
        return JSONResponse({"detail": detail}, status_code=500)
