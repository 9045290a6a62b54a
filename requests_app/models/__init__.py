"""The portal's models, one module per context; every model is importable from here."""

from requests_app.models.audit import AppendOnlyQuerySet, AuditAnchor, AuditChainHead, AuditEvent
from requests_app.models.integrations import (
    ApiToken,
    IdempotencyRecord,
    Webhook,
    WebhookAttempt,
    WebhookDelivery,
    new_message_id,
)
from requests_app.models.inventory import (
    AwsAccount,
    Department,
    ObservedPeering,
    RouteTable,
    Vpc,
    VpcCidr,
    account_id_validator,
    new_external_id,
    role_arn_validator,
)
from requests_app.models.notifications import Notification
from requests_app.models.operations import SchedulerRun
from requests_app.models.peering import Drift, Finding, ManagedRoute, PeeringRequest, ProvisioningStep

__all__ = [
    "ApiToken",
    "AppendOnlyQuerySet",
    "AuditAnchor",
    "AuditChainHead",
    "AuditEvent",
    "AwsAccount",
    "Department",
    "Drift",
    "Finding",
    "IdempotencyRecord",
    "ManagedRoute",
    "Notification",
    "ObservedPeering",
    "PeeringRequest",
    "ProvisioningStep",
    "RouteTable",
    "SchedulerRun",
    "Vpc",
    "VpcCidr",
    "Webhook",
    "WebhookAttempt",
    "WebhookDelivery",
    "account_id_validator",
    "new_external_id",
    "new_message_id",
    "role_arn_validator",
]
