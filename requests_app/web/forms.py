"""HTML forms: they collect input only; the rules run in services, as for the API."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.contrib.auth.models import User

from requests_app.inventory import selectors as inventory_selectors
from requests_app.models import Vpc
from requests_app.peering import preflight


def _split(value: str) -> list[str]:
    return [part for part in re.split(r"[\s,]+", value or "") if part]


class PeeringRequestForm(forms.Form):
    requester_vpc = forms.ChoiceField(label="Your VPC (requester)")
    accepter_vpc = forms.ChoiceField(label="Peer VPC (accepter)")
    requester_route_tables = forms.MultipleChoiceField(
        label="Route tables on your side",
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: all of your VPC's route tables.",
    )
    accepter_route_tables = forms.MultipleChoiceField(
        label="Route tables on the peer's side",
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: all of the peer VPC's route tables.",
    )
    requester_destination_cidrs = forms.CharField(
        label="Narrow routes to the peer (optional)",
        required=False,
        help_text="CIDRs inside the peer VPC, e.g. only its directory subnet; blank: all of its CIDRs.",
    )
    accepter_destination_cidrs = forms.CharField(
        label="Narrow routes back to you (optional)",
        required=False,
        help_text="CIDRs inside your VPC; blank: all of its CIDRs.",
    )
    allow_dns_resolution = forms.BooleanField(label="Resolve each other's private DNS host names", required=False)
    justification = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=4000)
    external_ref = forms.CharField(label="Ticket reference", required=False, max_length=100)

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        mine = list(inventory_selectors.requester_vpcs_for(user))
        peers = list(inventory_selectors.peer_vpcs_for(user))
        self._choice_field("requester_vpc").choices = [("", "— choose —")] + [
            (v.vpc_id, f"{v.label} · {v.region} · {', '.join(v.cidr_list())}") for v in mine
        ]

        def peer_choice(v: Vpc) -> tuple[str, str]:
            owners = ", ".join(sorted(u.username for u in v.owners.all()))
            star = "★ Services VPC · " if v.is_services_vpc else ""
            return v.vpc_id, f"{star}{v.label} · {v.region} · {', '.join(v.cidr_list())} · owners: {owners}"

        hubs = [peer_choice(v) for v in peers if v.is_services_vpc]
        others = [peer_choice(v) for v in peers if not v.is_services_vpc]
        # Services VPCs first: they are what nearly every request peers with.
        self._choice_field("accepter_vpc").choices = [("", "— choose —"), ("Services VPCs", hubs)] + (
            [("Other VPCs with owners", others)] if others else []
        )
        self._choice_field("requester_route_tables").choices = _table_choices(mine)
        self._choice_field("accepter_route_tables").choices = _table_choices(peers)

    def _choice_field(self, name: str) -> forms.ChoiceField:
        """This form's copy of a choice field, whose choices depend on the user."""
        field = self.fields[name]
        if not isinstance(field, forms.ChoiceField):
            raise TypeError(f"{name} is not a choice field")
        return field

    def draft(self) -> preflight.PeeringDraft:
        """The request as the form holds it; fields that did not validate are left empty."""
        data = self.cleaned_data
        return preflight.PeeringDraft(
            requester_vpc=data.get("requester_vpc", ""),
            accepter_vpc=data.get("accepter_vpc", ""),
            requester_route_tables=list(data.get("requester_route_tables", [])),
            accepter_route_tables=list(data.get("accepter_route_tables", [])),
            requester_destination_cidrs=_split(data.get("requester_destination_cidrs", "")),
            accepter_destination_cidrs=_split(data.get("accepter_destination_cidrs", "")),
            allow_dns_resolution=data.get("allow_dns_resolution", False),
            justification=data.get("justification", "").strip(),
            external_ref=data.get("external_ref", "").strip(),
        )


def _table_choices(vpcs: list[Vpc]) -> list[tuple[str, str]]:
    return [
        (
            rt.route_table_id,
            f"{v.name or v.vpc_id} / {rt.name or ('main' if rt.is_main else rt.route_table_id)} "
            f"({rt.route_table_id}, {len(rt.routes)} routes)",
        )
        for v in vpcs
        for rt in v.route_tables.all()
    ]


class AdoptForm(forms.Form):
    justification = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=4000, strip=True)
    external_ref = forms.CharField(label="Ticket reference", required=False, max_length=100, strip=True)


class CommentForm(forms.Form):
    comment = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False, max_length=4000)
