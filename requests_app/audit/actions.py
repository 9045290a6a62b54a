"""Every action the audit trail records, by name.

The values are stored in `AuditEvent.action`, hashed into the chain, filtered on by people
(`?action=request.`) and read by monitoring: a value never changes once an event carries it. A
new kind of event gets a new member.
"""

from __future__ import annotations

from enum import StrEnum


class AuditAction(StrEnum):
    # A request's life, as people (and expiry) move it.
    REQUEST_SUBMITTED = "request.submitted"
    REQUEST_APPROVED = "request.approved"
    REQUEST_REJECTED = "request.rejected"
    REQUEST_CANCELLED = "request.cancelled"
    REQUEST_RETRIED = "request.retried"
    REQUEST_DECOMMISSION_REQUESTED = "request.decommission_requested"
    REQUEST_REPAIR_REQUESTED = "request.repair_requested"
    REQUEST_EXPIRED = "request.expired"
    REQUEST_ADOPTED = "request.adopted"

    # The saga's work in AWS: each call, and the moves it makes.
    AWS_CALL = "aws.call"
    PROVISIONING_REFUSED = "provisioning.refused"
    PROVISIONING_STARTED = "provisioning.started"
    PROVISIONING_CONNECTION_RECORDED = "provisioning.connection_recorded"
    PROVISIONING_COMPLETED = "provisioning.completed"
    PROVISIONING_FAILED = "provisioning.failed"
    DECOMMISSIONING_COMPLETED = "decommissioning.completed"
    DECOMMISSIONING_FAILED = "decommissioning.failed"
    REPAIR_REFUSED = "repair.refused"
    REPAIR_FAILED = "repair.failed"
    REPAIR_COMPLETED = "repair.completed"

    # The reconciler.
    DRIFT_FOUND = "drift.found"
    DRIFT_CLEARED = "drift.cleared"

    # The inventory.
    ACCOUNT_REGISTERED = "account.registered"
    ACCOUNT_SYNCED = "account.synced"
    ACCOUNT_SYNC_FAILED = "account.sync_failed"

    # Integrations.
    WEBHOOK_REGISTERED = "webhook.registered"
    WEBHOOK_CHANGED = "webhook.changed"
    WEBHOOK_RESENT = "webhook.resent"
    TOKEN_CREATED = "token.created"
    TOKEN_REVOKED = "token.revoked"

    # Changes made in the Django admin.
    ADMIN_ADDED = "admin.added"
    ADMIN_CHANGED = "admin.changed"
    ADMIN_DELETED = "admin.deleted"
