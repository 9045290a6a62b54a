"""The audit page and its exports."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import render

from requests_app import audit
from requests_app.audit.filters import matching, page_filter
from requests_app.core.http import AuthenticatedHttpRequest
from requests_app.peering import selectors as peering_selectors


@login_required
def audit_log(request: AuthenticatedHttpRequest) -> HttpResponse:
    found = page_filter(request.GET, peering_selectors.events_visible_to(request.user))
    page = Paginator(matching(found).order_by("-id"), 100).get_page(request.GET.get("page"))
    return render(request, "requests_app/audit.html", {"page": page, "form": found.form})


@login_required
def audit_export(request: AuthenticatedHttpRequest, fmt: str) -> StreamingHttpResponse:
    """The filtered audit history as CSV or JSON Lines, hashes included, streamed oldest first."""

    qs = matching(page_filter(request.GET, peering_selectors.events_visible_to(request.user))).order_by("id")
    lines = audit.export_csv(qs) if fmt == "csv" else audit.export_jsonl(qs)
    response = StreamingHttpResponse(lines, content_type="text/csv" if fmt == "csv" else "application/x-ndjson")
    response["Content-Disposition"] = f'attachment; filename="peering-audit.{fmt}"'
    return response
