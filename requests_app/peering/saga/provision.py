"""Making a peering: create the connection, accept it on the other side, DNS options, routes.

The connection id is stored the moment AWS returns it; a run that finds a tagged connection it
has no id for adopts it. Any permanent failure tears down what was made (see teardown.py).
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from requests_app import audit
from requests_app.audit import AuditAction
from requests_app.aws.types import PeeringInfo, PermanentAwsError, RouteTableInfo
from requests_app.domain.plan import RouteSpec
from requests_app.domain.status import Status
from requests_app.models import ManagedRoute, PeeringRequest, ProvisioningStep
from requests_app.peering import preflight
from requests_app.peering.saga.base import LeaseLost, SagaFailure
from requests_app.peering.saga.teardown import Teardown

logger = logging.getLogger(__name__)


class Provisioning(Teardown):
    def provision(self) -> None:
        if self.request.status == Status.APPROVED:
            # The last look before AWS is touched: another spoke may have gone live meanwhile.
            evaluation = preflight.peering_request_evaluate(
                draft=preflight.draft_of(self.request),
                department_ids={self.request.department_id},
                record_for=self.request.department_id,
                exclude_request=self.request.pk,
            )
            if not evaluation.ok:
                failed = "; ".join(f"{r.code}: {r.detail}" for r in evaluation.results if r.status == "fail")
                reason = f"Checks failed just before provisioning, so nothing was sent to AWS: {failed}."
                self.transition(
                    Status.FAILED,
                    AuditAction.PROVISIONING_REFUSED,
                    message=reason,
                    failure_reason=reason,
                    failed_operation="provision",
                    checks=evaluation.checks,
                    lease_owner="",
                    lease_expires_at=None,
                    deliveries=0,
                )
                return
            self.transition(Status.PROVISIONING, AuditAction.PROVISIONING_STARTED, checks=evaluation.checks)
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
        self.transition(
            Status.ACTIVE, AuditAction.PROVISIONING_COMPLETED, lease_owner="", lease_expires_at=None, deliveries=0
        )

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
                action=AuditAction.PROVISIONING_CONNECTION_RECORDED,
                actor_label=self.label,
                request=self.request,
                message=f"{'adopted' if adopted else 'created'} {connection_id}",
                data={"connection_id": connection_id, "adopted": adopted},
            )

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

    def _ensure_route(
        self, spec: RouteSpec, tables: dict[str, dict[str, RouteTableInfo]] | None, connection_id: str
    ) -> str:
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
