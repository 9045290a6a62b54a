"""The request forms never answer a server error: the new request form (submit, "Run checks", the
live htmx check), the request actions, and the inventory's adopt and sync forms."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.web.form_fuzz.strategies import (
    cidr_list,
    encoding,
    extra_fields,
    fuzz,
    fuzzed,
    hostile,
    hostile_or_bytes,
    known_request,
    path_part,
    path_value,
    post,
    table_field,
    vpc_field,
    weighted,
)
from tests.web.form_fuzz.world import ACCOUNT, ACTIONS, PCX, TABLES, VPC, World, pcx_id, rolled_back

pytestmark = [
    pytest.mark.django_db,
    # Login counters are keyed by the user name as typed; memcached would refuse such keys, the
    # portal's caches (Redis, files) do not. Not a server error: not this file's business.
    pytest.mark.filterwarnings("ignore::django.core.cache.backends.base.CacheKeyWarning"),
]


# --- the new request form: submit, "Run checks", and the live (htmx) check ----------------------------
REQUEST_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "requester_vpc": vpc_field,
    "accepter_vpc": vpc_field,
    "requester_route_tables": table_field,
    "accepter_route_tables": table_field,
    "requester_destination_cidrs": cidr_list,
    "accepter_destination_cidrs": cidr_list,
    "allow_dns_resolution": st.one_of(st.sampled_from(["on", "", "off", "false", "0", "1"]), hostile),
    "justification": st.one_of(st.just("the app needs the shared directory"), hostile_or_bytes),
    "external_ref": st.one_of(st.just("CHG-4711"), hostile_or_bytes),
}
# What fiona (or sam) files from finance-app to the hub; every check passes.
GOOD_REQUEST = {
    "requester_vpc": [VPC["app"]],
    "accepter_vpc": [VPC["hub"]],
    "requester_route_tables": [TABLES["app-main"]],
    "accepter_route_tables": [TABLES["hub-main"], TABLES["hub-private"]],
    "requester_destination_cidrs": ["10.0.0.0/24"],
    "accepter_destination_cidrs": [""],
    "allow_dns_resolution": ["on"],
    "justification": ["the app needs the shared directory"],
    "external_ref": ["CHG-4711"],
}


@fuzz(200)
@given(
    who=st.sampled_from(["fiona", "fiona", "fiona", "sam", "harry", "nina", "root", "nobody"]),
    pairs=fuzzed(GOOD_REQUEST, REQUEST_FIELDS),
    mode=st.sampled_from(["submit", "submit", "check", "live"]),
    enc=encoding,
    many_tables=st.integers(0, 15).map(lambda n: n == 15),  # now and then more fields than Django takes
)
def test_the_new_request_form_never_answers_a_server_error(
    world: World, who: str, pairs: list[tuple[str, Any]], mode: str, enc: str, many_tables: bool
) -> None:
    if many_tables:
        pairs = pairs + [("requester_route_tables", TABLES["app-main"])] * 1001
    browser = world.browser(who)
    with rolled_back():
        if mode == "live":
            post(browser, "/requests/new/check/", pairs, page="/requests/new/", enc=enc)
        else:
            post(browser, "/requests/new/", [*pairs, (mode, "1")], page="/requests/new/", enc=enc)


# --- the request actions (request page, approvals page) ----------------------------------------------
ACTION_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "comment": st.one_of(st.just("looks right"), hostile_or_bytes),
    "next": st.one_of(st.sampled_from(["approvals", "https://evil.example/", "//evil.example", "/admin/"]), hostile),
}


@fuzz(200)
@given(
    who=st.sampled_from(["fiona", "fiona", "nina", "nina", "sam", "harry", "olga", "root", "nobody"]),
    target=weighted((4, known_request), (1, st.uuids().map(str))),
    action=weighted((4, st.sampled_from(ACTIONS)), (1, st.from_regex(r"\A[-a-zA-Z0-9_]{1,40}\Z"))),
    pairs=fuzzed({"comment": ["looks right"], "next": []}, ACTION_FIELDS),
    enc=encoding,
)
def test_the_request_actions_never_answer_a_server_error(
    world: World, who: str, target: str, action: str, pairs: list[tuple[str, Any]], enc: str
) -> None:
    browser = world.browser(who)
    with rolled_back():
        post(browser, f"/requests/{target}/{action}/", pairs, page=f"/requests/{target}/", enc=enc)


# --- inventory: adopt a peering found in AWS, sync an account ------------------------------------------
ADOPT_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "justification": st.one_of(st.just("made before the portal"), hostile_or_bytes),
    "external_ref": st.one_of(st.just("INC0042"), hostile_or_bytes),
}
known_pcx = st.sampled_from([*PCX.values(), pcx_id(999), "pcx-"])


@fuzz(100)
@given(
    who=st.sampled_from(["nina", "nina", "root", "fiona", "harry", "sam"]),
    connection=weighted((2, known_pcx), (1, path_value)),
    pairs=fuzzed({"justification": ["made before the portal"], "external_ref": ["INC0042"]}, ADOPT_FIELDS),
    enc=encoding,
)
def test_adopting_a_peering_never_answers_a_server_error(
    world: World, who: str, connection: str, pairs: list[tuple[str, Any]], enc: str
) -> None:
    browser = world.browser(who)
    with rolled_back():
        post(browser, f"/inventory/peerings/{path_part(connection)}/adopt/", pairs, page="/inventory/", enc=enc)


@fuzz(60)
@given(
    who=st.sampled_from(["root", "root", "nina", "fiona"]),
    account=st.one_of(st.sampled_from([*ACCOUNT.values(), "999999999999", "12345"]), path_value),
    pairs=extra_fields,
    enc=encoding,
)
def test_syncing_an_account_never_answers_a_server_error(
    world: World, who: str, account: str, pairs: list[tuple[str, Any]], enc: str
) -> None:
    browser = world.browser(who)
    with rolled_back():
        post(browser, f"/inventory/accounts/{path_part(account)}/sync/", pairs, page="/inventory/", enc=enc)
