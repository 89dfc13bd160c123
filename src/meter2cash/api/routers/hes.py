"""``/hes``: the head-end interface over REST (docs/hes.md#transports).

``POST /hes/messages`` takes one head-end message (JSON, or CIM XML) and answers with its reply
(CIM XML for an XML message); ``GET /hes/commands`` hands the head-end the commands due, marking
them sent.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from meter2cash.api.deps import PlatformDep, RawBody, SessionDep
from meter2cash.api.errors import UnsupportedMediaType, responses
from meter2cash.api.limits import LimitedRoute
from meter2cash.integration.hes_commands import pull_commands
from meter2cash.integration.hes_gateway import handle, handle_cim, is_xml


class HesRoute(LimitedRoute):
    """Head-end messages may be as large as a reading file."""

    limit = "max_upload_bytes"


router = APIRouter(prefix="/hes", tags=["hes"], route_class=HesRoute)

JSON_TYPES = ("application/json",)
XML_TYPES = ("application/xml", "text/xml")
BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "one head-end message (docs/hes.md#messages): JSON, or a CIM XML message",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/xml": {"schema": {"type": "string"}},
        },
    }
}
REPLY_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the reply: OK, PARTIAL (the items refused, each with its field) or FAILED",
        "content": {"application/json": {"schema": {"type": "object"}}, "application/xml": {}},
    }
}


@router.post("/messages", openapi_extra=BODY_DOC, responses={**REPLY_DOC, **responses(413, 415)})
def post_message(request: Request, session: SessionDep, platform: PlatformDep, body: RawBody) -> Response:
    """Apply a message from the head-end; 200 with the reply (a message seen before gets its
    first reply again and changes nothing); 415 for other media types."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in JSON_TYPES + XML_TYPES:
        raise UnsupportedMediaType(
            f"send application/json or application/xml, not {media or 'no content type'}"
        )
    hes, at = platform.settings.hes_name, platform.clock()
    if media in XML_TYPES or is_xml(body):
        _, xml = handle_cim(session, body, received_at=at, hes=hes)
        return Response(xml, media_type="application/xml")
    reply = handle(session, body, received_at=at, hes=hes)
    return JSONResponse(reply.model_dump(mode="json", exclude_none=True))


@router.get("/commands", response_model=list[dict[str, Any]])
def get_commands(
    session: SessionDep, platform: PlatformDep, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> list[dict[str, Any]]:
    """The commands due now for the head-end (command messages, oldest first), marked sent: a
    command not answered in time is offered again as its next attempt."""
    out = pull_commands(session, platform.clock(), limit)
    session.commit()
    return [m.model_dump(mode="json", exclude_none=True) for m in out]
