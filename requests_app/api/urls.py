from django.urls import path
from rest_framework.routers import DefaultRouter

from requests_app.api import views

router = DefaultRouter(trailing_slash=True)
router.register("vpcs", views.VpcViewSet, basename="vpc")
router.register("aws-accounts", views.AwsAccountViewSet, basename="aws-account")
router.register("peering-requests", views.PeeringRequestViewSet, basename="peering-request")
router.register("audit-events", views.AuditEventViewSet, basename="audit-event")
router.register("webhooks", views.WebhookViewSet, basename="webhook")
router.register("tokens", views.ApiTokenViewSet, basename="api-token-named")
router.register("observed-peerings", views.ObservedPeeringViewSet, basename="observed-peering")

urlpatterns = [path("auth/token/", views.ObtainTokenView.as_view(), name="api-token"), *router.urls]
