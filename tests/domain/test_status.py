"""Example-based tests of the request lifecycle (requests_app/domain/status.py): the transition table."""

import itertools

import pytest

from requests_app.domain.status import (
    TRANSITIONS,
    InvalidTransition,
    Status,
    check_transition,
)

# --- status lifecycle -----------------------------------------------------------------

TERMINAL = {Status.REJECTED, Status.CANCELLED, Status.EXPIRED, Status.DECOMMISSIONED}


@pytest.mark.parametrize(("current", "target"), list(itertools.product(Status, Status)), ids=lambda s: str(s))
def test_check_transition_allows_exactly_the_table(current, target):
    if target in TRANSITIONS[current]:
        check_transition(str(current), str(target))
    else:
        with pytest.raises(InvalidTransition) as raised:
            check_transition(str(current), str(target))
        assert raised.value.current == str(current)
        assert raised.value.target == str(target)


def test_every_status_has_a_row_in_the_table():
    assert set(TRANSITIONS) == set(Status)


@pytest.mark.parametrize("terminal", sorted(TERMINAL))
def test_terminal_states_have_no_way_out(terminal):
    assert TRANSITIONS[terminal] == frozenset()
    for target in Status:
        with pytest.raises(InvalidTransition):
            check_transition(terminal, target)


def test_terminal_states_are_exactly_the_empty_rows():
    assert {s for s, targets in TRANSITIONS.items() if not targets} == TERMINAL


def test_no_status_transitions_to_itself():
    for status in Status:
        with pytest.raises(InvalidTransition):
            check_transition(status, status)


def test_the_lifecycle_follows_the_documented_path():
    path = [
        Status.PENDING_APPROVAL,
        Status.APPROVED,
        Status.PROVISIONING,
        Status.ACTIVE,
        Status.DECOMMISSIONING,
        Status.DECOMMISSIONED,
    ]
    for current, target in itertools.pairwise(path):
        check_transition(current, target)


def test_every_status_is_reachable_and_every_non_terminal_can_finish():
    reachable = {Status.PENDING_APPROVAL}
    frontier = [Status.PENDING_APPROVAL]
    while frontier:
        for target in TRANSITIONS[frontier.pop()]:
            if target not in reachable:
                reachable.add(target)
                frontier.append(target)
    assert reachable == set(Status)

    def can_finish(status, seen=frozenset()):
        if status in TERMINAL:
            return True
        return any(can_finish(t, seen | {status}) for t in TRANSITIONS[status] - seen)

    assert all(can_finish(status) for status in Status)


def test_unknown_status_is_rejected():
    with pytest.raises(ValueError, match="teleported"):
        check_transition("pending_approval", "teleported")
