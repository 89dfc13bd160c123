"""Request limits: the body of every route is bounded, and JSON is refused past a nesting depth.

Every router uses :class:`LimitedRoute` (a FastAPI route class): before FastAPI parses anything,
the body is read through :class:`LimitedRequest`, which stops at the route's limit (``413
api.payload_too_large``, also at once when ``Content-Length`` announces more), and a JSON body is
measured for depth (``422 input.too_deep``) before any recursive parser sees it. Which limit a
route has is its router's route class: commands (``M2C_MAX_JSON_BYTES``), master-data bundles
(``M2C_MAX_BUNDLE_BYTES``), or streamed uploads (``M2C_MAX_UPLOAD_BYTES``, :class:`UploadRoute`:
the endpoint reads the stream itself, still bounded).
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.types import Receive, Scope

from meter2cash.api.errors import PayloadTooLarge
from meter2cash.api.schemas import REQUEST_CURRENCY
from meter2cash.config import Settings
from meter2cash.core.errors import InvalidInput
from meter2cash.core.jsonsafe import DepthMeter, json_depth

#: A NUL character written as a JSON escape (not an escaped backslash followed by ``u0000``).
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def refuse_nul(where: str) -> InvalidInput:
    """No text the platform stores may hold NUL (PostgreSQL text cannot): ``422 input.nul_character``."""
    return InvalidInput(f"the {where} holds a NUL character", code="input.nul_character", where=where)


def check_no_nul(request: Request, body: bytes = b"", *, json: bool = False) -> None:
    """Refuse a NUL character in the path, the query or the body (raw, or as a JSON escape)."""
    if "\x00" in request.scope.get("path", "") or any(
        "\x00" in k + v for k, v in request.query_params.multi_items()
    ):
        raise refuse_nul("URL")
    if b"\x00" in body or (json and _JSON_NUL.search(body)):
        raise refuse_nul("body")


def too_large(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the request body is larger than the {max_bytes} bytes this route accepts", max_bytes=max_bytes
    )


def too_deep(depth: int, max_depth: int) -> InvalidInput:
    return InvalidInput(
        f"the JSON body is nested {depth} levels deep; at most {max_depth} are accepted",
        code="input.too_deep",
        depth=depth,
        max_depth=max_depth,
    )


def is_json(request: Request) -> bool:
    """Whether FastAPI would parse the body as JSON (no content type counts as JSON)."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return not media or media == "application/json" or media.endswith("+json")


def check_json_text(body: bytes, max_depth: int) -> None:
    """A JSON body must be UTF-8 text (RFC 8259; ``422 input.not_utf8``) nested at most
    ``max_depth`` deep (``422 input.too_deep``)."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"the JSON body is not UTF-8 text: byte 0x{body[exc.start]:02x} at offset {exc.start}",
            code="input.not_utf8",
            offset=exc.start,
        ) from None
    depth = json_depth(body)
    if depth > max_depth:
        raise too_deep(depth, max_depth)


class LimitedRequest(Request):
    """A request whose body stream stops with ``413`` once it passes ``max_bytes``."""

    def __init__(self, scope: Scope, receive: Receive, max_bytes: int) -> None:
        super().__init__(scope, receive)
        self.max_bytes = max_bytes

    async def stream(self) -> AsyncGenerator[bytes, None]:
        declared = self.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise too_large(self.max_bytes)
        size = 0
        async for chunk in super().stream():
            size += len(chunk)
            if size > self.max_bytes:
                raise too_large(self.max_bytes)
            yield chunk


class LimitedRoute(APIRoute):
    """A route whose body is read bounded by :attr:`limit` (a :class:`Settings` field) and, when
    JSON, checked for depth, before the endpoint's parameters are parsed."""

    limit = "max_json_bytes"
    #: True: the endpoint reads the body as a stream itself (the limit still holds).
    streaming = False

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        limit, streaming = self.limit, self.streaming

        async def limited(request: Request) -> Response:
            settings: Settings = request.app.state.platform.settings
            bounded = LimitedRequest(request.scope, request.receive, int(getattr(settings, limit)))
            check_no_nul(bounded)
            if not streaming:
                body = await bounded.body()
                if body and is_json(bounded):
                    check_json_text(body, settings.max_json_depth)
                    check_no_nul(bounded, body, json=True)
            token = REQUEST_CURRENCY.set(settings.currency)
            try:
                return await handler(bounded)
            finally:
                REQUEST_CURRENCY.reset(token)

        return limited


class BundleRoute(LimitedRoute):
    limit = "max_bundle_bytes"


class UploadRoute(LimitedRoute):
    limit = "max_upload_bytes"
    streaming = True


async def read_upload(request: Request, *, json: bool, max_depth: int, spool: Any) -> None:
    """Copy the body of an :class:`UploadRoute` request into the file ``spool`` chunk by chunk,
    measuring the depth of a JSON body on the way (``422 input.too_deep`` as soon as it passes
    ``max_depth``); the route's byte limit holds through :class:`LimitedRequest`."""
    meter = DepthMeter() if json else None
    async for chunk in request.stream():
        if meter is not None and meter.feed(chunk) > max_depth:
            raise too_deep(meter.deepest, max_depth)
        spool.write(chunk)
