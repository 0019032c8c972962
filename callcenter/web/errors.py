"""Errors as JSON: every rule violation is a 4xx with a machine-readable code and a human sentence."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from callcenter.i18n import t
from callcenter.web.text import ERROR_TYPE as CONTROL_CHARACTERS

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def error_body(code: str, message: str, **extra: object) -> dict[str, object]:
    return {"error": {"code": code, "message": message, **extra}}


def _lang(request: Request) -> str:
    accept = request.headers.get("accept-language", "")
    return "en" if accept.lower().startswith("en") else "zh-CN"


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        message = exc.message
        if message is None:
            try:
                message = t(f"api.{exc.code}", _lang(request))
            except KeyError:
                message = exc.code
        return JSONResponse(error_body(exc.code, message), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        lang = _lang(request)
        errs = exc.errors()
        code = "invalid_request"
        if any(err.get("type") == CONTROL_CHARACTERS for err in errs):
            code = CONTROL_CHARACTERS  # a NUL or another control character in a text field
        fields = [
            {"field": ".".join(str(p) for p in err.get("loc", ()) if p != "body"),
             "problem": t(f"api.{CONTROL_CHARACTERS}", lang) if err.get("type") == CONTROL_CHARACTERS
             else err.get("msg", "")}
            for err in errs
        ]
        return JSONResponse(error_body(code, t(f"api.{code}", lang), fields=fields), status_code=422)

    @app.exception_handler(DataError)
    async def _data_error(request: Request, exc: DataError) -> JSONResponse:
        """Defence in depth: a value the database refused (the request types should have caught it). Logged
        with its SQLSTATE only: never the statement's parameters (the engine hides them as well)."""
        sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None) or "?"
        log.warning("database refused a value on %s %s (SQLSTATE %s)", request.method, request.url.path, sqlstate)
        return JSONResponse(error_body("invalid_request", t("api.invalid_request", _lang(request))), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {401: "unauthenticated", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
                413: "request_too_large"}.get(exc.status_code, "http_error")
        try:
            message = t(f"api.{code}", _lang(request))
        except KeyError:
            message = str(exc.detail)
        return JSONResponse(error_body(code, message), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))
