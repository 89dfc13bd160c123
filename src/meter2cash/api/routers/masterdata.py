"""``POST /masterdata``: load a master-data bundle (JSON)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body

from meter2cash.api.deps import SessionDep
from meter2cash.api.errors import responses
from meter2cash.api.limits import BundleRoute
from meter2cash.api.schemas import MasterDataResult
from meter2cash.core.errors import InvalidInput
from meter2cash.integration.masterdata import load_bundle

router = APIRouter(tags=["master data"], route_class=BundleRoute)


@router.post("/masterdata", response_model=MasterDataResult, responses=responses(413))
def post_masterdata(
    bundle: Annotated[dict[str, Any], Body(description="a master-data bundle (see docs/masterdata.md)")],
    session: SessionDep,
) -> dict[str, Any]:
    """Create or update master data. Good records are stored and bad ones listed (200);
    when every record is rejected: 422 ``masterdata.rejected`` with the result in ``data``."""
    result = load_bundle(session, bundle, actor="api")
    if result.rejected and not (result.created or result.updated or result.unchanged):
        raise InvalidInput(
            f"all {result.rejected} records were rejected", code="masterdata.rejected", **result.to_dict()
        )
    return result.to_dict()
