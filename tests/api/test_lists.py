"""Incremental lists: `updated_after`, ordering by `updated_at`, and pages that neither overlap nor skip."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from requests_app.models import (
    PeeringRequest,
)
from requests_app.peering import preflight
from requests_app.peering import services as peering_services
from tests.fixtures.clients import errors_of
from tests.fixtures.world import DemoWorld

URL = "/api/v1/peering-requests/"


# === incremental lists =================================================================================
@pytest.mark.django_db
def test_updated_after_ordering_and_pages(demo_rows: DemoWorld, api: Any) -> None:
    fiona, vpcs = demo_rows.users["fiona"], demo_rows.vpcs
    ids = []
    for n in range(5):
        made = peering_services.peering_request_submit(
            actor=fiona,
            draft=preflight.PeeringDraft(
                requester_vpc=vpcs["finance-app"].vpc_id,
                accepter_vpc=vpcs["services-use1"].vpc_id,
                justification=f"n{n}",
            ),
        )
        if n < 4:
            peering_services.peering_request_cancel(actor=fiona, request_id=made.pk)
        ids.append(str(made.pk))
    base = timezone.now() - timedelta(hours=1)
    minutes = {ids[0]: 30, ids[1]: 10, ids[2]: 40, ids[3]: 20, ids[4]: 20}  # not creation order; one tie
    for pk, m in minutes.items():
        PeeringRequest.objects.filter(pk=pk).update(updated_at=base + timedelta(minutes=m))
    client = api("fiona")

    def listed(**params: Any) -> dict[str, Any]:
        response = client.get(URL, params)
        assert response.status_code == 200, response.json()
        return response.json()

    everything = listed(ordering="updated_at", limit=50)
    order = [r["id"] for r in everything["results"]]
    assert everything["count"] == 5 and sorted(order) == sorted(ids)
    assert [minutes[i] for i in order] == [10, 20, 20, 30, 40]
    newest_first = [r["id"] for r in listed(ordering="-updated_at", limit=50)["results"]]
    assert [minutes[i] for i in newest_first] == [40, 30, 20, 20, 10]

    since = listed(updated_after=(base + timedelta(minutes=20)).isoformat(), ordering="updated_at")
    assert since["count"] == 2
    assert [r["id"] for r in since["results"]] == [ids[0], ids[2]]
    zulu = (base + timedelta(minutes=35)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert [r["id"] for r in listed(updated_after=zulu)["results"]] == [ids[2]]
    assert listed(updated_after=(base + timedelta(minutes=40)).isoformat())["count"] == 0
    bad = client.get(URL, {"updated_after": "yesterday"})
    assert bad.status_code == 400
    errors_of(bad, "validation_error")

    for _ in range(2):  # twice: the pages are the same each time
        pages = [listed(ordering="updated_at", limit=2, offset=offset) for offset in (0, 2, 4)]
        assert [p["count"] for p in pages] == [5, 5, 5]
        assert [len(p["results"]) for p in pages] == [2, 2, 1]
        assert [r["id"] for p in pages for r in p["results"]] == order  # no overlap, nothing skipped
        assert pages[0]["next"] and pages[2]["next"] is None
