from django.urls import path, re_path

from requests_app.web.views import approvals, audit, inventory, requests, topology

urlpatterns = [
    path("", requests.home, name="home"),
    path("requests/new/", requests.request_new, name="request-new"),
    path("requests/new/check/", requests.request_check, name="request-check"),
    path("requests/<uuid:pk>/", requests.request_detail, name="request-detail"),
    path("requests/<uuid:pk>/watch/", requests.request_watch, name="request-watch"),
    path("requests/<uuid:pk>/<slug:action>/", requests.request_action, name="request-action"),
    path("approvals/", approvals.approvals, name="approvals"),
    path("topology/", topology.topology, name="topology"),
    path("inventory/", inventory.inventory, name="inventory"),
    path("inventory/accounts/<str:account_id>/sync/", inventory.inventory_sync, name="inventory-sync"),
    path("inventory/peerings/<str:connection_id>/adopt/", inventory.inventory_adopt, name="inventory-adopt"),
    path("audit/", audit.audit_log, name="audit"),
    re_path(r"^audit/export\.(?P<fmt>csv|jsonl)$", audit.audit_export, name="audit-export"),
]
