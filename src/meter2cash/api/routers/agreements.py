"""``/agreements/{number}/…``: a service agreement's contract terms and their dated changes
(load, tariff, payment mode)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from meter2cash.api.deps import PlatformDep, SessionDep
from meter2cash.api.errors import responses
from meter2cash.api.limits import LimitedRoute
from meter2cash.api.routers.common import AgreementNumber, length
from meter2cash.api.schemas import Load, SaneDate
from meter2cash.cis.contracts.changes import (
    agreement_by_number,
    change_load,
    change_tariff,
    rebill_affected,
    terms_of,
)
from meter2cash.cis.contracts.payment_mode import change_payment_mode
from meter2cash.cis.parties.models import ContractTerm, ServiceAgreement
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
    kw, kva, mode, tariff = (
        (
            started[-1].sanctioned_kw,
            started[-1].contract_kva,
            started[-1].payment_mode,
            started[-1].tariff_code,
        )
        if started
        else (sa.sanctioned_load_kw, sa.contract_demand_kva, sa.payment_mode, sa.tariff_code)
    )
    return {
        "agreement": sa.number,
        "sanctioned_load_kw": _text(sa.sanctioned_load_kw),
        "contract_demand_kva": _text(sa.contract_demand_kva),
        "payment_mode": sa.payment_mode,
        "tariff_code": sa.tariff_code,
        "in_effect": {
            "on": day.isoformat(),
            "sanctioned_load_kw": _text(kw),
            "contract_demand_kva": _text(kva),
            "payment_mode": mode,
            "tariff_code": tariff,
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
        out["rebill"] = rebill_affected(
            session, result, tz=cfg.timezone, currency=cfg.currency, usage=platform.usage
        ).to_dict()
    return out


class TariffChangeIn(BaseModel):
    """A tariff change from a date on (also in the future)."""

    model_config = ConfigDict(extra="forbid")
    effective_from: SaneDate
    tariff_code: str = Field(min_length=1, max_length=length(ServiceAgreement.tariff_code), pattern=r"^\S+$")
    reason: str = Field(min_length=1, max_length=2000, pattern=r"\S")
    by: str = Field(
        "api", min_length=1, max_length=length(ContractTerm.created_by), description="who records the change"
    )
    rebill: bool = Field(False, description="cancel and rebill the issued bills the change reaches")


@router.post("/agreements/{number}/tariff", status_code=201, responses=responses(404, 409, 413))
def post_tariff(
    number: AgreementNumber, body: TariffChangeIn, session: SessionDep, platform: PlatformDep
) -> dict[str, Any]:
    """Put the agreement on another tariff from a date on (errors ``contract.unknown_tariff``
    422, ``contract.unchanged`` 409, ``contract.before_start`` / ``contract.after_end`` 422,
    ``service_agreement.not_found`` 404). ``bills_affected``: issued bills rated under the earlier
    tariff; with ``rebill`` they are cancelled and billed again."""
    result = change_tariff(
        session, number, body.effective_from, body.tariff_code, reason=body.reason, by=body.by
    )
    out = result.to_dict() | {"previous_tariff_code": result.previous["tariff_code"]}
    if body.rebill and result.bills_affected:
        cfg = platform.settings
        rebilled = rebill_affected(
            session, result, tz=cfg.timezone, currency=cfg.currency, usage=platform.usage, what="tariff"
        )
        out["rebill"] = rebilled.to_dict()
    return out


class ModeChangeIn(BaseModel):
    """A payment-mode change from a date on (today at the latest: it settles balances at once)."""

    model_config = ConfigDict(extra="forbid")
    effective_from: SaneDate
    to: Literal["prepaid", "postpaid"] = Field(description="the new payment mode")
    reason: str = Field(min_length=1, max_length=2000, pattern=r"\S")
    by: str = Field(
        "api", min_length=1, max_length=length(ContractTerm.created_by), description="who records the change"
    )


@router.post("/agreements/{number}/payment-mode", status_code=201, responses=responses(404, 409, 413))
def post_payment_mode(
    number: AgreementNumber, body: ModeChangeIn, session: SessionDep, platform: PlatformDep
) -> dict[str, Any]:
    """Switch the agreement between prepaid and postpaid from a date on: the term is recorded,
    issued bills of periods reaching the date are cancelled and billed again, and the balance
    moves into the new mode (``settled``: positive a credit, negative a debt). Errors
    ``contract.mode_change_in_future`` 422, ``contract.mode_change_too_early`` 422,
    ``contract.mode_change_charged`` 409, ``contract.unchanged`` 409,
    ``service_agreement.not_found`` 404."""
    cfg = platform.settings
    today = utcnow().astimezone(cfg.tz).date()
    done = change_payment_mode(
        session, number, body.effective_from, body.to, reason=body.reason, by=body.by, today=today,
        tz=cfg.timezone, currency=cfg.currency, usage=platform.usage,
    )  # fmt: skip
    return done.to_dict()
