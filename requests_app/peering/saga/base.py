"""What every saga run shares: the request and its two sides, the lease, audited AWS calls, the
step log, and the reads that both provisioning and teardown make.

Every step looks in AWS before it acts, so running a saga again (a redelivered message, a retry,
a second worker after a lease ran out) creates nothing twice. No database lock is ever held
across an AWS call: the lease (see lease.py) keeps two workers from running one request at once.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import socket
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from requests_app import audit
from requests_app.audit import AuditAction
from requests_app.aws.gateway import AwsGateway, get_gateway
from requests_app.aws.types import AccountRef, AwsError, PeeringInfo, RouteTableInfo, TransientAwsError
from requests_app.domain.plan import RouteSpec
from requests_app.domain.status import Status
from requests_app.inventory.sync import account_ref
from requests_app.models import ManagedRoute, PeeringRequest, ProvisioningStep
from requests_app.peering import lifecycle, preflight
from requests_app.peering.saga.lease import pickup_deadline

logger = logging.getLogger(__name__)
T = TypeVar("T")


class LeaseLost(Exception):
    """Another worker took the request over (this one stalled past its lease): stop, quietly."""


# The states in which each operation has work to do; a message for any other state is stale.
WORK_STATES: dict[str, frozenset[Status]] = {
    "provision": frozenset({Status.APPROVED, Status.PROVISIONING}),
    "decommission": frozenset({Status.DECOMMISSIONING}),
    "repair": frozenset({Status.ACTIVE}),
}


class SagaFailure(Exception):
    """A permanent reason the saga cannot finish; the portal undoes its work and says why."""

    def __init__(self, code: str, reason: str) -> None:
        self.code = code
        self.reason = reason
        super().__init__(reason)


def worker_label() -> str:
    return f"worker:{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class _Sides:
    requester: AccountRef
    requester_region: str
    accepter: AccountRef
    accepter_region: str

    def side(self, name: str) -> tuple[AccountRef, str]:
        if name == "requester":
            return self.requester, self.requester_region
        return self.accepter, self.accepter_region


class SagaBase:
    def __init__(self, request_id: str, *, gateway: AwsGateway | None = None, label: str | None = None) -> None:
        self.request_id = request_id
        self.gateway = gateway or get_gateway()
        # Per run, not per process: a retry or a second thread never inherits a lease.
        self.label = label or f"{worker_label()}:{uuid.uuid4().hex[:8]}"
        self.request: PeeringRequest = self.load()
        self.sides = _Sides(
            requester=account_ref(self.request.requester_vpc.account),
            requester_region=self.request.requester_vpc.region,
            accepter=account_ref(self.request.accepter_vpc.account),
            accepter_region=self.request.accepter_vpc.region,
        )
        self.routes: tuple[RouteSpec, ...] = preflight.plan_for(self.request).routes

    def load(self) -> PeeringRequest:
        return PeeringRequest.objects.select_related(
            "requester_vpc__account", "accepter_vpc__account", "department"
        ).get(pk=self.request_id)

    # --- leases -----------------------------------------------------------------------------
    # `lease_owner` is who works on the request and `lease_expires_at` until when; with no owner,
    # `lease_expires_at` is when the queued work should have been picked up by. Past it, the
    # sweeper sends the work again (a dead worker, a lost message: see saga/sweeper.py).
    def claim(self) -> bool:
        now = timezone.now()
        claimed = (
            PeeringRequest.objects.filter(pk=self.request.pk)
            .filter(
                Q(lease_owner="")
                | Q(lease_expires_at__isnull=True)
                | Q(lease_expires_at__lt=now)
                | Q(lease_owner=self.label)
            )
            .update(lease_owner=self.label, lease_expires_at=now + timedelta(seconds=settings.WORK_LEASE_SECONDS))
        )
        return claimed == 1

    def renew(self) -> None:
        now = timezone.now()
        renewed = PeeringRequest.objects.filter(pk=self.request.pk, lease_owner=self.label).update(
            lease_expires_at=now + timedelta(seconds=settings.WORK_LEASE_SECONDS), updated_at=now
        )
        if not renewed:
            raise LeaseLost(f"{self.label} lost its lease on {self.request.pk}")

    def release(self) -> None:
        """Let go; work still due (a retry waits in the queue) must be picked up within a lease."""
        PeeringRequest.objects.filter(pk=self.request.pk, lease_owner=self.label).update(
            lease_owner="", lease_expires_at=pickup_deadline()
        )

    # --- audited AWS calls ------------------------------------------------------------------
    def aws(self, operation: str, account: AccountRef, region: str, call: Callable[[], T], **data: Any) -> T:
        """Make one AWS call, audited: its outcome always, and a change also before it is asked for."""

        def record(outcome: str, *, error_code: str = "", message: str = "") -> None:
            audit.record(
                action=AuditAction.AWS_CALL,
                actor_label=self.label,
                request=self.request,
                operation=operation,
                account_id=account.account_id,
                region=region,
                result=outcome,
                error_code=error_code,
                message=message,
                data=data,
            )

        if not operation.startswith("Describe"):
            # Written before a change is asked for, so even a worker that dies while AWS acts
            # leaves the attempt in the audit trail.
            record("started")
        try:
            result = call()
        except AwsError as exc:
            record("error", error_code=exc.code, message=exc.message[:2000])
            raise
        record("ok")
        self.renew()
        return result

    @contextlib.contextmanager
    def step(self, name: str, position: int) -> Iterator[ProvisioningStep]:
        """Record one saga step: attempts, AWS id and outcome, persisted as it goes."""
        row, _ = ProvisioningStep.objects.get_or_create(
            request=self.request, name=name, defaults={"position": position, "started_at": timezone.now()}
        )
        row.attempts += 1
        row.state = ProvisioningStep.State.RUNNING
        row.started_at = timezone.now()
        row.finished_at = None
        row.save(update_fields=["attempts", "state", "started_at", "finished_at"])
        try:
            yield row
        except Exception as exc:
            row.state = ProvisioningStep.State.FAILED
            row.outcome = str(exc)[:2000]
            row.finished_at = timezone.now()
            row.save(update_fields=["state", "outcome", "finished_at"])
            raise
        row.state = ProvisioningStep.State.DONE
        row.finished_at = timezone.now()
        row.save(update_fields=["state", "outcome", "aws_id", "finished_at"])

    def transition(self, target: Status, action: AuditAction, message: str = "", **fields: Any) -> None:
        lifecycle.request_transition(
            self.request, target, actor_label=self.label, action=action, message=message, **fields
        )

    def _our_connections(self) -> list[PeeringInfo]:
        """Live connections for this pair, found by listing and filtering here (the sandbox ignores filters)."""
        req, acc = self.request.requester_vpc.vpc_id, self.request.accepter_vpc.vpc_id
        found = self.aws(
            "DescribeVpcPeeringConnections",
            self.sides.requester,
            self.sides.requester_region,
            lambda: self.gateway.describe_peerings(self.sides.requester, self.sides.requester_region),
            purpose="find an existing connection for this pair",
        )
        return [p for p in found if {p.requester_vpc_id, p.accepter_vpc_id} == {req, acc} and not p.is_gone]

    def wait_visible(self, connection_id: str) -> PeeringInfo:
        """A fresh id may be NotFound for a while (eventual consistency); there is no waiter."""
        deadline = time.monotonic() + settings.PEERING_VISIBILITY_TIMEOUT_SECONDS
        delay = 0.2
        while True:
            info = self.aws(
                "DescribeVpcPeeringConnections",
                self.sides.requester,
                self.sides.requester_region,
                lambda: self.gateway.describe_peering(self.sides.requester, self.sides.requester_region, connection_id),
                connection_id=connection_id,
            )
            if info is not None and info.status != "initiating-request":
                return info
            if time.monotonic() > deadline:
                raise TransientAwsError(
                    "InvalidVpcPeeringConnectionID.NotFound",
                    f"{connection_id} is not visible yet after {settings.PEERING_VISIBILITY_TIMEOUT_SECONDS}s",
                    "DescribeVpcPeeringConnections",
                )
            time.sleep(delay)
            delay = min(delay * 2, 5.0)

    def wait_active(self, connection_id: str) -> PeeringInfo:
        """After acceptance AWS reports `provisioning` for a while; there is no waiter for `active`."""
        deadline = time.monotonic() + settings.PEERING_VISIBILITY_TIMEOUT_SECONDS
        delay = 0.5
        while True:
            info = self.wait_visible(connection_id)
            if info.status == "active":
                return info
            if info.is_gone:
                raise SagaFailure(
                    f"connection_{info.status}".replace("-", "_"),
                    f"peering connection {connection_id} is {info.status} in AWS: {info.status_message}",
                )
            if time.monotonic() > deadline:
                raise TransientAwsError(
                    "Provisioning", f"{connection_id} is still {info.status}", "AcceptVpcPeeringConnection"
                )
            time.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _tables_by_side(self, *, strict: bool = True) -> dict[str, dict[str, RouteTableInfo]]:
        """The chosen route tables as AWS has them now. A table deleted in AWS fails provisioning
        (strict) but is simply absent for teardown, which must still remove everything else."""
        wanted: dict[str, list[str]] = defaultdict(list)
        for spec in self.routes:
            if spec.route_table_id not in wanted[spec.side]:
                wanted[spec.side].append(spec.route_table_id)
        tables: dict[str, dict[str, RouteTableInfo]] = {}
        for side, ids in wanted.items():
            account, region = self.sides.side(side)
            described = self.aws(
                "DescribeRouteTables",
                account,
                region,
                functools.partial(self.gateway.describe_route_tables, account, region, ids, skip_missing=True),
                route_table_ids=ids,
            )
            tables[side] = {t.route_table_id: t for t in described if t.route_table_id in ids}
            missing = [i for i in ids if i not in tables[side]]
            if missing and strict:
                raise SagaFailure("route_table_not_found", f"route table {', '.join(missing)} no longer exists in AWS")
        return tables

    def _record_route(self, spec: RouteSpec, state: ManagedRoute.State) -> None:
        """The portal's picture of the network follows each route it makes or removes, at once."""
        ManagedRoute.objects.filter(
            request=self.request, route_table_id=spec.route_table_id, destination=spec.destination
        ).exclude(state=state).update(state=state, changed_at=timezone.now())
