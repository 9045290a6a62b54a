"""Undoing the portal's work: the routes that target our connection, then the connection.

A failed provisioning tears down what it made before it reports `failed`; decommissioning is the
same teardown on an active peering. The portal never deletes a route it did not make: each route
is read again right before its DeleteRoute.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings

from requests_app.audit import AuditAction
from requests_app.aws.types import AwsError, PermanentAwsError
from requests_app.domain.plan import RouteSpec
from requests_app.domain.status import Status
from requests_app.models import ManagedRoute
from requests_app.peering.saga.base import WORK_STATES, SagaBase, SagaFailure

logger = logging.getLogger(__name__)


class Teardown(SagaBase):
    def fail(self, operation: str, exc: Exception) -> None:
        """Undo what the portal made, then record `failed` with a reason a person can act on."""
        reason = (exc.reason if isinstance(exc, SagaFailure) else str(exc)).rstrip(".") + "."
        # Decide on the current state, before touching AWS: a request that finished (or was
        # finished by another worker) meanwhile must never be torn down.
        self.request = self.load()
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
            AuditAction.PROVISIONING_FAILED if operation == "provision" else AuditAction.DECOMMISSIONING_FAILED,
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
            Status.DECOMMISSIONED,
            AuditAction.DECOMMISSIONING_COMPLETED,
            lease_owner="",
            lease_expires_at=None,
            deliveries=0,
        )
