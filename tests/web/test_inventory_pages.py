"""The inventory page: what each user sees of the accounts, VPCs and the peerings the portal did not
make, and the account sync, which is for administrators. These tests sync accounts, against the sandbox."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from requests_app.inventory import sync
from requests_app.models import AuditEvent
from tests.fixtures.world import DemoWorld
from tests.web.pages import PageWorld, get, messages_in, text

pytestmark = pytest.mark.django_db


def test_inventory_and_sync_are_for_administrators(world_in_sandbox: PageWorld, client: Any) -> None:
    users = world_in_sandbox.users
    admin_page = text(get(client, users["admin"], "/inventory/"))
    assert "Sync now" in admin_page and "222222222222" in admin_page
    fiona_page = text(get(client, users["fiona"], "/inventory/"))
    assert "Sync now" not in fiona_page and "Peerings not made by the portal" not in fiona_page
    assert "hr-portal" not in fiona_page and "finance-app" in fiona_page
    for outsider in ("fiona", "nina", "harry"):
        client.force_login(users[outsider])
        assert client.post("/inventory/accounts/222222222222/sync/").status_code == 404
    client.force_login(users["admin"])
    assert client.post("/inventory/accounts/999999999999/sync/").status_code == 404
    response = client.post("/inventory/accounts/222222222222/sync/", follow=True)
    assert response.redirect_chain == [("/inventory/", 302)]
    assert any(m.startswith("Synced 222222222222") for m in messages_in(text(response), "success"))
    assert AuditEvent.objects.filter(action="account.synced", account_id="222222222222").count() == 1


@pytest.mark.django_db
def test_inventory_shows_admins_the_peerings_the_portal_did_not_make(client: Client, demo_world: DemoWorld) -> None:
    from requests_app.models import AwsAccount
    from tests.fixtures.sandbox import ec2_as

    vpcs = demo_world.vpcs
    by_hand = ec2_as("444444444444", "us-east-1").create_vpc_peering_connection(
        VpcId=vpcs["eng-build"].vpc_id,
        PeerVpcId=vpcs["services-use1"].vpc_id,
        PeerOwnerId="111111111111",
        PeerRegion="us-east-1",
    )["VpcPeeringConnection"]["VpcPeeringConnectionId"]
    sync.sync_account(AwsAccount.objects.get(account_id="444444444444"))

    client.force_login(demo_world.users["admin"])
    page = client.get("/inventory/").content.decode()
    assert "Peerings not made by the portal" in page and by_hand in page
    # As in GET /api/v1/observed-peerings/: shown to whoever may see one of its VPCs (erin: eng-build
    # is her department's), never to others (fiona).
    client.force_login(demo_world.users["erin"])
    assert by_hand in client.get("/inventory/").content.decode()
    client.force_login(demo_world.users["fiona"])
    assert by_hand not in client.get("/inventory/").content.decode()
