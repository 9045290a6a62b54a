"""The inventory page: accounts, VPCs and their routes as the portal knows them, peerings to adopt."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from requests_app.core import errors
from requests_app.core.http import AuthenticatedHttpRequest
from requests_app.inventory import network
from requests_app.inventory import selectors as inventory_selectors
from requests_app.inventory import services as inventory_services
from requests_app.models import AwsAccount
from requests_app.peering import adoption, permissions, preflight
from requests_app.web.forms import AdoptForm


@login_required
def inventory(request: AuthenticatedHttpRequest) -> HttpResponse:
    user = request.user
    vpcs = list(inventory_selectors.vpcs_visible_to(user).order_by("account__account_id", "region", "name"))
    # The routes as the portal knows them: the last sync plus its own work since (network.py).
    routes = network.routes_by_table(
        [table for vpc in vpcs for table in vpc.route_tables.all()],
        namer=preflight.ViewerNamer(user, permissions.department_ids(user)),
    )
    observed = list(inventory_selectors.observed_peerings_visible_to(user))
    adoptable = adoption.adoptable_by(user, observed)
    return render(
        request,
        "requests_app/inventory.html",
        {
            "accounts": AwsAccount.objects.select_related("department").order_by("account_id")
            if permissions.is_admin(user)
            else [],
            "vpcs": [
                {"vpc": vpc, "tables": [(table, routes[table.route_table_id]) for table in vpc.route_tables.all()]}
                for vpc in vpcs
            ],
            "observed": [(seen, seen.connection_id in adoptable) for seen in observed],
        },
    )


@login_required
@require_POST
def inventory_adopt(request: AuthenticatedHttpRequest, connection_id: str) -> HttpResponse:
    """Adopt a peering found in AWS, as the API's adopt does (the same use case and rules)."""
    form = AdoptForm(request.POST)
    if not form.is_valid():
        messages.error(
            request,
            f"Could not adopt {connection_id}: "
            + " ".join(f"{name}: {' '.join(map(str, errors))}" for name, errors in form.errors.items()),
        )
        return redirect("inventory")
    try:
        adopted = adoption.observed_peering_adopt(actor=request.user, connection_id=connection_id, **form.cleaned_data)
    except errors.PortalError as exc:
        if exc.status == 404:
            raise Http404("No such peering connection.") from None
        messages.error(request, f"Could not adopt {connection_id}: {exc.detail}")
        return redirect("inventory")
    messages.success(request, f"Adopted {connection_id}: the portal manages it from now on.")
    return redirect("request-detail", pk=adopted.pk)


@login_required
@require_POST
def inventory_sync(request: AuthenticatedHttpRequest, account_id: str) -> HttpResponse:
    try:
        report = inventory_services.aws_account_sync(actor=request.user, account_id=account_id)
    except errors.PortalError as exc:
        if exc.status in (403, 404):
            raise Http404("No such account.") from None
        messages.error(request, f"Sync of {account_id} failed: {exc.detail}")
    else:
        messages.success(
            request, f"Synced {account_id}: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in report.items())
        )
    return redirect("inventory")
