"""The inputs the fuzz found break no page, every time (hypothesis may not draw them again on every
run), and the fuzz reaches past validation."""

from __future__ import annotations

import re

import pytest

from tests.web.form_fuzz.strategies import post
from tests.web.form_fuzz.world import ACCOUNT, PASSWORD, REQUEST, VPC, Browser, Pk, World, rolled_back

pytestmark = [
    pytest.mark.django_db,
    # Login counters are keyed by the user name as typed; memcached would refuse such keys, the
    # portal's caches (Redis, files) do not. Not a server error: not this file's business.
    pytest.mark.filterwarnings("ignore::django.core.cache.backends.base.CacheKeyWarning"),
]


# --- the inputs the fuzz found, every time (hypothesis may not draw them again on every run) --------------
def deep_json(depth: int = 5000) -> str:
    return "[" * depth + "]" * depth


FOUND = {
    "adopt: a NUL in the connection id": (
        "nina",
        "/inventory/peerings/%00/adopt/",
        [("justification", "made before the portal")],
    ),
    "sync: a NUL in the account id": ("root", "/inventory/accounts/%00/sync/", []),
    "request list: a NUL in the search": ("fiona", "/?q=%00", None),
    "audit: a date that is before year 1 in UTC": ("fiona", "/audit/?until=0001-01-01T00%3A00%3A00%2B01%3A00", None),
    "audit export: a date that is after year 9999 in UTC": (
        "fiona",
        "/audit/export.csv?since=9999-12-31T23%3A59%3A59-01%3A00",
        None,
    ),
    "admin account: regions nested 5000 deep": (
        "root",
        "/admin/requests_app/awsaccount/add/",
        [
            ("account_id", "666666666666"),
            ("name", "new"),
            ("department", "{department:finance}"),
            ("role_arn", "arn:aws:iam::666666666666:role/PeeringPortalRole"),
            ("regions", deep_json()),
        ],
    ),
    "admin webhook: events nested 5000 deep": (
        "root",
        "/admin/requests_app/webhook/add/",
        [("url", "https://hooks.example.com/x"), ("events", deep_json()), ("active", "on")],
    ),
    "admin department: a member id past 64 bits": (
        "root",
        "/admin/requests_app/department/add/",
        [("name", "Marketing"), ("slug", "marketing"), ("members", "99999999999999999999")],
    ),
    "admin vpc: an owner id past 64 bits": (
        "root",
        "/admin/requests_app/vpc/{vpc:hr}/change/",
        [
            ("owners", "99999999999999999999"),
            ("cidr_blocks-TOTAL_FORMS", "0"),
            ("cidr_blocks-INITIAL_FORMS", "0"),
            ("cidr_blocks-MIN_NUM_FORMS", "0"),
            ("cidr_blocks-MAX_NUM_FORMS", "1000"),
        ],
    ),
    "admin change page: an empty _to_field": (
        "root",
        "/admin/requests_app/webhook/{webhook:hook}/change/",
        [("url", "https://hooks.example.com/x"), ("events", '["*"]'), ("active", "on"), ("_to_field", "")],
    ),
}


@pytest.mark.parametrize("case", sorted(FOUND))
def test_the_inputs_the_fuzz_found_never_answer_a_server_error(world: World, case: str) -> None:
    who, path, pairs = FOUND[case]

    def fill(text: str) -> str:
        return re.sub(r"\{(\w+):(\w+)\}", lambda m: str(world.pks[Pk(m[1], m[2])]), text)

    path = fill(path)
    browser = world.browser(who)
    with rolled_back():
        if pairs is None:
            url, _, query = path.partition("?")
            browser.get_raw(url, query)
            return
        filled = [(k, fill(v)) for k, v in pairs]
        post(browser, path, filled, page="/", enc="urlencoded")
    with rolled_back():
        post(browser, path, filled, page="/", enc="multipart")


def test_the_fuzz_reaches_past_validation(world: World) -> None:
    """A guard against a fuzz that only ever meets the CSRF check or the login page: the same browser
    posts files a request, acts on one, and is refused with a form error, not a 403 or a login."""
    fiona = Browser(world.users["fiona"])
    with rolled_back():
        filed = post(
            fiona,
            "/requests/new/",
            [
                ("requester_vpc", VPC["app"]),
                ("accepter_vpc", VPC["hub"]),
                ("justification", "directory"),
                ("submit", "1"),
            ],
            page="/requests/new/",
            enc="urlencoded",
        )
        assert filed.redirect_chain and "/requests/" in filed.redirect_chain[-1][0], filed.content[:500]
        checked = post(
            fiona,
            "/requests/new/check/",
            [("requester_vpc", VPC["overlap"]), ("accepter_vpc", VPC["hub"])],
            page="/requests/new/",
            enc="multipart",
        )
        assert checked.status_code == 200 and "these checks fail" in checked.content.decode(), checked.content[:500]
    nina = Browser(world.users["nina"])
    with rolled_back():
        done = post(
            nina, f"/requests/{REQUEST['pending']}/reject/", [("comment", "no")], page="/approvals/", enc="urlencoded"
        )
        assert done.status_code == 200 and "Done: reject." in done.content.decode()
    root = Browser(world.users["root"])
    with rolled_back():
        synced = post(root, f"/inventory/accounts/{ACCOUNT['empty']}/sync/", [], page="/inventory/", enc="urlencoded")
        assert f"Synced {ACCOUNT['empty']}" in synced.content.decode()
        refused = post(
            root, f"/inventory/accounts/{ACCOUNT['finance']}/sync/", [], page="/inventory/", enc="urlencoded"
        )
        assert "no AWS in the form fuzz" in refused.content.decode()
        hook = post(
            root,
            "/admin/requests_app/webhook/add/",
            [("url", "https://hooks.example.com/x"), ("events", '["*"]'), ("active", "on")],
            page="/admin/requests_app/webhook/add/",
            enc="urlencoded",
        )
        assert hook.status_code == 200
    anonymous = Browser()
    with rolled_back():
        logged_in = post(
            anonymous,
            "/accounts/login/",
            [("username", "fiona"), ("password", PASSWORD)],
            page="/accounts/login/",
            enc="urlencoded",
        )
        assert logged_in.redirect_chain and logged_in.redirect_chain[-1][0] == "/"
