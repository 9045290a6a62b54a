"""The GET forms never answer a server error: the audit filters and exports, the request list's
filters and the request page's watch poll."""

from __future__ import annotations

from datetime import UTC, timedelta
from datetime import timezone as dt_timezone
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from requests_app.domain.status import Status
from tests.web.form_fuzz.strategies import fuzz, fuzzed, hostile, known_request, weighted
from tests.web.form_fuzz.world import World, rolled_back

pytestmark = [
    pytest.mark.django_db,
    # Login counters are keyed by the user name as typed; memcached would refuse such keys, the
    # portal's caches (Redis, files) do not. Not a server error: not this file's business.
    pytest.mark.filterwarnings("ignore::django.core.cache.backends.base.CacheKeyWarning"),
]


# --- GET forms: the audit filters and exports, the request list's filters, the watch poll ---------------
def iso(dt: Any) -> str:
    return dt.isoformat()


OFFSETS = [UTC, dt_timezone(timedelta(hours=14)), dt_timezone(-timedelta(hours=12, minutes=59))]
datetime_text = st.one_of(
    st.sampled_from(
        [
            "2024-01-01T00:00",
            "2024-01-01 00:00:00",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-01:00",
            "0001-01-01T00:00",
            "9999-12-31T23:59:59.999999",
            "2024-02-30T00:00",
            "2024-01-01T25:00",
            "2024-13-01",
            "now",
            "1704067200",
            "2024-01-01T00:00:00+99:00",
            "2024-01-01T00:00Z",
            "+002024-01-01",
        ]
    ),
    st.datetimes().map(iso),
    st.datetimes(timezones=st.sampled_from(OFFSETS)).map(iso),
    hostile,
)
AUDIT_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "request": st.one_of(known_request, st.uuids().map(str), hostile),
    "actor": st.one_of(st.sampled_from(["fiona", "nina", "root", "worker", "reconciler", "FIO"]), hostile),
    "action": st.one_of(st.sampled_from(["request.", "request.filed", "account.synced"]), hostile),
    "since": datetime_text,
    "until": datetime_text,
    "page": st.one_of(st.sampled_from(["1", "2", "last", "0", "-1", "999999999999999999999"]), hostile),
}
GOOD_AUDIT = {"request": [], "actor": ["fi"], "action": ["request."], "since": ["2000-01-01T00:00"], "until": []}


@fuzz(120)
@given(
    who=st.sampled_from(["fiona", "nina", "harry", "root", "nobody"]),
    path=st.sampled_from(["/audit/", "/audit/export.csv", "/audit/export.jsonl"]),
    params=fuzzed(GOOD_AUDIT, AUDIT_FIELDS),
    raw=st.one_of(
        st.none(),
        st.none(),
        st.none(),
        st.sampled_from(
            [
                "actor=%00",
                "actor=%ff%fe",
                "since=%00",
                "request=%00",
                "action=%E2%80%AE",
                "actor=a&actor=b&actor=%0d%0a",
                "&&==&",
                "page=%00",
            ]
        ),
    ),
)
def test_the_audit_filters_and_exports_never_answer_a_server_error(
    world: World, who: str, path: str, params: list[tuple[str, Any]], raw: str | None
) -> None:
    browser = world.browser(who)
    with rolled_back():
        browser.get_raw(path, urlencode(params) if raw is None else raw)


HOME_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "status": st.one_of(st.sampled_from([s.value for s in Status]), hostile),
    "q": st.one_of(st.sampled_from(["INC", "spoke", "pcx-", "%", "_"]), hostile),
    "page": st.one_of(st.sampled_from(["1", "2", "last", "0"]), hostile),
}


@fuzz(80)
@given(
    who=st.sampled_from(["fiona", "nina", "root"]),
    params=fuzzed({"status": ["pending_approval"], "q": ["INC"]}, HOME_FIELDS),
    watch=weighted((2, st.none()), (1, known_request)),
)
def test_the_request_list_filters_and_the_watch_poll_never_answer_a_server_error(
    world: World, who: str, params: list[tuple[str, Any]], watch: str | None
) -> None:
    browser = world.browser(who)
    with rolled_back():
        if watch is None:
            browser.get_raw("/", urlencode(params))
        else:  # the poll sends the status the page shows
            browser.get_raw(f"/requests/{watch}/watch/", urlencode([(k, v) for k, v in params if k != "q"]))
