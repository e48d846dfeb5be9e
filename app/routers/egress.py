"""The tenant's egress allow-list (what its HTTP actions may reach besides public
addresses)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from app.auth import Principal
from app.deps import SessionDep, require
from app.schemas import EgressRulesPublic, EgressRulesWrite
from projections import egress
from tempoflow.egress import check_entry, normalize_entry
from tempoflow.errors import Unprocessable

router = APIRouter(prefix="/v1/egress-rules", tags=["egress"])

Admin = Annotated[Principal, Depends(require())]


@router.get("", response_model=EgressRulesPublic)
async def read_egress_rules(principal: Admin, session: SessionDep) -> EgressRulesPublic:
    """The tenant's allow-list (empty until set)."""
    allow, updated = await egress.get_allow_list(session, principal.tenant)
    return EgressRulesPublic(allow=allow, updated_at=updated)


@router.put("", response_model=EgressRulesPublic)
async def put_egress_rules(
    body: EgressRulesWrite, principal: Admin, session: SessionDep
) -> EgressRulesPublic:
    """Replace the tenant's allow-list. Workers apply it within
    ``TEMPOFLOW_EGRESS_RULES_CACHE_SECONDS``."""
    errors = [
        {"path": f"/allow/{i}", "code": "egress_rule.invalid", "message": reason}
        for i, entry in enumerate(body.allow)
        if (reason := check_entry(entry)) is not None
    ]
    if errors:
        raise Unprocessable(
            f"the allow-list has {len(errors)} invalid entr{'y' if len(errors) == 1 else 'ies'}",
            code="egress_rules_invalid",
            errors=errors,
            hint='entries are host names ("billing.internal", "*.corp.example"), addresses '
            'or CIDR networks with no host bits set ("10.1.2.0/24")',
        )
    allow = list(dict.fromkeys(normalize_entry(entry) for entry in body.allow))
    updated = await egress.put_allow_list(session, principal.tenant, allow)
    await session.commit()
    return EgressRulesPublic(allow=allow, updated_at=updated)
