"""Finding saga work nobody is doing, so it can be sent again.

One rule covers a dead worker and a lost message: the request is in work and its
`lease_expires_at` is past (see lease.py). The deadline moves on as the work is taken for
sending, so each request is sent at most once a lease, however long the queue.
"""

from __future__ import annotations

from django.db.models import Q
from django.utils import timezone

from requests_app.domain.status import WORK_IN_FLIGHT, Status
from requests_app.models import PeeringRequest
from requests_app.peering.saga.lease import pickup_deadline


def take_stuck() -> list[tuple[str, str]]:
    """Take every stuck request for sending again: `(operation, request id)` for each.

    The dead owner is let go: if it was only stalled, its next call finds the lease gone.
    """
    now = timezone.now()
    stuck = PeeringRequest.objects.filter(status__in=list(WORK_IN_FLIGHT)).filter(
        Q(lease_expires_at__lt=now) | Q(lease_expires_at__isnull=True)
    )
    taken: list[tuple[str, str]] = []
    for pk, status, deadline in stuck.values_list("pk", "status", "lease_expires_at"):
        moved = PeeringRequest.objects.filter(pk=pk, status=status, lease_expires_at=deadline).update(
            lease_owner="", lease_expires_at=pickup_deadline()
        )
        if not moved:
            continue  # picked up or finished meanwhile
        taken.append(("decommission" if status == Status.DECOMMISSIONING else "provision", str(pk)))
    return taken
