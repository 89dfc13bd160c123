"""The customer class of service points: what the MDM asks the CIS to choose a VEE rule set and a
learned estimator's scope (:data:`meter2cash.mdm.vee.ruleset.store.CustomerClasses`)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from meter2cash.cis.parties.models import Account, ServiceAgreement

_IN = 1000


def service_point_classes(session: Session, service_point_ids: Sequence[int]) -> dict[int, str]:
    """The customer class of the account of each service point's latest agreement (by start date);
    service points without an agreement are left out."""
    ids = list(service_point_ids)
    out: dict[int, str] = {}
    for i in range(0, len(ids), _IN):
        stmt = (
            select(ServiceAgreement.service_point_id, Account.customer_class)
            .join(Account, Account.id == ServiceAgreement.account_id)
            .where(ServiceAgreement.service_point_id.in_(ids[i : i + _IN]))
            .order_by(ServiceAgreement.start_date)
        )
        out.update({sp: cls for sp, cls in session.execute(stmt)})  # the latest agreement wins
    return out
