"""API clients never get an HTML error page: 404s and 500s under /api/ answer JSON."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse

from requests_app.core.logs import current_request_id

logger = logging.getLogger(__name__)


_PLAIN_ERRORS = {
    400: ("bad_request", "The request could not be read."),
    403: ("permission_denied", "You do not have permission to do this."),
    404: ("not_found", "Not found."),
    405: ("method_not_allowed", "This method is not allowed here."),
    413: ("request_too_large", "The request body is too large."),
    500: ("server_error", "A server error occurred."),
}


class RefuseNullBytesMiddleware:
    """A NUL byte in the path, the query or a form is refused (400) before any view sees it.

    PostgreSQL text cannot hold one, so any value that reaches a query (a search box, an id in a
    URL, a filter) would crash the view with a database error; no real input contains one.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "\x00" in request.path or any(
            "\x00" in key or any("\x00" in value for value in values)
            for data in (request.GET, request.POST)
            for key, values in data.lists()
        ):
            return HttpResponseBadRequest("NUL bytes are not accepted.\n", content_type="text/plain")
        return self.get_response(request)


class ApiJsonErrorsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            request.path.startswith("/api/v1/")
            and response.status_code >= 400
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            # Django answered before DRF could (no such route, a bad Host, a body too large, a crash).
            code, detail = _PLAIN_ERRORS.get(response.status_code, ("error", "The request failed."))
            json_response = JsonResponse(
                {
                    "type": "server_error" if response.status_code >= 500 else "client_error",
                    "errors": [{"code": code, "detail": detail, "attr": None}],
                },
                status=response.status_code,
            )
            for header in ("Allow", "Retry-After"):
                if header in response:
                    json_response[header] = response[header]
            return json_response
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not request.path.startswith("/api/"):
            return None
        if isinstance(exception, SuspiciousOperation):
            # Django answers these 4xx itself (a body too large is 413): only the shape is ours.
            status = 413 if isinstance(exception, RequestDataTooBig) else 400
            code, detail = _PLAIN_ERRORS[status]
            return JsonResponse(
                {"type": "client_error", "errors": [{"code": code, "detail": detail, "attr": None}]}, status=status
            )
        logger.exception("unhandled error on %s", request.path, exc_info=exception)
        return JsonResponse(
            {
                "type": "server_error",
                "errors": [{"code": "server_error", "detail": "A server error occurred.", "attr": None}],
            },
            status=500,
        )


class RequestIdLoggingMiddleware:
    """Log lines written while serving /requests/<id>/… or /api/v1/peering-requests/<id>/… name it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:

        token = current_request_id.set("-")
        try:
            return self.get_response(request)
        finally:
            current_request_id.reset(token)

    def process_view(self, request: HttpRequest, view: object, args: object, kwargs: dict[str, object]) -> None:

        if "pk" in kwargs:
            current_request_id.set(str(kwargs["pk"]))


class ContentSecurityPolicyMiddleware:
    """Send `settings.CONTENT_SECURITY_POLICY`: scripts and styles from this origin only.

    The portal's own pages have no inline script or style. Django's admin and the API
    documentation pages (Redoc, Swagger UI) set inline styles, so paths in
    `CSP_RELAXED_PATHS` also allow those; inline scripts stay forbidden everywhere.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:

        self.get_response = get_response
        self.policy = settings.CONTENT_SECURITY_POLICY
        self.relaxed = settings.CONTENT_SECURITY_POLICY_RELAXED
        self.relaxed_paths = tuple(settings.CSP_RELAXED_PATHS)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if self.policy and "Content-Security-Policy" not in response:
            relaxed = request.path.startswith(self.relaxed_paths)
            response["Content-Security-Policy"] = self.relaxed if relaxed else self.policy
        return response
