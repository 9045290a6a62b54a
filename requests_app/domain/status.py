"""The request lifecycle as a table, checked in one place."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    PROVISIONING = "provisioning"
    ACTIVE = "active"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    FAILED = "failed"
    DECOMMISSIONING = "decommissioning"
    DECOMMISSIONED = "decommissioned"

    @property
    def label(self) -> str:
        """For people: `pending approval`, as the pages show it."""
        return self.value.replace("_", " ")


TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.PENDING_APPROVAL: frozenset({Status.APPROVED, Status.REJECTED, Status.CANCELLED, Status.EXPIRED}),
    Status.APPROVED: frozenset({Status.PROVISIONING, Status.FAILED}),
    Status.PROVISIONING: frozenset({Status.ACTIVE, Status.FAILED}),
    Status.ACTIVE: frozenset({Status.DECOMMISSIONING}),
    # Retry goes back to the step that failed: provisioning restarts from `approved`, a failed
    # teardown from `decommissioning`.
    Status.FAILED: frozenset({Status.APPROVED, Status.DECOMMISSIONING}),
    Status.DECOMMISSIONING: frozenset({Status.DECOMMISSIONED, Status.FAILED}),
    Status.REJECTED: frozenset(),
    Status.CANCELLED: frozenset(),
    Status.EXPIRED: frozenset(),
    Status.DECOMMISSIONED: frozenset(),
}

# A request in one of these states holds (or is about to hold) the one peering its VPC pair
# may have, so a new request for the same pair in either direction is refused.
LIVE_STATUSES: frozenset[Status] = frozenset(
    {
        Status.PENDING_APPROVAL,
        Status.APPROVED,
        Status.PROVISIONING,
        Status.ACTIVE,
        Status.DECOMMISSIONING,
    }
)
# States in which a worker owns the request and makes progress on it.
WORK_IN_FLIGHT: frozenset[Status] = frozenset({Status.APPROVED, Status.PROVISIONING, Status.DECOMMISSIONING})


class Action(StrEnum):
    """What a person can do to a request (the API's actions and the page's buttons)."""

    APPROVE = "approve"
    REJECT = "reject"
    CANCEL = "cancel"
    RETRY = "retry"
    DECOMMISSION = "decommission"
    REPAIR = "repair"


# The state each action starts from, as the contract promises. The work's own moves (approved
# -> provisioning -> active, decommissioning -> decommissioned, and failures) are in TRANSITIONS
# only: `failed -> decommissioning` is there for a retry of a failed teardown, which is not a
# decommission a person may ask for on a failed request.
ACTION_FROM: dict[Action, frozenset[Status]] = {
    Action.APPROVE: frozenset({Status.PENDING_APPROVAL}),
    Action.REJECT: frozenset({Status.PENDING_APPROVAL}),
    Action.CANCEL: frozenset({Status.PENDING_APPROVAL}),
    Action.RETRY: frozenset({Status.FAILED}),
    Action.DECOMMISSION: frozenset({Status.ACTIVE}),
    Action.REPAIR: frozenset({Status.ACTIVE}),
}
_NOT_FROM = {
    Action.APPROVE: "a request that is {status} cannot be approved",
    Action.REJECT: "a request that is {status} cannot be rejected",
    Action.CANCEL: "a request that is {status} cannot be cancelled; only one pending approval can",
    Action.RETRY: "only a failed request can be retried; this one is {status}",
    Action.DECOMMISSION: "only an active peering can be decommissioned; this one is {status}",
    Action.REPAIR: "only an active peering can be repaired; this one is {status}",
}


class ActionNotAllowed(Exception):
    def __init__(self, action: Action, status: str) -> None:
        self.action = action
        self.status = status
        super().__init__(_NOT_FROM[action].format(status=status))


def check_action(action: Action, status: str) -> None:
    if Status(status) not in ACTION_FROM[action]:
        raise ActionNotAllowed(action, status)


class InvalidTransition(Exception):
    def __init__(self, current: str, target: str) -> None:
        self.current = current
        self.target = target
        super().__init__(f"a request that is {current} cannot become {target}")


def check_transition(current: str, target: str) -> None:
    if Status(target) not in TRANSITIONS[Status(current)]:
        raise InvalidTransition(current, target)
