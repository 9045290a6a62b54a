from django.urls import path

from requests_app import views

urlpatterns = [
    path("", views.home, name="home"),
    path("requests/new/", views.request_new, name="request-new"),
    path("requests/new/check/", views.request_check, name="request-check"),
    path("requests/<uuid:pk>/", views.request_detail, name="request-detail"),
    path("requests/<uuid:pk>/<slug:action>/", views.request_action, name="request-action"),
    path("approvals/", views.approvals, name="approvals"),
    path("inventory/", views.inventory, name="inventory"),
    path("audit/", views.audit_log, name="audit"),
]
