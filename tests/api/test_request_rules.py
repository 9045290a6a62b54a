"""The API's refusals and permissions, end to end through HTTP.

Every refusal must leave AWS untouched and, where it refuses to file a request, must create no
PeeringRequest row. Nothing here reaches provisioning: a request pending approval never touches AWS.
So the world is the demo world from rows (`demo_rows`), with AWS unreachable: "untouched" is
checked as "not a single AWS call was made" (`world.aws.assert_untouched()`), which no change in
AWS could get past. The one test that needs a VPC made in AWS (and synced) runs on the sandbox and
compares the sandbox before and after.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection

from requests_app.core import errors
from requests_app.inventory import sync
from requests_app.models import AuditEvent, AwsAccount, PeeringRequest, Vpc
from requests_app.peering import services as peering_services
from tests.fixtures.sandbox import ec2_as, sandbox_snapshot
from tests.fixtures.world import DemoWorld, NoAws

pytestmark = pytest.mark.django_db

URL = "/api/v1/peering-requests/"
PREFLIGHT_URL = f"{URL}preflight/"


# --- helpers -------------------------------------------------------------------------------------
def _vpc_id(vpc: Any) -> str:
    return vpc if isinstance(vpc, str) else vpc.vpc_id


def _body(requester: Any, accepter: Any, **extra: Any) -> dict[str, Any]:
    """A create/preflight body; `requester` and `accepter` are Vpc rows or raw VPC ids."""
    return {
        "requester_vpc": _vpc_id(requester),
        "accepter_vpc": _vpc_id(accepter),
        "justification": "the app needs the shared directory and logging",
        **extra,
    }


def _file(api: Any, username: str, requester: Any, accepter: Any, **extra: Any) -> dict[str, Any]:
    response = api(username).post(URL, _body(requester, accepter, **extra), format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["status"] == "pending_approval"
    return response.json()


def _act(api: Any, username: str | None, request_id: str, action: str, comment: str | None = None) -> Any:
    payload = {} if comment is None else {"comment": comment}
    return api(username).post(f"{URL}{request_id}/{action}/", payload, format="json")


def _errors(response: Any) -> list[dict[str, Any]]:
    """The API's error shape, checked; returns the list of errors."""
    assert response["Content-Type"].startswith("application/json"), response.content[:200]
    body = response.json()
    assert body["type"] in {"validation_error", "client_error"}, body
    assert body["errors"], body
    for error in body["errors"]:
        assert set(error) >= {"code", "detail", "attr"}, error
    return body["errors"]


def _error(response: Any, code: str) -> dict[str, Any]:
    """The one error with `code` (others may accompany it)."""
    found = [e for e in _errors(response) if e["code"] == code]
    assert len(found) == 1, response.json()
    return found[0]


def _status(request_id: str) -> str:
    return PeeringRequest.objects.get(pk=request_id).status


def _assert_sandbox_untouched(before: dict[str, Any]) -> None:
    after = sandbox_snapshot()
    assert after == before
    assert after["peerings"] == {}


@dataclass(frozen=True)
class RulesWorld:
    """The demo world from rows, and AWS as it leaves it: unreachable, every call recorded."""

    users: dict[str, User]
    vpcs: dict[str, Vpc]
    aws: NoAws


@pytest.fixture
def world(demo_rows: DemoWorld, no_aws: NoAws) -> RulesWorld:
    """The demo world from rows; no AWS call may be made (see the module's docstring)."""
    assert PeeringRequest.objects.count() == 0
    return RulesWorld(users=demo_rows.users, vpcs=demo_rows.vpcs, aws=no_aws)


# --- pre-flight rules enforced on create --------------------------------------------------------
def test_overlap_through_a_secondary_cidr_block_is_refused(demo_world: DemoWorld, api: Any) -> None:
    ec2 = ec2_as("111111111111", "us-east-1")
    vpc_id = ec2.create_vpc(CidrBlock="10.11.0.0/16")["Vpc"]["VpcId"]
    ec2.create_tags(Resources=[vpc_id], Tags=[{"Key": "Name", "Value": "services-extra"}])
    sync.sync_account(AwsAccount.objects.get(account_id="111111111111"))
    extra = Vpc.objects.get(vpc_id=vpc_id)
    assert extra.name == "services-extra"
    extra.is_services_vpc = True
    extra.save(update_fields=["is_services_vpc"])
    extra.owners.add(demo_world.users["nina"])
    finance = demo_world.vpcs["finance-app"]
    # The primary blocks do not overlap; only finance-app's secondary block does.
    assert finance.cidr_list()[0] == "10.1.0.0/16"
    assert "10.11.0.0/16" in finance.cidr_list()
    before = sandbox_snapshot()

    response = api("fiona").post(URL, _body(finance, extra), format="json")

    assert response.status_code == 400
    error = _error(response, "cidr_overlap")
    assert "10.11.0.0/16" in error["detail"]
    assert "services-extra" in error["detail"]
    assert "10.1.0.0/16 of" not in error["detail"]  # the primary block is not blamed
    assert PeeringRequest.objects.count() == 0
    _assert_sandbox_untouched(before)


def test_overlapping_vpcs_are_refused(world: RulesWorld, api: Any) -> None:
    vpcs = world.vpcs
    response = api("erin").post(URL, _body(vpcs["eng-sandbox"], vpcs["services-use1"]), format="json")

    assert response.status_code == 400
    assert response.json()["type"] == "validation_error"
    error = _error(response, "cidr_overlap")
    assert "10.0.128.0/20" in error["detail"]
    assert "10.0.0.0/16" in error["detail"]
    assert "eng-sandbox" in error["detail"] and "services-use1" in error["detail"]
    # The full check list comes back too, so a client can show what passed.
    statuses = {c["code"]: c["status"] for c in response.json()["checks"]}
    assert statuses["vpc_ownership"] == "pass" and statuses["cidr_overlap"] == "fail"
    assert PeeringRequest.objects.count() == 0
    world.aws.assert_untouched()


def test_duplicate_peering_is_refused_in_either_direction(world: RulesWorld, api: Any) -> None:
    finance, services_vpc = world.vpcs["finance-app"], world.vpcs["services-use1"]
    first = _file(api, "fiona", finance, services_vpc)

    again = api("fiona").post(URL, _body(finance, services_vpc), format="json")
    assert again.status_code == 400
    error = _error(again, "duplicate_peering")
    assert first["id"] in error["detail"]
    assert "services-use1" in error["detail"] and "finance-app" in error["detail"]
    assert "the same direction" in error["detail"]

    # nina is in platform, so services-use1 is hers to file from; finance-app gets an owner so it
    # is a peer she may see and request (without one it is not found for her, see below).
    finance.owners.add(world.users["fiona"])
    reverse = api("nina").post(URL, _body(services_vpc, finance), format="json")
    assert reverse.status_code == 400
    error = _error(reverse, "duplicate_peering")
    assert first["id"] in error["detail"]
    assert "the opposite direction" in error["detail"]

    assert [str(pk) for pk in PeeringRequest.objects.values_list("pk", flat=True)] == [first["id"]]
    assert _status(first["id"]) == "pending_approval"
    world.aws.assert_untouched()


# An unknown requester VPC is answered exactly as another department's VPC is (not_your_vpc, see
# test_another_departments_vpc_and_an_unknown_one_get_the_same_answer), so ids cannot be probed.
@pytest.mark.parametrize(("side", "code"), [("requester_vpc", "not_your_vpc"), ("accepter_vpc", "vpc_not_found")])
def test_unknown_vpc_is_refused(world: RulesWorld, api: Any, side: str, code: str) -> None:
    ids = {"requester_vpc": world.vpcs["finance-app"].vpc_id, "accepter_vpc": world.vpcs["services-use1"].vpc_id}
    ids[side] = "vpc-doesnotexist"

    response = api("fiona").post(URL, _body(ids["requester_vpc"], ids["accepter_vpc"]), format="json")

    assert response.status_code == 400
    error = _error(response, code)
    assert error["attr"] == side
    assert "vpc-doesnotexist" in error["detail"]
    assert PeeringRequest.objects.count() == 0
    world.aws.assert_untouched()


def test_another_departments_vpc_cannot_be_the_requester(world: RulesWorld, api: Any) -> None:
    hr = world.vpcs["hr-portal"]
    response = api("fiona").post(URL, _body(hr, world.vpcs["services-use1"]), format="json")

    assert response.status_code == 400
    error = _error(response, "not_your_vpc")
    assert error["attr"] == "requester_vpc"
    # It names the VPC id the caller sent, and reveals nothing about another department's VPC.
    assert hr.vpc_id in error["detail"] and "department" in error["detail"]
    assert "hr-portal" not in error["detail"] and "333333333333" not in error["detail"]
    assert PeeringRequest.objects.count() == 0
    world.aws.assert_untouched()


def test_another_departments_vpc_and_an_unknown_one_get_the_same_answer(world: RulesWorld, api: Any) -> None:
    """Pre-flight must not tell apart a VPC of another department from one that does not exist."""
    hub = world.vpcs["services-use1"]
    real, made_up = world.vpcs["hr-portal"].vpc_id, "vpc-0f0f0f0f0f0f0f0f0"

    def answer(vpc_id: str) -> Any:
        body = api("fiona").post(f"{URL}preflight/", _body(vpc_id, hub.vpc_id), format="json").json()
        return [(c["code"], c["status"], c["attr"], c["detail"].replace(vpc_id, "<id>")) for c in body["checks"]]

    assert (
        answer(real)
        == answer(made_up)
        == [("not_your_vpc", "fail", "requester_vpc", "<id> is not one of your department's VPCs")]
    )


def test_a_vpc_cannot_peer_with_itself(world: RulesWorld, api: Any) -> None:
    finance = world.vpcs["finance-app"]
    response = api("fiona").post(URL, _body(finance, finance), format="json")

    assert response.status_code == 400
    error = _error(response, "same_vpc")
    assert "finance-app" in error["detail"]
    assert PeeringRequest.objects.count() == 0
    world.aws.assert_untouched()


@pytest.mark.parametrize("justification", [None, "", "   \n\t "])
def test_justification_is_required_and_not_blank(world: RulesWorld, api: Any, justification: str | None) -> None:
    body = _body(world.vpcs["finance-app"], world.vpcs["services-use1"])
    if justification is None:
        del body["justification"]
    else:
        body["justification"] = justification

    response = api("fiona").post(URL, body, format="json")

    assert response.status_code == 400
    assert response.json()["type"] == "validation_error"
    assert [e["attr"] for e in _errors(response)] == ["justification"]
    assert PeeringRequest.objects.count() == 0
    world.aws.assert_untouched()


def test_malformed_json_gets_a_json_error_not_html(world: RulesWorld, api: Any) -> None:
    response = api("fiona").post(URL, data='{"requester_vpc": ', content_type="application/json")

    assert response.status_code == 400
    assert response.json()["type"] in {"validation_error", "client_error"}
    assert [e["code"] for e in _errors(response)] == ["parse_error"]
    assert b"<html" not in response.content.lower()
    assert PeeringRequest.objects.count() == 0
    world.aws.assert_untouched()


# --- deciding: approve and reject ---------------------------------------------------------------
def test_the_filer_cannot_approve_their_own_request(world: RulesWorld, api: Any) -> None:
    # sam is in finance AND owns services-use1: allowed to file, never to approve what he filed.
    filed = _file(api, "sam", world.vpcs["finance-app"], world.vpcs["services-use1"])

    response = _act(api, "sam", filed["id"], "approve", "looks fine to me")

    assert response.status_code == 403
    assert response.json()["type"] == "client_error"
    _error(response, "self_approval")
    assert _status(filed["id"]) == "pending_approval"
    assert not AuditEvent.objects.filter(action="request.approved").exists()
    world.aws.assert_untouched()


def test_only_owners_of_the_accepter_can_approve(world: RulesWorld, api: Any) -> None:
    vpcs = world.vpcs
    by_fiona = _file(api, "fiona", vpcs["finance-app"], vpcs["services-use1"])
    by_sam = _file(api, "sam", vpcs["finance-app"], vpcs["services-euw1"])

    for outsider in ("harry", "erin"):  # cannot even see it
        response = _act(api, outsider, by_fiona["id"], "approve", "ok")
        assert response.status_code == 404, outsider
        _error(response, "not_found")

    # fiona is a finance member but owns nothing: she can see sam's request, not decide it.
    response = _act(api, "fiona", by_sam["id"], "approve", "ok")
    assert response.status_code == 403
    error = _error(response, "permission_denied")
    assert "services-euw1" in error["detail"]

    assert _status(by_fiona["id"]) == _status(by_sam["id"]) == "pending_approval"
    assert not AuditEvent.objects.filter(action="request.approved").exists()
    world.aws.assert_untouched()


def test_reject_needs_a_comment_and_a_rejected_request_cannot_be_approved(world: RulesWorld, api: Any) -> None:
    filed = _file(api, "fiona", world.vpcs["finance-app"], world.vpcs["services-use1"])

    for blank in (None, "", "   "):
        response = _act(api, "nina", filed["id"], "reject", blank)
        assert response.status_code == 400, blank
        assert _error(response, "comment_required")["attr"] == "comment"
    assert _status(filed["id"]) == "pending_approval"

    rejected = _act(api, "nina", filed["id"], "reject", "use the transit gateway instead")
    assert rejected.status_code == 200, rejected.json()
    assert rejected.json()["status"] == "rejected"
    assert rejected.json()["decided_by"] == "nina"
    assert rejected.json()["decision_comment"] == "use the transit gateway instead"

    approved = _act(api, "nina", filed["id"], "approve", "changed my mind")
    assert approved.status_code == 409
    _error(approved, "invalid_transition")
    assert _status(filed["id"]) == "rejected"
    assert not AuditEvent.objects.filter(action="request.approved").exists()
    world.aws.assert_untouched()


# --- cancelling ---------------------------------------------------------------------------------
def test_only_the_requesting_department_can_cancel_and_only_once(world: RulesWorld, api: Any) -> None:
    filed = _file(api, "fiona", world.vpcs["finance-app"], world.vpcs["services-use1"])

    hidden = _act(api, "harry", filed["id"], "cancel")
    assert hidden.status_code == 404
    _error(hidden, "not_found")

    owner = _act(api, "nina", filed["id"], "cancel")  # owns the accepter, but is not in finance
    assert owner.status_code == 403
    assert "Finance" in _error(owner, "permission_denied")["detail"]
    assert _status(filed["id"]) == "pending_approval"

    cancelled = _act(api, "fiona", filed["id"], "cancel", "no longer needed")
    assert cancelled.status_code == 200, cancelled.json()
    assert cancelled.json()["status"] == "cancelled"

    again = _act(api, "fiona", filed["id"], "cancel")
    assert again.status_code == 409
    _error(again, "invalid_transition")
    assert _status(filed["id"]) == "cancelled"
    assert AuditEvent.objects.filter(action="request.cancelled", request_id=filed["id"]).count() == 1
    world.aws.assert_untouched()


# --- who sees what ------------------------------------------------------------------------------
def test_requests_are_visible_to_the_department_and_the_accepter_owners_only(world: RulesWorld, api: Any) -> None:
    filed = _file(api, "fiona", world.vpcs["finance-app"], world.vpcs["services-use1"])
    detail = f"{URL}{filed['id']}/"

    for viewer in ("fiona", "sam", "nina", "admin"):
        response = api(viewer).get(detail)
        assert response.status_code == 200, viewer
        assert response.json()["id"] == filed["id"]
    for outsider in ("harry", "erin"):
        response = api(outsider).get(detail)
        assert response.status_code == 404, outsider
        _error(response, "not_found")
        assert api(outsider).get(f"{detail}events/").status_code == 404

    assert filed["id"] in [r["id"] for r in api("nina").get(URL).json()["results"]]
    harry_list = api("harry").get(URL)
    assert harry_list.status_code == 200
    assert filed["id"] not in [r["id"] for r in harry_list.json()["results"]]
    assert harry_list.json()["count"] == 0

    anonymous = api(None).get(detail)
    assert anonymous.status_code in {401, 403}
    assert _errors(anonymous)[0]["code"] == "not_authenticated"
    anonymous_list = api(None).get(URL)
    assert anonymous_list.status_code in {401, 403}
    assert "results" not in anonymous_list.json()

    not_a_uuid = api("fiona").get(f"{URL}not-a-uuid/")
    assert not_a_uuid.status_code == 404
    _error(not_a_uuid, "not_found")
    world.aws.assert_untouched()


# --- preflight ----------------------------------------------------------------------------------
def test_preflight_reports_failures_and_the_plan_and_creates_nothing(world: RulesWorld, api: Any) -> None:
    vpcs = world.vpcs

    refused = api("erin").post(PREFLIGHT_URL, _body(vpcs["eng-sandbox"], vpcs["services-use1"]), format="json")
    assert refused.status_code == 200, refused.json()
    assert refused.json()["ok"] is False
    overlap = [c for c in refused.json()["checks"] if c["code"] == "cidr_overlap"]
    assert len(overlap) == 1 and overlap[0]["status"] == "fail"
    assert "10.0.128.0/20" in overlap[0]["detail"]

    finance, services_vpc = vpcs["finance-app"], vpcs["services-use1"]
    assert finance.route_tables.count() == 1 and services_vpc.route_tables.count() == 2
    fine = api("fiona").post(PREFLIGHT_URL, _body(finance, services_vpc, justification=""), format="json")
    assert fine.status_code == 200, fine.json()
    assert fine.json()["ok"] is True
    assert all(c["status"] != "fail" for c in fine.json()["checks"])
    plan = fine.json()["plan"]
    assert plan[0]["operation"] == "CreateVpcPeeringConnection"
    assert plan[0]["account_id"] == "222222222222"
    routes = [step for step in plan if step["operation"] == "CreateRoute"]
    # finance-app: 1 table x services' 1 CIDR; services-use1: 2 tables x finance's 2 CIDRs.
    assert len(routes) == 1 * 1 + 2 * 2
    assert sum(1 for r in routes if r["account_id"] == "222222222222" and "10.0.0.0/16" in r["detail"]) == 1
    for cidr in ("10.1.0.0/16", "10.11.0.0/16"):
        assert sum(1 for r in routes if r["account_id"] == "111111111111" and cidr in r["detail"]) == 2

    assert PeeringRequest.objects.count() == 0
    assert not AuditEvent.objects.filter(action="request.submitted").exists()
    world.aws.assert_untouched()


# --- Idempotency-Key ----------------------------------------------------------------------------
def test_idempotency_key_replays_the_first_answer_per_user(world: RulesWorld, api: Any) -> None:
    vpcs = world.vpcs
    body = _body(vpcs["finance-app"], vpcs["services-use1"])
    fiona = api("fiona")

    first = fiona.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    second = fiona.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert first.status_code == 201, first.json()
    assert second.status_code == 201, second.json()
    assert second.json()["id"] == first.json()["id"]
    assert second["Idempotent-Replayed"] == "true"
    assert PeeringRequest.objects.count() == 1

    changed = fiona.post(URL, {**body, "justification": "something else"}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert changed.status_code == 422
    assert _error(changed, "idempotency_key_reused")["attr"] == "Idempotency-Key"
    assert PeeringRequest.objects.count() == 1

    # The key belongs to fiona: sam's "k1" is a new key, so his different request is filed.
    by_sam = api("sam").post(
        URL, _body(vpcs["finance-app"], vpcs["services-euw1"]), format="json", HTTP_IDEMPOTENCY_KEY="k1"
    )
    assert by_sam.status_code == 201, by_sam.json()
    assert by_sam.json()["id"] != first.json()["id"]
    assert by_sam.json()["requested_by"] == "sam"
    assert PeeringRequest.objects.count() == 2
    assert AuditEvent.objects.filter(action="request.submitted").count() == 2
    world.aws.assert_untouched()


# --- two approvers at once ----------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_approvals_only_one_wins(demo_rows: DemoWorld, api: Any) -> None:
    users = demo_rows.users
    filed = _file(api, "fiona", demo_rows.vpcs["finance-app"], demo_rows.vpcs["services-use1"])
    barrier = threading.Barrier(2)
    outcomes: dict[str, Any] = {}

    def approve(username: str) -> None:
        try:
            barrier.wait(timeout=30)
            outcomes[username] = peering_services.peering_request_approve(
                actor=users[username], request_id=filed["id"], comment=""
            )
        except Exception as exc:
            outcomes[username] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=approve, args=(name,)) for name in ("nina", "sam")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)

    winners = [name for name, result in outcomes.items() if isinstance(result, PeeringRequest)]
    losers = [result for result in outcomes.values() if not isinstance(result, PeeringRequest)]
    assert len(winners) == 1, outcomes
    assert len(losers) == 1, outcomes
    assert isinstance(losers[0], errors.PortalError), repr(losers[0])
    assert losers[0].code == "invalid_transition"
    assert losers[0].status == 409

    stored = PeeringRequest.objects.get(pk=filed["id"])
    assert stored.status == "approved"
    assert stored.decided_by.username == winners[0]
    approvals = AuditEvent.objects.filter(action="request.approved", request_id=filed["id"])
    assert approvals.count() == 1
    assert approvals.get().actor_label == winners[0]


def test_preflight_reveals_nothing_about_vpcs_the_caller_cannot_see(world: RulesWorld, api: Any) -> None:
    """harry (hr) may not see finance's VPC in /vpcs/, so pre-flight must not describe it either."""
    vpcs = world.vpcs
    harry = api("harry")
    assert harry.get(f"/api/v1/vpcs/{vpcs['finance-app'].vpc_id}/").status_code == 404

    as_requester = harry.post(
        f"{URL}preflight/", _body(vpcs["finance-app"], vpcs["services-use1"]), format="json"
    ).json()
    assert [(c["code"], c["status"]) for c in as_requester["checks"]] == [("not_your_vpc", "fail")]
    assert "finance-app" not in str(as_requester) and "10.1.0.0/16" not in str(as_requester)
    assert as_requester["plan"] == []

    as_peer = harry.post(f"{URL}preflight/", _body(vpcs["hr-portal"], vpcs["finance-app"]), format="json").json()
    assert [c["code"] for c in as_peer["checks"] if c["status"] == "fail"] == ["vpc_not_found"]
    assert "finance-app" not in str(as_peer) and "10.1.0.0/16" not in str(as_peer)

    # A transitive route into a VPC harry cannot see is refused without naming that VPC.
    transit = harry.post(
        f"{URL}preflight/",
        {**_body(vpcs["hr-portal"], vpcs["services-use1"]), "requester_destination_cidrs": ["10.3.0.0/16"]},
        format="json",
    ).json()
    failure = next(c for c in transit["checks"] if c["code"] == "destination_outside_peer")
    assert "eng-build" not in failure["detail"] and "not transitive" in failure["detail"]
