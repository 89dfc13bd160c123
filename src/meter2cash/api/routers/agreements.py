"""``/agreements/{number}/terms``: a service agreement's contract terms and load changes."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from meter2cash.api.deps import PlatformDep, SessionDep
from meter2cash.api.errors import responses
from meter2cash.api.limits import LimitedRoute
from meter2cash.api.routers.common import AgreementNumber, length
from meter2cash.api.schemas import Load, SaneDate
from meter2cash.cis.contracts import agreement_by_number, change_load, rebill_affected, terms_of
from meter2cash.cis.models import ContractTerm
from meter2cash.core.timeutil import utcnow

router = APIRouter(tags=["agreements"], route_class=LimitedRoute)


class TermIn(BaseModel):
    """A load change. Loads are decimal strings (``"7.5"``) or integers; floats are refused."""

    model_config = ConfigDict(extra="forbid")
    effective_from: SaneDate
    sanctioned_kw: Load = Field(description="sanctioned load [kW] from effective_from on")
    contract_kva: Load | None = Field(None, description="contract demand [kVA]; default: unchanged")
    reason: str = Field(min_length=1, max_length=2000, pattern=r"\S")
    by: str = Field(
        "api", min_length=1, max_length=length(ContractTerm.created_by), description="who records the change"
    )
    rebill: bool = Field(False, description="cancel and rebill the issued bills the change reaches")


@router.get("/agreements/{number}/terms", responses=responses(404))
def get_terms(
    number: AgreementNumber,
    session: SessionDep,
    platform: PlatformDep,
    on: Annotated[SaneDate | None, Query(description="the day of the load in_effect")] = None,
) -> dict[str, Any]:
    """The agreement's latest load (its columns; a change dated in the future is already
    there), the load ``in_effect`` on a day (``on``, default today in the platform's time
    zone) and its contract terms, oldest first (error ``service_agreement.not_found``)."""
    sa = agreement_by_number(session, number)
    terms = terms_of(session, sa)
    day = on or utcnow().astimezone(platform.settings.tz).date()
    started = [t for t in terms if t.effective_from <= day]
    kw, kva = (started[-1].sanctioned_kw, started[-1].contract_kva) if started else (
        sa.sanctioned_load_kw, sa.contract_demand_kva
    )  # fmt: skip
    return {
        "agreement": sa.number,
        "sanctioned_load_kw": _text(sa.sanctioned_load_kw),
        "contract_demand_kva": _text(sa.contract_demand_kva),
        "in_effect": {
            "on": day.isoformat(),
            "sanctioned_load_kw": _text(kw),
            "contract_demand_kva": _text(kva),
        },
        "terms": [t.to_dict() for t in terms],
    }


def _text(v: Decimal | None) -> str | None:
    return None if v is None else f"{v.normalize():f}"


@router.post("/agreements/{number}/terms", status_code=201, responses=responses(404, 409, 413))
def post_term(
    number: AgreementNumber, body: TermIn, session: SessionDep, platform: PlatformDep
) -> dict[str, Any]:
    """Record a load change (errors ``contract.invalid_load`` 422, ``contract.before_start`` 422,
    ``contract.after_end`` 422, ``contract.duplicate_term`` 409, ``service_agreement.not_found``
    404). ``bills_affected``: issued bills rated under the earlier load; with ``rebill`` they are
    cancelled and billed again (``rebill`` in the answer)."""
    result = change_load(
        session,
        number,
        body.effective_from,
        body.sanctioned_kw,
        body.contract_kva,
        reason=body.reason,
        by=body.by,
    )
    out = result.to_dict()
    if body.rebill and result.bills_affected:
        cfg = platform.settings
        out["rebill"] = rebill_affected(session, result, tz=cfg.timezone, currency=cfg.currency).to_dict()
    return out
