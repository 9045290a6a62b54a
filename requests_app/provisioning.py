"""The provisioning saga: create, accept, DNS options and routes, and the teardown.

Every step looks in AWS before it acts, so running the saga again (a redelivered message, a
retry, a second worker after a lease ran out) creates nothing twice. The connection id is
stored the moment AWS returns it. A lease on the request keeps two workers from running the
same saga at once; no database lock is ever held across an AWS call.
"""

from __future__ import annotations

import contextlib
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
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from requests_app import audit, logs, services
from requests_app.aws.gateway import (
    AccountRef,
    AwsError,
    AwsGateway,
    PeeringInfo,
    PermanentAwsError,
    TransientAwsError,
    get_gateway,
)
from requests_app.domain.plan import RouteSpec
from requests_app.domain.status import Status
from requests_app.inventory import account_ref
from requests_app.lease import Heartbeat, pickup_deadline
from requests_app.models import ManagedRoute, PeeringRequest, ProvisioningStep

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


class Saga:
    def __init__(self, request_id: str, *, gateway: AwsGateway | None = None, label: str | None = None) -> None:
        self.request_id = request_id
        self.gateway = gateway or get_gateway()
        # Per run, not per process: a retry or a second thread never inherits a lease.
        self.label = label or f"{worker_label()}:{uuid.uuid4().hex[:8]}"
        self.request: PeeringRequest = self._load()
        self.sides = _Sides(
            requester=account_ref(self.request.requester_vpc.account),
            requester_region=self.request.requester_vpc.region,
            accepter=account_ref(self.request.accepter_vpc.account),
            accepter_region=self.request.accepter_vpc.region,
        )
        self.routes: tuple[RouteSpec, ...] = services.plan_for(self.request).routes

    def _load(self) -> PeeringRequest:
        return PeeringRequest.objects.select_related(
            "requester_vpc__account", "accepter_vpc__account", "department"
        ).get(pk=self.request_id)

    # --- leases -----------------------------------------------------------------------------
    # `lease_owner` is who works on the request and `lease_expires_at` until when; with no owner,
    # `lease_expires_at` is when the queued work should have been picked up by. Past it, the
    # sweeper sends the work again (a dead worker, a lost message: see tasks.sweep_stuck_work).
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
        if not operation.startswith("Describe"):
            # Written before a change is asked for, so even a worker that dies while AWS acts
            # leaves the attempt in the audit trail.
            audit.record(
                action="aws.call",
                actor_label=self.label,
                request=self.request,
                operation=operation,
                account_id=account.account_id,
                region=region,
                result="started",
                data=data,
            )
        try:
            result = call()
        except AwsError as exc:
            audit.record(
                action="aws.call",
                actor_label=self.label,
                request=self.request,
                operation=operation,
                account_id=account.account_id,
                region=region,
                result="error",
                error_code=exc.code,
                message=exc.message[:2000],
                data=data,
            )
            raise
        audit.record(
            action="aws.call",
            actor_label=self.label,
            request=self.request,
            operation=operation,
            account_id=account.account_id,
            region=region,
            result="ok",
            data=data,
        )
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

    def transition(self, target: Status, action: str, message: str = "", **fields: Any) -> None:
        services.request_transition(
            self.request, target, actor_label=self.label, action=action, message=message, **fields
        )

    # --- provisioning -----------------------------------------------------------------------
    def provision(self) -> None:
        if self.request.status == Status.APPROVED:
            # The last look before AWS is touched: another spoke may have gone live meanwhile.
            evaluation = services.peering_request_evaluate(
                draft=services.draft_of(self.request),
                department_ids={self.request.department_id},
                exclude_request=self.request.pk,
            )
            if not evaluation.ok:
                failed = "; ".join(f"{r.code}: {r.detail}" for r in evaluation.results if r.status == "fail")
                reason = f"Checks failed just before provisioning, so nothing was sent to AWS: {failed}."
                self.transition(
                    Status.FAILED,
                    "provisioning.refused",
                    message=reason,
                    failure_reason=reason,
                    failed_operation="provision",
                    checks=evaluation.checks,
                    lease_owner="",
                    lease_expires_at=None,
                    deliveries=0,
                )
                return
            self.transition(Status.PROVISIONING, "provisioning.started", checks=evaluation.checks)
        elif self.request.status != Status.PROVISIONING:
            logger.info("request %s is %s; nothing to provision", self.request.pk, self.request.status)
            return
        try:
            with self.step("create connection", 0) as step:
                connection = self.ensure_connection()
                step.aws_id = connection.connection_id
                step.outcome = connection.status
            with self.step("accept", 1) as step:
                connection = self.ensure_accepted(connection)
                step.aws_id = connection.connection_id
                step.outcome = connection.status
            if self.request.allow_dns_resolution:
                self.ensure_dns(connection)
            self.ensure_routes(connection.connection_id)
        except (SagaFailure, PermanentAwsError) as exc:
            self.fail("provision", exc)
            return
        self.transition(Status.ACTIVE, "provisioning.completed", lease_owner="", lease_expires_at=None, deliveries=0)

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

    def ensure_connection(self) -> PeeringInfo:
        known_id = self.request.aws_peering_connection_id
        if known_id:
            info = self.wait_visible(known_id)
            if info.is_gone:
                raise SagaFailure(
                    "connection_gone",
                    f"peering connection {known_id} is {info.status} in AWS ({info.status_message})",
                )
            return info
        pair = self._our_connections()
        ours = [p for p in pair if p.tag(settings.PEERING_TAG_KEY) == str(self.request.pk)]
        if ours:
            # A previous run created it but died before storing the id: adopt it.
            self._store_connection_id(ours[0].connection_id, adopted=True)
            return ours[0]
        if pair:
            other = pair[0]
            raise SagaFailure(
                "duplicate_peering",
                f"{other.connection_id} ({other.status}) already connects {other.requester_vpc_id} and "
                f"{other.accepter_vpc_id}; the portal did not make it and two VPCs can have only one peering",
            )
        created = self.aws(
            "CreateVpcPeeringConnection",
            self.sides.requester,
            self.sides.requester_region,
            lambda: self.gateway.create_peering(
                self.sides.requester,
                self.sides.requester_region,
                vpc_id=self.request.requester_vpc.vpc_id,
                peer_vpc_id=self.request.accepter_vpc.vpc_id,
                peer_owner_id=self.sides.accepter.account_id,
                peer_region=self.sides.accepter_region,
                tags={
                    settings.PEERING_TAG_KEY: str(self.request.pk),
                    "Name": f"{self.request.requester_vpc.name or self.request.requester_vpc.vpc_id}"
                    f"--{self.request.accepter_vpc.name or self.request.accepter_vpc.vpc_id}",
                },
            ),
        )
        self._store_connection_id(created.connection_id, adopted=False)
        return self.wait_visible(created.connection_id)

    def _store_connection_id(self, connection_id: str, *, adopted: bool) -> None:
        with transaction.atomic():
            stored = PeeringRequest.objects.filter(
                pk=self.request.pk, lease_owner=self.label, aws_peering_connection_id__in=["", connection_id]
            ).update(aws_peering_connection_id=connection_id, updated_at=timezone.now())
            if not stored:
                raise LeaseLost(f"{self.label} lost {self.request.pk} before recording {connection_id}")
            self.request.aws_peering_connection_id = connection_id
            audit.record(
                action="provisioning.connection_recorded",
                actor_label=self.label,
                request=self.request,
                message=f"{'adopted' if adopted else 'created'} {connection_id}",
                data={"connection_id": connection_id, "adopted": adopted},
            )

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

    def ensure_accepted(self, connection: PeeringInfo) -> PeeringInfo:
        if connection.status == "active":
            return connection
        if connection.status == "pending-acceptance":
            try:
                accepted = self.aws(
                    "AcceptVpcPeeringConnection",
                    self.sides.accepter,
                    self.sides.accepter_region,
                    lambda: self.gateway.accept_peering(
                        self.sides.accepter, self.sides.accepter_region, connection.connection_id
                    ),
                    connection_id=connection.connection_id,
                )
                # AWS answers `provisioning`; DNS options and routes need `active`.
                return accepted if accepted.status == "active" else self.wait_active(connection.connection_id)
            except PermanentAwsError as exc:
                if exc.code != "InvalidStateTransition":
                    raise
                # It changed state since we looked (failed, rejected, expired): say which.
                connection = self.wait_visible(connection.connection_id)
                if connection.status == "active":
                    return connection
                if connection.status == "pending-acceptance":
                    raise
        if connection.status == "provisioning":
            return self.wait_active(connection.connection_id)
        raise SagaFailure(
            f"connection_{connection.status}".replace("-", "_"),
            f"peering connection {connection.connection_id} is {connection.status} in AWS: {connection.status_message}",
        )

    def ensure_dns(self, connection: PeeringInfo) -> None:
        current = {"requester": connection.requester_dns_resolution, "accepter": connection.accepter_dns_resolution}
        for position, side in enumerate(("requester", "accepter"), start=2):
            with self.step(f"DNS resolution, {side} side", position) as step:
                step.aws_id = connection.connection_id
                step.outcome = "already on" if current[side] else "turned on"
                if not current[side]:
                    self._set_dns(connection, side)

    def _set_dns(self, connection: PeeringInfo, side: str) -> None:
        account, region = self.sides.side(side)
        self.aws(
            "ModifyVpcPeeringConnectionOptions",
            account,
            region,
            lambda: self.gateway.set_dns_resolution(account, region, connection.connection_id, side=side, enabled=True),
            side=side,
            connection_id=connection.connection_id,
        )

    def _tables_by_side(self, *, strict: bool = True) -> dict[str, dict[str, Any]]:
        """The chosen route tables as AWS has them now. A table deleted in AWS fails provisioning
        (strict) but is simply absent for teardown, which must still remove everything else."""
        wanted: dict[str, list[str]] = defaultdict(list)
        for spec in self.routes:
            if spec.route_table_id not in wanted[spec.side]:
                wanted[spec.side].append(spec.route_table_id)
        tables: dict[str, dict[str, Any]] = {}
        for side, ids in wanted.items():
            account, region = self.sides.side(side)
            described = self.aws(
                "DescribeRouteTables",
                account,
                region,
                lambda account=account, region=region, ids=ids: self.gateway.describe_route_tables(
                    account, region, ids, skip_missing=True
                ),
                route_table_ids=ids,
            )
            tables[side] = {t.route_table_id: t for t in described if t.route_table_id in ids}
            missing = [i for i in ids if i not in tables[side]]
            if missing and strict:
                raise SagaFailure("route_table_not_found", f"route table {', '.join(missing)} no longer exists in AWS")
        return tables

    def ensure_routes(self, connection_id: str) -> None:
        # A run that follows another (a redelivery, a retry) looks at the tables first and
        # creates only what is missing. A first run, whose step log shows no route was ever
        # attempted, goes straight to CreateRoute: it never overwrites (RouteAlreadyExists), and
        # the table is read only then, to tell our route from someone else's.
        earlier = ProvisioningStep.objects.filter(request=self.request, name__startswith="route ").exists()
        tables = self._tables_by_side() if earlier else None
        for position, spec in enumerate(self.routes, start=4):
            with self.step(f"route {spec.route_table_id} {spec.destination}", position) as step:
                step.aws_id = spec.route_table_id
                step.outcome = self._ensure_route(spec, tables, connection_id)
                self._record_route(spec, ManagedRoute.State.CREATED)

    def _record_route(self, spec: RouteSpec, state: ManagedRoute.State) -> None:
        """The portal's picture of the network follows each route it makes or removes, at once."""
        ManagedRoute.objects.filter(
            request=self.request, route_table_id=spec.route_table_id, destination=spec.destination
        ).exclude(state=state).update(state=state, changed_at=timezone.now())

    def _ensure_route(self, spec: RouteSpec, tables: dict[str, dict[str, Any]] | None, connection_id: str) -> str:
        if tables is not None:
            existing = tables[spec.side][spec.route_table_id].route_to(spec.destination)
            if existing is not None:
                if existing.target == connection_id:
                    return f"already routes to {connection_id}"
                raise self._route_conflict(spec, existing.target)
        account, region = self.sides.side(spec.side)
        try:
            self.aws(
                "CreateRoute",
                account,
                region,
                lambda: self.gateway.create_route(
                    account,
                    region,
                    route_table_id=spec.route_table_id,
                    destination=spec.destination,
                    connection_id=connection_id,
                ),
                route_table_id=spec.route_table_id,
                destination=spec.destination,
                connection_id=connection_id,
            )
        except PermanentAwsError as exc:
            if exc.code == "InvalidRouteTableID.NotFound":
                raise SagaFailure(
                    "route_table_not_found", f"route table {spec.route_table_id} no longer exists in AWS"
                ) from None
            if exc.code != "RouteAlreadyExists":
                raise
            # Someone (or an earlier run of ours) got there first: ours only if it targets us.
            fresh = self.aws(
                "DescribeRouteTables",
                account,
                region,
                lambda: self.gateway.describe_route_tables(account, region, [spec.route_table_id]),
                route_table_ids=[spec.route_table_id],
            )
            route = fresh[0].route_to(spec.destination) if fresh else None
            if route is None or route.target != connection_id:
                raise self._route_conflict(spec, route.target if route else "unknown") from None
            return f"already routes to {connection_id}"
        return f"created, to {connection_id}"

    def _route_conflict(self, spec: RouteSpec, target: str) -> SagaFailure:
        return SagaFailure(
            "route_conflict",
            f"route table {spec.route_table_id} already routes {spec.destination} to {target}; "
            "the portal never overwrites a route it did not make",
        )

    # --- failure and teardown ---------------------------------------------------------------
    def fail(self, operation: str, exc: Exception) -> None:
        """Undo what the portal made, then record `failed` with a reason a person can act on."""
        reason = (exc.reason if isinstance(exc, SagaFailure) else str(exc)).rstrip(".") + "."
        # Decide on the current state, before touching AWS: a request that finished (or was
        # finished by another worker) meanwhile must never be torn down.
        self.request = self._load()
        if self.request.status not in WORK_STATES[operation]:
            return
        cleanup_note = ""
        forget: dict[str, Any] = {}
        if operation == "provision":
            try:
                cleanup_note = " " + self.teardown()
            except AwsError as cleanup_exc:
                cleanup_note = (
                    f" Clean-up did not finish ({cleanup_exc}); retry, or decommission once the cause is fixed."
                )
            else:
                # Nothing of ours is left in AWS, so a retry starts with a new connection.
                forget = {"aws_peering_connection_id": ""}
        self.transition(
            Status.FAILED,
            f"{'provisioning' if operation == 'provision' else 'decommissioning'}.failed",
            message=reason + cleanup_note,
            failure_reason=reason + cleanup_note,
            failed_operation=operation,
            lease_owner="",
            lease_expires_at=None,
            deliveries=0,
            **forget,
        )

    def teardown(self) -> str:
        """Remove the routes that target our connection, then the connection. NotFound counts as done.

        Returns what it did, in words for the request's history.
        """
        connection_id = self.request.aws_peering_connection_id
        if not connection_id:
            ours = [p for p in self._our_connections() if p.tag(settings.PEERING_TAG_KEY) == str(self.request.pk)]
            if not ours:
                return "The portal had made nothing in AWS."
            connection_id = ours[0].connection_id
        removed = 0
        tables = self._tables_by_side(strict=False)
        for position, spec in enumerate(self.routes, start=100):
            table = tables.get(spec.side, {}).get(spec.route_table_id)
            route = table.route_to(spec.destination) if table else None
            if route is None or route.target != connection_id:
                # Gone, or someone else's now: never touched, and no longer the portal's.
                self._record_route(spec, ManagedRoute.State.REMOVED)
                continue
            with self.step(f"remove route {spec.route_table_id} {spec.destination}", position) as step:
                step.aws_id = spec.route_table_id
                step.outcome = self._remove_route(spec, connection_id)
                self._record_route(spec, ManagedRoute.State.REMOVED)
            removed += 1

        with self.step("delete connection", 999) as step:
            step.aws_id = connection_id
            step.outcome = self._delete_connection(connection_id)
        routes = f"The portal removed its {removed} route(s)" if removed else "The portal had added no routes"
        return f"{routes}; {step.outcome}."

    def _remove_route(self, spec: RouteSpec, connection_id: str) -> str:
        account, region = self.sides.side(spec.side)
        # Read the route again right before deleting it: if someone re-pointed it since, it is
        # no longer ours, and the portal never deletes a route it did not make.
        fresh = self.gateway.describe_route_tables(account, region, [spec.route_table_id], skip_missing=True)
        route = fresh[0].route_to(spec.destination) if fresh else None
        if route is None:
            return "already gone"
        if route.target != connection_id:
            return f"left alone: now routes to {route.target}"
        try:
            self.aws(
                "DeleteRoute",
                account,
                region,
                lambda: self.gateway.delete_route(
                    account, region, route_table_id=spec.route_table_id, destination=spec.destination
                ),
                route_table_id=spec.route_table_id,
                destination=spec.destination,
            )
        except PermanentAwsError as exc:
            if not exc.is_not_found:
                raise
            return "already gone"
        return "removed"

    def _delete_connection(self, connection_id: str) -> str:
        info = self.aws(
            "DescribeVpcPeeringConnections",
            self.sides.requester,
            self.sides.requester_region,
            lambda: self.gateway.describe_peering(self.sides.requester, self.sides.requester_region, connection_id),
            connection_id=connection_id,
        )
        if info is None or info.is_gone:
            # AWS removes failed, rejected and expired connections itself.
            return f"{connection_id} is {info.status if info else 'gone'} in AWS, so there is nothing to delete"
        try:
            self.aws(
                "DeleteVpcPeeringConnection",
                self.sides.requester,
                self.sides.requester_region,
                lambda: self.gateway.delete_peering(self.sides.requester, self.sides.requester_region, connection_id),
                connection_id=connection_id,
            )
        except PermanentAwsError as exc:
            if not exc.is_not_found:
                raise
        return f"deleted {connection_id}"

    def decommission(self) -> None:
        if self.request.status != Status.DECOMMISSIONING:
            logger.info("request %s is %s; nothing to decommission", self.request.pk, self.request.status)
            return
        try:
            self.teardown()
        except (SagaFailure, PermanentAwsError) as exc:
            self.fail("decommission", exc)
            return
        self.transition(
            Status.DECOMMISSIONED, "decommissioning.completed", lease_owner="", lease_expires_at=None, deliveries=0
        )

    def repair(self) -> None:
        if self.request.status != Status.ACTIVE or not self.request.aws_peering_connection_id:
            return
        connection_id = self.request.aws_peering_connection_id
        info = self.wait_visible(connection_id)
        if info.is_gone:
            audit.record(
                action="repair.refused",
                actor_label=self.label,
                request=self.request,
                message=f"{connection_id} is {info.status}; the portal never silently recreates a connection",
            )
            return
        try:
            self.ensure_routes(connection_id)
        except (SagaFailure, PermanentAwsError) as exc:
            audit.record(action="repair.failed", actor_label=self.label, request=self.request, message=str(exc))
            return
        audit.record(action="repair.completed", actor_label=self.label, request=self.request)
        from requests_app import reconciler

        reconciler.reconcile(self.request.pk, self.gateway)  # what drift is left, if any


def run(request_id: str, operation: str, *, first_delivery: bool = True) -> str:
    """Run one saga operation for a request, if it is due and no other worker holds it.

    Returns "done", "not_needed" (the request is not in a state this operation works on: a
    stale or duplicate message), "leased" (another worker holds it) or "missing".
    """
    with logs.bound(request_id):
        return _run(request_id, operation, first_delivery)


def _run(request_id: str, operation: str, first_delivery: bool) -> str:
    try:
        saga = Saga(request_id)
    except PeeringRequest.DoesNotExist:
        logger.warning("request %s does not exist; dropping %s", request_id, operation)
        return "missing"
    if saga.request.status not in WORK_STATES[operation]:
        logger.info("request %s is %s; nothing to %s", request_id, saga.request.status, operation)
        return "not_needed"
    if not saga.claim():
        logger.info("request %s is leased by %s; leaving it", request_id, saga.request.lease_owner)
        return "leased"
    try:
        saga.request = saga._load()  # what it is now that we hold it
        if saga.request.status not in WORK_STATES[operation]:
            return "not_needed"
        if operation != "repair" and first_delivery and _too_many_deliveries(saga, operation):
            return "done"
        with Heartbeat(saga.request.pk, saga.label):
            getattr(saga, operation)()
        return "done"
    except LeaseLost as exc:
        logger.warning("%s", exc)
        return "leased"
    finally:
        saga.release()


def _too_many_deliveries(saga: Saga, operation: str) -> bool:
    """Count this delivery before any work, in its own commit, so a task that kills its worker
    every time is still counted and ends `failed` for an operator instead of looping. Celery's
    own retries of a transient error are not new deliveries and are not counted."""
    PeeringRequest.objects.filter(pk=saga.request.pk).update(deliveries=F("deliveries") + 1)
    deliveries = PeeringRequest.objects.values_list("deliveries", flat=True).get(pk=saga.request.pk)
    if deliveries <= settings.MAX_TASK_DELIVERIES:
        return False
    saga.fail(
        operation,
        SagaFailure(
            "too_many_deliveries",
            f"the {operation} task was delivered {deliveries} times without finishing (a worker died "
            "during it each time); an operator should look at the worker logs before retrying",
        ),
    )
    return True


def give_up(request_id: str, operation: str, exc: Exception) -> None:
    """Transient errors outlasted every retry: undo and fail with the last error as the reason."""
    saga = Saga(request_id)
    if operation == "repair":
        # A repair changes nothing about the request's state: record it, never tear down.
        audit.record(
            action="repair.failed",
            actor_label=saga.label,
            request=saga.request,
            message=f"AWS kept failing after every retry: {exc}",
        )
        return
    if saga.request.status not in WORK_STATES[operation] or not saga.claim():
        return
    try:
        saga.fail(operation, SagaFailure("retries_exhausted", f"AWS kept failing after every retry: {exc}"))
    finally:
        saga.release()
