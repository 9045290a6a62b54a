"""Peering requests, the routes each owns, and the steps of their saga."""

from __future__ import annotations

import uuid
from typing import NotRequired, TypedDict

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.urls import reverse

from requests_app.domain.checks import CheckDict
from requests_app.domain.plan import Operation
from requests_app.domain.status import LIVE_STATUSES, Status
from requests_app.models.inventory import Department, Vpc


class Finding(TypedDict):
    """One way AWS differs from what the portal made for a request (found by the reconciler,
    `requests_app.peering.drift`); the route's table and destination when it is about one."""

    kind: str  # connection_gone, dns_option_changed, route_table_gone, route_missing, route_elsewhere
    detail: str
    route_table_id: NotRequired[str]
    destination: NotRequired[str]


class Drift(TypedDict):
    """A request's recorded drift (`PeeringRequest.drift`): when it was found, and what."""

    found_at: str  # ISO 8601
    findings: list[Finding]


class PeeringRequest(models.Model):
    # UUIDs: ids travel into tickets and AWS tags, and must never collide with an older
    # database's (a stale broker message must not act on a different request).
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    status = models.CharField(
        max_length=20,
        choices=[(s.value, s.value.replace("_", " ")) for s in Status],
        default=Status.PENDING_APPROVAL,
        db_index=True,
    )
    requester_vpc = models.ForeignKey(Vpc, on_delete=models.PROTECT, related_name="requests_as_requester")
    accepter_vpc = models.ForeignKey(Vpc, on_delete=models.PROTECT, related_name="requests_as_accepter")
    # "vpc-a|vpc-b" sorted, so the database itself refuses a second live peering for a pair.
    # Indexed as well as uniquely constrained: SQLite uses a partial index only when a query
    # repeats its exact condition.
    pair_key = models.CharField(max_length=70, editable=False, db_index=True)
    requester_route_tables: models.JSONField[list[str], list[str]] = models.JSONField(default=list)
    accepter_route_tables: models.JSONField[list[str], list[str]] = models.JSONField(default=list)
    requester_destination_cidrs: models.JSONField[list[str], list[str]] = models.JSONField(default=list)
    accepter_destination_cidrs: models.JSONField[list[str], list[str]] = models.JSONField(default=list)
    allow_dns_resolution = models.BooleanField(default=False)
    justification = models.TextField()
    external_ref = models.CharField(max_length=100, blank=True, db_index=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    department = models.ForeignKey(Department, on_delete=models.PROTECT, related_name="peering_requests")
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_comment = models.TextField(blank=True)
    aws_peering_connection_id = models.CharField(max_length=32, blank=True, db_index=True)
    failure_reason = models.TextField(blank=True)
    # "provision" or "decommission": what retry resumes.
    failed_operation = models.CharField(max_length=20, blank=True)
    # Made outside the portal and adopted: its connection and routes were found in AWS.
    adopted = models.BooleanField(default=False)
    checks: models.JSONField[list[CheckDict], list[CheckDict]] = models.JSONField(default=list)
    plan: models.JSONField[list[Operation], list[Operation]] = models.JSONField(default=list)
    drift: models.JSONField[Drift | None, Drift | None] = models.JSONField(null=True, blank=True)
    # The worker that is working on the request, and until when; another worker (or the
    # sweeper) may take over only after the lease runs out.
    lease_owner = models.CharField(max_length=150, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # Task deliveries since the work last finished; see MAX_TASK_DELIVERIES.
    deliveries = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # The requester dashboard's tally; the approver dashboard's queue and recent decisions.
            models.Index(fields=["department", "status"], name="request_department_status"),
            models.Index(fields=["created_at"], condition=Q(status="pending_approval"), name="request_pending_by_age"),
            models.Index(fields=["-decided_at"], condition=Q(decided_at__isnull=False), name="request_decided"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["pair_key"],
                # Live, or failed while still holding a connection in AWS (see services.HOLDS_PAIR).
                condition=Q(status__in=sorted(s.value for s in LIVE_STATUSES))
                | (Q(status=Status.FAILED.value) & ~Q(aws_peering_connection_id="")),
                name="one_live_peering_per_vpc_pair",
            ),
            # Separation of duties, enforced below the application too.
            models.CheckConstraint(
                condition=Q(decided_by__isnull=True) | ~Q(decided_by=F("requested_by")),
                name="nobody_decides_own_request",
            ),
            models.CheckConstraint(condition=~Q(requester_vpc=F("accepter_vpc")), name="peering_needs_two_vpcs"),
        ]

    def __str__(self) -> str:
        return f"{self.requester_vpc.label} → {self.accepter_vpc.label} ({self.status})"

    def get_absolute_url(self) -> str:
        return reverse("request-detail", args=[self.pk])

    @property
    def portal_url(self) -> str:
        """The request's page as people outside the portal reach it (mail, webhooks, tickets)."""
        return settings.PORTAL_BASE_URL.rstrip("/") + self.get_absolute_url()

    @staticmethod
    def make_pair_key(vpc_a: str, vpc_b: str) -> str:
        return "|".join(sorted((vpc_a, vpc_b)))

    @property
    def progress(self) -> tuple[int, int]:
        """(steps done, steps expected) of the work in AWS; uses prefetched `steps`."""
        done = sum(1 for step in self.steps.all() if step.state == "done")
        return done, max(len(self.plan), done, 1)


class ManagedRoute(models.Model):
    """A route the portal owns, or will own: one per request, route table and destination.

    Written when a request is filed (`planned`), by the saga as it creates and removes routes
    (`created`, `removed`) and by adoption (`created`), so the portal's picture of the network
    includes its own work with no inventory sync in between (see `requests_app.network`). It is
    also the list of routes a request's saga, reconciler and teardown work on.
    """

    class State(models.TextChoices):
        PLANNED = "planned"  # in the request's plan, not in AWS
        CREATED = "created"  # made by the portal (or adopted): in AWS as far as the portal knows
        REMOVED = "removed"  # deleted by the portal, or found re-pointed by someone else and let go

    class Side(models.TextChoices):
        REQUESTER = "requester"
        ACCEPTER = "accepter"

    request = models.ForeignKey(PeeringRequest, on_delete=models.CASCADE, related_name="routes")
    side = models.CharField(max_length=10, choices=Side.choices)
    # Not a foreign key: a table deleted in AWS leaves the inventory, and the history stays readable.
    route_table_id = models.CharField(max_length=32)
    destination = models.CharField(max_length=43)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PLANNED)
    changed_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["request", "route_table_id", "destination"], name="one_managed_route_per_request_table_cidr"
            )
        ]
        indexes = [models.Index(fields=["route_table_id", "state"], name="managedroute_table_state")]

    def __str__(self) -> str:
        return f"{self.route_table_id} {self.destination} ({self.side}, {self.state})"


class ProvisioningStep(models.Model):
    """One step of a request's saga (create, accept, DNS per side, each route, each removal, delete)."""

    class State(models.TextChoices):
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    request = models.ForeignKey(PeeringRequest, on_delete=models.CASCADE, related_name="steps")
    name = models.CharField(max_length=200)  # e.g. "route rtb-1 10.0.0.0/16"
    position = models.PositiveIntegerField(default=0)  # the step's place in the plan, for display
    state = models.CharField(max_length=10, choices=State.choices, default=State.RUNNING)
    attempts = models.PositiveIntegerField(default=0)
    aws_id = models.CharField(max_length=100, blank=True)
    outcome = models.TextField(blank=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["position", "id"]
        constraints = [models.UniqueConstraint(fields=["request", "name"], name="uniq_step_per_request")]

    def __str__(self) -> str:
        return f"{self.name}: {self.state}"
