"""Who works on a request, and until when: leases, their heartbeat, and the pick-up deadline.

A request in work (approved, provisioning, decommissioning) has `lease_owner` (the run working on
it) and `lease_expires_at`. With an owner, `lease_expires_at` is when the lease runs out unless
renewed; without one, it is when queued work should have been picked up by. Past it, the sweeper
(tasks.sweep_stuck_work) sends the work again: a dead worker and a lost message are recovered by
the same rule, within WORK_LEASE_SECONDS plus one sweep (SWEEP_INTERVAL_SECONDS) on the defaults.
"""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import datetime, timedelta
from typing import TypedDict

from django.conf import settings
from django.db import DatabaseError
from django.db import connection as db_connection
from django.utils import timezone

from requests_app.models import PeeringRequest

logger = logging.getLogger(__name__)


def pickup_deadline() -> datetime:
    """When queued work should have been picked up by: past it, the sweeper sends it again."""
    return timezone.now() + timedelta(seconds=settings.WORK_LEASE_SECONDS)


class Queued(TypedDict):
    """The lease fields of a request whose work was just queued (see `queued`)."""

    lease_owner: str
    lease_expires_at: datetime


def queued() -> Queued:
    """Fields for a request whose work is being queued: nobody works on it yet, and it must be
    picked up within a lease, or the sweeper sends it again (the message may be lost)."""
    return {"lease_owner": "", "lease_expires_at": pickup_deadline()}


def heartbeat_seconds() -> float:
    """How often a working process renews its lease: a third of it, so two beats can be missed."""
    return settings.WORK_LEASE_SECONDS / 3


class Heartbeat:
    """Keeps a run's lease alive from a thread while the saga works.

    The lease is short (WORK_LEASE_SECONDS, 30 s by default) so that a dead worker's request is
    taken over within a minute; a saga can wait longer than that on AWS (a connection becoming
    active, a throttled call), so the lease is renewed every third of it while the process is
    alive. The saga's own renewal before each AWS call stays the fence: a process that stalled
    past its lease (and lost it) stops at its next call.
    """

    def __init__(self, request_id: uuid.UUID, label: str) -> None:
        self.request_id = request_id
        self.label = label
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lease-{request_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=heartbeat_seconds() + 5)

    def _beat(self) -> None:
        try:
            while not self._stop.wait(heartbeat_seconds()):
                try:
                    renewed = PeeringRequest.objects.filter(pk=self.request_id, lease_owner=self.label).update(
                        lease_expires_at=timezone.now() + timedelta(seconds=settings.WORK_LEASE_SECONDS)
                    )
                except DatabaseError:
                    logger.warning("could not renew the lease on %s; trying again", self.request_id, exc_info=True)
                    db_connection.close()  # a dead connection is replaced on the next beat
                    continue
                if not renewed:
                    self.lost = True  # taken over; the saga's next call finds out and stops
                    return
        finally:
            db_connection.close()  # this thread's own connection
