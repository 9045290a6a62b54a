"""The topology page: the hub-and-spoke picture (cached) and the hubs' capacity (live)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.http import HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.utils.safestring import mark_safe

from requests_app.core.http import AuthenticatedHttpRequest
from requests_app.inventory import selectors as inventory_selectors
from requests_app.inventory import services as inventory_services
from requests_app.web.topology import topology_for, topology_version


@login_required
def topology(request: AuthenticatedHttpRequest) -> HttpResponse:

    # Laying out hundreds of VPCs takes seconds, and the picture changes only when the data does:
    # the rendered picture is kept per user and data version (every change writes an audit event).
    key = f"topology:{request.user.pk}:{topology_version(request.user)}"
    body = cache.get(key)
    if body is None:
        body = render_to_string("requests_app/_topology_body.html", topology_for(request.user), request=request)
        cache.set(key, body, timeout=3600)
    # Capacity is read live (a few queries per hub), so it is not part of the cached picture.
    capacities = inventory_services.capacities(list(inventory_selectors.hubs_visible_to(request.user)))
    return render(request, "requests_app/topology.html", {"body": mark_safe(body), "capacities": capacities})
