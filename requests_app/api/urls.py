from django.urls import path
from rest_framework.routers import DefaultRouter

from requests_app.api.views import accounts, audit, auth, observed, requests, tokens, vpcs, webhooks

router = DefaultRouter(trailing_slash=True)
router.register("vpcs", vpcs.VpcViewSet, basename="vpc")
router.register("aws-accounts", accounts.AwsAccountViewSet, basename="aws-account")
router.register("peering-requests", requests.PeeringRequestViewSet, basename="peering-request")
router.register("audit-events", audit.AuditEventViewSet, basename="audit-event")
router.register("webhooks", webhooks.WebhookViewSet, basename="webhook")
router.register("tokens", tokens.ApiTokenViewSet, basename="api-token-named")
router.register("observed-peerings", observed.ObservedPeeringViewSet, basename="observed-peering")

urlpatterns = [path("auth/token/", auth.ObtainTokenView.as_view(), name="api-token"), *router.urls]
