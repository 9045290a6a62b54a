from django.urls import path, re_path

from requests_app import views

urlpatterns = [
    path("", views.home, name="home"),
    path("requests/new/", views.request_new, name="request-new"),
    path("requests/new/check/", views.request_check, name="request-check"),
    path("requests/<uuid:pk>/", views.request_detail, name="request-detail"),
    path("requests/<uuid:pk>/watch/", views.request_watch, name="request-watch"),
    path("requests/<uuid:pk>/<slug:action>/", views.request_action, name="request-action"),
    path("approvals/", views.approvals, name="approvals"),
    path("topology/", views.topology, name="topology"),
    path("inventory/", views.inventory, name="inventory"),
    path("inventory/accounts/<str:account_id>/sync/", views.inventory_sync, name="inventory-sync"),
    path("inventory/peerings/<str:connection_id>/adopt/", views.inventory_adopt, name="inventory-adopt"),
    path("audit/", views.audit_log, name="audit"),
    re_path(r"^audit/export\.(?P<fmt>csv|jsonl)$", views.audit_export, name="audit-export"),
]
