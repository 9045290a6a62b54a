"""Who may do what: one place, used by the API, the HTML views and the admin.

Visibility decides 404 (you cannot even learn the object exists); the `can_*` functions
decide 403 for objects you can see. Each returns None when allowed, or the reason it is not.
"""

from __future__ import annotations

from django.contrib.auth.models import User

from requests_app.domain.status import Status
from requests_app.models import PeeringRequest

# Kept on the user object for the rest of the request: every check of one page asks again.
_DEPARTMENT_IDS = "_portal_department_ids"
_OWNED_VPC_IDS = "_portal_owned_vpc_ids"


def department_ids(user: User) -> set[int]:
    if not user.is_authenticated:
        return set()
    cached: set[int] | None = getattr(user, _DEPARTMENT_IDS, None)
    if cached is None:
        cached = set(user.departments.values_list("id", flat=True))
        setattr(user, _DEPARTMENT_IDS, cached)
    return cached


def owned_vpc_ids(user: User) -> set[int]:
    if not user.is_authenticated:
        return set()
    cached: set[int] | None = getattr(user, _OWNED_VPC_IDS, None)
    if cached is None:
        cached = set(user.owned_vpcs.values_list("id", flat=True))
        setattr(user, _OWNED_VPC_IDS, cached)
    return cached


def is_admin(user: User) -> bool:
    return bool(user.is_authenticated and user.is_superuser)


def is_approver(user: User) -> bool:
    return bool(owned_vpc_ids(user))


def is_requester_side(user: User, request: PeeringRequest) -> bool:
    return request.department_id in department_ids(user)


def is_accepter_owner(user: User, request: PeeringRequest) -> bool:
    return request.accepter_vpc_id in owned_vpc_ids(user)


def can_view_request(user: User, request: PeeringRequest) -> bool:
    return is_admin(user) or is_requester_side(user, request) or is_accepter_owner(user, request)


def why_not_decide(user: User, request: PeeringRequest) -> str | None:
    """Approve or reject: owners of the accepter VPC only, and never the person who filed it."""
    if request.requested_by_id == user.pk:
        return "you filed this request, so someone else must decide it (separation of duties)"
    if not is_accepter_owner(user, request):
        return f"only the owners of {request.accepter_vpc.label} can decide this request"
    return None


def why_not_cancel(user: User, request: PeeringRequest) -> str | None:
    if not is_requester_side(user, request):
        return f"only members of {request.department.name} can cancel this request"
    return None


def why_not_operate(user: User, request: PeeringRequest) -> str | None:
    """Retry and decommission: the requesting department or the accepter VPC's owners."""
    if is_requester_side(user, request) or is_accepter_owner(user, request):
        return None
    return "only the requesting department or the peer VPC's owners can do this"


def why_not_repair(user: User, request: PeeringRequest) -> str | None:
    if not is_accepter_owner(user, request):
        return f"only the owners of {request.accepter_vpc.label} can repair this peering"
    return None


def allowed_actions(user: User, request: PeeringRequest) -> list[str]:
    """The actions to offer this viewer on this request, in its current state."""
    status = request.status
    actions = []
    if status == Status.PENDING_APPROVAL:
        if why_not_decide(user, request) is None:
            actions += ["approve", "reject"]
        if why_not_cancel(user, request) is None:
            actions.append("cancel")
    if status == Status.FAILED and why_not_operate(user, request) is None:
        actions.append("retry")
    if status == Status.ACTIVE and why_not_operate(user, request) is None:
        actions.append("decommission")
    if status == Status.ACTIVE and request.drift and why_not_repair(user, request) is None:
        actions.append("repair")
    return actions
