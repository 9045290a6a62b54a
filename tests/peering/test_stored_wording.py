"""Words stored on a request (its checks, a failure reason, its audit messages, the mail about it)
are read later by anyone of the requesting department, so they name only what that department may
see: another department's VPC or request is "of another department", however the checks ran
(filing, approval, or the worker's last look before AWS)."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import mail

from requests_app.domain.status import Status
from requests_app.models import AuditEvent, AwsAccount, Notification, PeeringRequest
from requests_app.peering.saga import runner
from tests.factories import ObservedPeeringFactory, PeeringRequestFactory, RouteTableFactory, VpcFactory, aws_id
from tests.fixtures.clients import URL, file_finance_request
from tests.fixtures.world import DemoWorld

pytestmark = pytest.mark.django_db


@pytest.fixture
def hr_spoke(demo_rows: DemoWorld) -> dict[str, Any]:
    """HR's secret VPC with finance-app's primary block, filed (pending) to the same hub."""
    hub = demo_rows.vpcs["services-use1"]
    secret = VpcFactory(
        account=AwsAccount.objects.get(account_id="333333333333"), name="hr-secret-payroll", cidrs=["10.1.0.0/16"]
    )
    RouteTableFactory(vpc=secret, name="hr-secret-payroll-main", is_main=True)
    pending = PeeringRequestFactory(requester_vpc=secret, accepter_vpc=hub, requested_by=demo_rows.users["harry"])
    return {"vpc": secret, "request": pending}


def _secrets(spoke: dict[str, Any]) -> list[str]:
    return ["hr-secret-payroll", spoke["vpc"].vpc_id, str(spoke["request"].pk)]


def _text_of(request_id: str) -> str:
    """Everything stored about the request that its department reads: fields, history, mail."""
    request = PeeringRequest.objects.get(pk=request_id)
    parts = [str(request.checks), request.failure_reason, request.decision_comment]
    parts += [f"{e.message} {e.data}" for e in AuditEvent.objects.filter(request_id=request_id)]
    parts += [f"{n.subject} {n.body}" for n in Notification.objects.filter(request_id=request_id)]
    return "\n".join(parts)


def test_checks_stored_at_filing_and_approval_name_no_other_department(
    demo_rows: DemoWorld, hr_spoke: dict[str, Any], api: Any
) -> None:
    filed = file_finance_request(api, demo_rows.vpcs)
    overlap = [c for c in filed["checks"] if c["code"] == "spoke_overlap"]
    assert overlap and overlap[0]["status"] == "warn"  # the other spoke is only pending: a warning

    approved = api("nina").post(f"{URL}{filed['id']}/approve/", {}, format="json")
    assert approved.status_code == 200, approved.json()
    shown = api("fiona").get(f"{URL}{filed['id']}/").json()
    words = str(shown["checks"]) + _text_of(filed["id"])
    assert "a VPC of another department" in str(shown["checks"])
    for secret in _secrets(hr_spoke):
        assert secret not in words, secret


def test_the_workers_refusal_before_aws_names_no_other_department(
    demo_rows: DemoWorld, hr_spoke: dict[str, Any], api: Any, settings: Any
) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    filed = file_finance_request(api, demo_rows.vpcs)
    assert api("nina").post(f"{URL}{filed['id']}/approve/", {}, format="json").status_code == 200
    # HR's spoke goes live meanwhile: the worker's last look before AWS refuses, and says why.
    PeeringRequest.objects.filter(pk=hr_spoke["request"].pk).update(status=Status.ACTIVE)
    assert runner.run(filed["id"], "provision") == "done"  # no AWS call: demo_rows would fail the test

    failed = PeeringRequest.objects.get(pk=filed["id"])
    assert failed.status == Status.FAILED and "spoke_overlap" in failed.failure_reason
    assert "a VPC of another department" in failed.failure_reason
    words = _text_of(filed["id"]) + "".join(m.body for m in mail.outbox)
    for secret in _secrets(hr_spoke):
        assert secret not in words, secret


def test_a_refusal_stores_nothing_so_it_names_the_spoke_in_the_way_to_the_approver(
    demo_rows: DemoWorld, hr_spoke: dict[str, Any], api: Any
) -> None:
    """The twin of the above: when approval is refused, nothing is stored and only the approver
    reads the answer, and approvers decide about every spoke of their hub, so it names HR's."""
    filed = file_finance_request(api, demo_rows.vpcs)
    PeeringRequest.objects.filter(pk=hr_spoke["request"].pk).update(status=Status.ACTIVE)

    refused = api("nina").post(f"{URL}{filed['id']}/approve/", {}, format="json")
    assert refused.status_code == 400, refused.json()
    overlap = [e for e in refused.json()["errors"] if e["code"] == "spoke_overlap"]
    assert overlap, refused.json()
    for secret in _secrets(hr_spoke):
        assert secret in overlap[0]["detail"], (secret, overlap[0]["detail"])
    assert PeeringRequest.objects.get(pk=filed["id"]).status == Status.PENDING_APPROVAL
    # And the requester, reading their request afterwards, still sees none of it.
    words = str(api("fiona").get(f"{URL}{filed['id']}/").json()) + _text_of(filed["id"])
    for secret in _secrets(hr_spoke):
        assert secret not in words, secret


def test_the_approvers_refusal_names_only_what_the_approver_may_see(demo_rows: DemoWorld, api: Any) -> None:
    """Not every VPC: a VPC of HR that finance-app was peered with by hand, outside the portal, is
    no spoke of nina's hub, so her refusal describes it without its name or id."""
    filed = file_finance_request(api, demo_rows.vpcs)
    finance = demo_rows.vpcs["finance-app"]
    secret = VpcFactory(
        account=AwsAccount.objects.get(account_id="333333333333"), name="hr-secret-payroll", cidrs=["10.0.128.0/20"]
    )  # inside the hub's 10.0.0.0/16: finance-app cannot reach both
    RouteTableFactory(vpc=secret, name="hr-secret-main", is_main=True)
    ObservedPeeringFactory(
        connection_id=aws_id("pcx"),
        requester_vpc_id=finance.vpc_id,
        accepter_vpc_id=secret.vpc_id,
        requester_account_id=finance.account.account_id,
        accepter_account_id="333333333333",
        requester_cidrs=finance.cidr_list(),
        accepter_cidrs=["10.0.128.0/20"],
    )

    refused = api("nina").post(f"{URL}{filed['id']}/approve/", {}, format="json")
    assert refused.status_code == 400, refused.json()
    assert "a VPC of another department" in str(refused.json())
    assert secret.vpc_id not in str(refused.json()) and "hr-secret-payroll" not in str(refused.json())
