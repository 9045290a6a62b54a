from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import URLPattern, URLResolver, include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

from requests_app.core import logins
from requests_app.web.views import health


def _admin_urls() -> tuple[list[URLPattern | URLResolver], str, str]:
    """The admin's URLs, its password change page checking the old password through the login throttle."""
    patterns, app_name, namespace = admin.site.urls
    throttled = path("password_change/", logins.admin_password_change(admin.site), name="password_change")
    return [throttled if getattr(p, "name", None) == "password_change" else p for p in patterns], app_name, namespace


# Django's django.contrib.auth.urls, with every password check throttled (login, password change)
# and password reset e-mails limited: see requests_app/core/logins.py.
accounts = [
    path("login/", auth_views.LoginView.as_view(authentication_form=logins.ThrottledAuthenticationForm), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password_change/", logins.ThrottledPasswordChangeView.as_view(), name="password_change"),
    path("password_change/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("password_reset/", logins.RateLimitedPasswordResetView.as_view(), name="password_reset"),
    path("password_reset/done/", auth_views.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path("reset/<uidb64>/<token>/", auth_views.PasswordResetConfirmView.as_view(), name="password_reset_confirm"),
    path("reset/done/", auth_views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
]

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("metrics", health.metrics, name="metrics"),
    path("admin/", _admin_urls()),
    path("accounts/", include(accounts)),
    path("api/v1/", include("requests_app.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start-up script as a file, so no inline script is needed.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path(
        "api/redoc/",
        SpectacularRedocView.as_view(url_name="schema", template_name="api/redoc.html"),
        name="api-redoc",
    ),
    path("", include("requests_app.web.urls")),
]
