"""The admin's forms never answer a server error (as a superuser): the add and change forms of
departments, AWS accounts and webhooks, the VPC change form with its inline, and the list pages'
search, filters and ordering."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from requests_app.domain.status import Status
from tests.web.form_fuzz.strategies import cidr, encoding, fuzz, fuzzed, hostile, post, weighted
from tests.web.form_fuzz.world import ACCOUNT, USERNAMES, Pk, World, rolled_back

pytestmark = [
    pytest.mark.django_db,
    # Login counters are keyed by the user name as typed; memcached would refuse such keys, the
    # portal's caches (Redis, files) do not. Not a server error: not this file's business.
    pytest.mark.filterwarnings("ignore::django.core.cache.backends.base.CacheKeyWarning"),
]


# --- the admin's forms ------------------------------------------------------------------------------------
ADMIN_BUTTONS = [("_save", "Save")], [("_continue", "1")], [("_addanother", "1")], [("_saveasnew", "1")], []
admin_button = st.sampled_from(ADMIN_BUTTONS)
user_pk = st.sampled_from([Pk("user", name) for name in USERNAMES])
odd_pk = st.sampled_from(["0", "-1", "999999", "1.5", "99999999999999999999", " 1", "1 "])
some_pk = weighted((2, user_pk), (1, odd_pk), (1, hostile))


def admin_post(world: World, path: str, pairs: list[tuple[str, Any]], button: list[tuple[str, str]], enc: str) -> None:
    browser = world.browser("root")
    with rolled_back():
        post(browser, path, [*pairs, *button], page=path, enc=enc, world=world)


DEPARTMENT_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "name": st.one_of(st.just("Marketing"), hostile),
    "slug": st.one_of(st.sampled_from(["marketing", "finance", "with space", "-", "\u00e9t\u00e9"]), hostile),
    "members": some_pk,
}


@fuzz(60)
@given(
    change=st.one_of(st.none(), st.sampled_from(["finance", "platform"])),
    pairs=fuzzed(
        {"name": ["Marketing"], "slug": ["marketing"], "members": [Pk("user", "fiona"), Pk("user", "sam")]},
        DEPARTMENT_FIELDS,
    ),
    button=admin_button,
    enc=encoding,
)
def test_the_admin_department_form_never_answers_a_server_error(
    world: World, change: str | None, pairs: list[tuple[str, Any]], button: list[tuple[str, str]], enc: str
) -> None:
    path = (
        "/admin/requests_app/department/add/"
        if change is None
        else f"/admin/requests_app/department/{world.value(Pk('department', change))}/change/"
    )
    admin_post(world, path, pairs, button, enc)


regions_json = st.one_of(
    st.sampled_from(
        [
            '["us-east-1"]',
            '["us-east-1", "eu-west-1"]',
            '"us-east-1"',
            "[]",
            "[1]",
            '{"a": 1}',
            "null",
            '["us-east-1\\u0000"]',
            '["US-EAST-1"]',
            '[["us-east-1"]]',
            "[" * 5000 + "]" * 5000,
            "1e999",
            '"' + "a" * 100_000 + '"',
        ]
    ),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=8,
    ).map(json.dumps),
    hostile,
)
quota = st.one_of(
    st.sampled_from(
        ["", "0", "50", "-1", "2147483647", "2147483648", "9223372036854775808", "1" + "0" * 40, "1.5", "1e3"]
    ),
    st.sampled_from(["\u0661\u0662", "\uff15\uff10"]),
    hostile,
)
ACCOUNT_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "account_id": st.one_of(st.sampled_from(["666666666666", ACCOUNT["finance"], "12345", "\u0661" * 12]), hostile),
    "name": st.one_of(st.just("new-account"), hostile),
    "department": st.one_of(
        st.sampled_from([Pk("department", "finance"), Pk("department", "hr")]),
        st.sampled_from(["0", "999999", "99999999999999999999"]),
        hostile,
    ),
    "role_arn": st.one_of(
        st.sampled_from(
            [
                "arn:aws:iam::666666666666:role/PeeringPortalRole",
                f"arn:aws:iam::{ACCOUNT['finance']}:role/PeeringPortalRole",
                "arn:aws-cn:iam::666666666666:role/a/b/c",
            ]
        ),
        hostile,
    ),
    "regions": regions_json,
    "max_peerings_per_vpc": quota,
    "max_outstanding_requests": quota,
    "max_routes_per_table": quota,
}


def account_base(account_id: str, department: str) -> dict[str, list[Any]]:
    return {
        "account_id": [account_id],
        "name": ["new-account"],
        "department": [Pk("department", department)],
        "role_arn": [f"arn:aws:iam::{account_id}:role/PeeringPortalRole"],
        "regions": ['["us-east-1", "eu-west-1"]'],
        "max_peerings_per_vpc": ["60"],
        "max_outstanding_requests": [""],
        "max_routes_per_table": ["1000"],
    }


@fuzz(80)
@given(
    change=st.sampled_from([None, None, "finance", "empty"]),
    data=st.data(),
    button=admin_button,
    enc=encoding,
)
def test_the_admin_aws_account_form_never_answers_a_server_error(
    world: World, change: str | None, data: st.DataObject, button: list[tuple[str, str]], enc: str
) -> None:
    if change is None:
        path = "/admin/requests_app/awsaccount/add/"
        base = account_base("666666666666", "finance")
    else:  # the account id is read-only once registered; a posted one is ignored
        path = f"/admin/requests_app/awsaccount/{world.value(Pk('account', change))}/change/"
        base = account_base(ACCOUNT[change], "platform" if change == "empty" else "finance")
    pairs = data.draw(fuzzed(base, ACCOUNT_FIELDS), label="pairs")
    admin_post(world, path, pairs, button, enc)


management = st.one_of(
    st.sampled_from(["0", "1", "2", "1000"]), st.sampled_from(["-1", "99999999", "x", "", "1.0"]), hostile
)
VPC_BLOCKS = {"hub": 1, "app": 2, "hr": 1}


def vpc_base(vpc: str) -> dict[str, list[Any]]:
    blocks = VPC_BLOCKS[vpc]
    base: dict[str, list[Any]] = {
        "is_services_vpc": ["on"] if vpc == "hub" else [],
        "owners": [Pk("user", "nina"), Pk("user", "olga")],
        "cidr_blocks-TOTAL_FORMS": [str(blocks)],
        "cidr_blocks-INITIAL_FORMS": [str(blocks)],
        "cidr_blocks-MIN_NUM_FORMS": ["0"],
        "cidr_blocks-MAX_NUM_FORMS": ["1000"],
    }
    for i in range(blocks):
        base[f"cidr_blocks-{i}-id"] = [Pk("cidr", f"{vpc}-{i}")]
        base[f"cidr_blocks-{i}-vpc"] = [Pk("vpc", vpc)]
    return base


cidr_pk = st.one_of(st.sampled_from([Pk("cidr", k) for k in ("hub-0", "app-0", "app-1", "hr-0")]), odd_pk, hostile)
vpc_pk = st.one_of(st.sampled_from([Pk("vpc", k) for k in ("hub", "app", "hr")]), odd_pk, hostile)
VPC_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "is_services_vpc": st.one_of(st.sampled_from(["on", "", "off"]), hostile),
    "owners": some_pk,
    "cidr_blocks-TOTAL_FORMS": management,
    "cidr_blocks-INITIAL_FORMS": management,
    "cidr_blocks-MIN_NUM_FORMS": management,
    "cidr_blocks-MAX_NUM_FORMS": management,
    "cidr_blocks-0-id": cidr_pk,
    "cidr_blocks-0-vpc": vpc_pk,
    "cidr_blocks-1-id": cidr_pk,
    "cidr_blocks-0-cidr": cidr,  # read-only in the admin: a posted block must change nothing
    "cidr_blocks-0-DELETE": st.sampled_from(["on", ""]),
}


@fuzz(60)
@given(vpc=st.sampled_from(sorted(VPC_BLOCKS)), data=st.data(), button=admin_button, enc=encoding)
def test_the_admin_vpc_form_never_answers_a_server_error(
    world: World, vpc: str, data: st.DataObject, button: list[tuple[str, str]], enc: str
) -> None:
    pairs = data.draw(fuzzed(vpc_base(vpc), VPC_FIELDS), label="pairs")
    admin_post(world, f"/admin/requests_app/vpc/{world.value(Pk('vpc', vpc))}/change/", pairs, button, enc)


webhook_url = st.one_of(
    st.sampled_from(
        [
            "https://hooks.example.com/x",
            "https://metadata.example.com/",
            "http://127.0.0.1:9/hook",
            "https://[::1]/",
            "https://10.0.0.1/",
            "https://169.254.169.254/latest/meta-data/",
            "https://hooks.example.com:0/",
            "https://hooks.example.com:99999/",
            "https://hooks.example.com:-1/",
            "https://user:pa%00ss@hooks.example.com/",
            "https://us\u00e9r:p\u00e4ss@hooks.example.com/",
            "ftp://example.com/",
            "file:///etc/passwd",
            "hooks.example.com/x",
            "https://\u2603.example/",
            "https://xn--n3h.example/",
            "https://" + "a" * 64 + ".example/",
            "https://" + "a." * 200 + "example/",
            "https://hooks.example.com/" + "x" * 3000,
            "https://hooks.example.com/\u00e9?q=\u00e9#\u00e9",
            "https://%00/",
            "https://exa mple.com/",
            "http://0x7f.1/",
            "http://2130706433/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "https://hooks.example.com\\@evil.example/",
            "https://hooks.example.com./",
        ]
    ),
    st.builds(
        lambda scheme, host, path: f"{scheme}://{host}/{path}",
        st.sampled_from(["http", "https", "HTTPS", "gopher"]),
        st.one_of(
            st.ip_addresses().map(lambda ip: f"[{ip}]" if ip.version == 6 else str(ip)),
            st.from_regex(r"\A[a-z0-9.-]{1,30}\Z"),
        ),
        st.text(max_size=20),
    ),
    hostile,
)
events_json = st.one_of(
    st.sampled_from(
        [
            '["*"]',
            '["peering_request.*"]',
            '["peering_request.approved"]',
            "[]",
            '"*"',
            "[1]",
            '[""]',
            '["nope.nothing"]',
            '{"a": 1}',
            "null",
            '["*", "*"]',
            '["' + "a" * 10_000 + '"]',
            '["*\\u0000"]',
        ]
    ),
    st.lists(
        st.one_of(st.sampled_from(["*", "peering_request.*", "peering_request.active"]), st.text(max_size=30)),
        max_size=4,
    ).map(json.dumps),
    regions_json,
)
WEBHOOK_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "url": webhook_url,
    "events": events_json,
    "active": st.one_of(st.sampled_from(["on", ""]), hostile),
}


@fuzz(80)
@given(
    change=st.booleans(),
    pairs=fuzzed(
        {"url": ["https://hooks.example.com/x"], "events": ['["peering_request.*"]'], "active": ["on"]},
        WEBHOOK_FIELDS,
    ),
    button=admin_button,
    enc=encoding,
)
def test_the_admin_webhook_form_never_answers_a_server_error(
    world: World, change: bool, pairs: list[tuple[str, Any]], button: list[tuple[str, str]], enc: str
) -> None:
    path = (
        f"/admin/requests_app/webhook/{world.value(Pk('webhook', 'hook'))}/change/"
        if change
        else "/admin/requests_app/webhook/add/"
    )
    admin_post(world, path, pairs, button, enc)


# --- the admin's list pages: search box, filters, ordering, page -------------------------------------------
ADMIN_LISTS = [
    "vpc",
    "peeringrequest",
    "auditevent",
    "notification",
    "webhookdelivery",
    "apitoken",
    "department",
    "awsaccount",
    "webhook",
    "routetable",
    "observedpeering",
]
ADMIN_LIST_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "q": st.one_of(st.sampled_from(["hub", "vpc-", "INC", "%", "_"]), hostile),
    "o": st.one_of(st.sampled_from(["1", "-1", "1.2", "99", "x", "-"]), hostile),
    "p": st.one_of(st.sampled_from(["0", "1", "2", "-1"]), hostile),
    "status__exact": st.one_of(st.sampled_from([s.value for s in Status]), hostile),
    "is_services_vpc__exact": st.one_of(st.sampled_from(["0", "1"]), hostile),
    "region": st.one_of(st.just("us-east-1"), hostile),
    "account__department__id__exact": st.one_of(odd_pk, hostile),
    "e": hostile,
}


@fuzz(60)
@given(
    model=st.sampled_from(ADMIN_LISTS),
    params=fuzzed({"q": ["hub"]}, ADMIN_LIST_FIELDS),
)
def test_the_admin_list_searches_and_filters_never_answer_a_server_error(
    world: World, model: str, params: list[tuple[str, Any]]
) -> None:
    browser = world.browser("root")
    with rolled_back():
        browser.get_raw(f"/admin/requests_app/{model}/", urlencode(params))
