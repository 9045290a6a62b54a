"""The account forms never answer a server error: the login pages (the portal's and the admin's),
both password change pages, password reset and the reset link's new-password form."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from django.contrib.auth.tokens import default_token_generator
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from hypothesis import given
from hypothesis import strategies as st

from tests.web.form_fuzz.strategies import encoding, fuzz, fuzzed, hostile, path_part, post, weighted
from tests.web.form_fuzz.world import PASSWORD, REQUEST, Browser, World, rolled_back

pytestmark = [
    pytest.mark.django_db,
    # Login counters are keyed by the user name as typed; memcached would refuse such keys, the
    # portal's caches (Redis, files) do not. Not a server error: not this file's business.
    pytest.mark.filterwarnings("ignore::django.core.cache.backends.base.CacheKeyWarning"),
]


# --- logging in, changing and resetting a password ---------------------------------------------------------
username = st.one_of(
    st.sampled_from(["fiona", "FIONA", " fiona", "fiona ", "root", "nina", "nobody", "ghost"]), hostile
)
password = st.one_of(st.just(PASSWORD), hostile)
next_value = st.one_of(
    st.sampled_from(
        [
            "/",
            "/requests/new/",
            "https://evil.example/",
            "//evil.example",
            "/\\evil.example",
            "javascript:alert(1)",
            "/?q=%00",
            "/audit/?actor=%00",
            "/inventory/peerings/%00/adopt/",
            f"/requests/{REQUEST['pending']}/",
        ]
    ),
    hostile,
)
LOGIN_FIELDS: dict[str, st.SearchStrategy[Any]] = {"username": username, "password": password, "next": next_value}


@fuzz(100)
@given(
    url=st.sampled_from(["/accounts/login/", "/accounts/login/", "/admin/login/"]),
    pairs=fuzzed({"username": ["fiona"], "password": [PASSWORD], "next": []}, LOGIN_FIELDS),
    query_next=weighted((2, st.none()), (1, next_value)),
    enc=encoding,
)
def test_the_login_forms_never_answer_a_server_error(
    world: World, url: str, pairs: list[tuple[str, Any]], query_next: str | None, enc: str
) -> None:
    browser = Browser()
    path = url if query_next is None else f"{url}?{urlencode({'next': query_next})}"
    with rolled_back():
        post(browser, path, pairs, page=url, enc=enc)


new_password = st.one_of(st.sampled_from(["a-much-longer-passphrase-7", PASSWORD, "fiona", "12345678"]), hostile)
PASSWORD_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "old_password": password,
    "new_password1": new_password,
    "new_password2": new_password,
}
GOOD_CHANGE = {
    "old_password": [PASSWORD],
    "new_password1": ["a-much-longer-passphrase-7"],
    "new_password2": ["a-much-longer-passphrase-7"],
}


@fuzz(80)
@given(
    url=st.sampled_from(["/accounts/password_change/", "/admin/password_change/"]),
    pairs=fuzzed(GOOD_CHANGE, PASSWORD_FIELDS),
    enc=encoding,
)
def test_the_password_change_forms_never_answer_a_server_error(
    world: World, url: str, pairs: list[tuple[str, Any]], enc: str
) -> None:
    with rolled_back():
        # Inside the example: a successful change cycles the session, and the rollback forgets the new one.
        browser = Browser(world.users["root" if url.startswith("/admin/") else "fiona"])
        post(browser, url, pairs, page=url, enc=enc)


email = st.one_of(
    st.sampled_from(["fiona@example.com", "FIONA@EXAMPLE.COM", " fiona@example.com", "ghost@example.com"]),
    st.emails(),
    hostile,
)


@fuzz(80)
@given(
    pairs=fuzzed({"email": ["fiona@example.com"]}, {"email": email}),
    enc=encoding,
    confirm=st.one_of(
        st.none(),
        st.tuples(
            st.one_of(st.just("fiona"), st.just("ghost"), hostile),
            weighted((2, st.just("valid")), (1, hostile)),
            fuzzed(
                {"new_password1": ["a-much-longer-passphrase-7"], "new_password2": ["a-much-longer-passphrase-7"]},
                {"new_password1": new_password, "new_password2": new_password},
            ),
        ),
    ),
)
def test_the_password_reset_forms_never_answer_a_server_error(
    world: World, pairs: list[tuple[str, Any]], enc: str, confirm: tuple[str, str, list[tuple[str, Any]]] | None
) -> None:
    browser = Browser()
    with rolled_back():
        if confirm is None:
            post(browser, "/accounts/password_reset/", pairs, page="/accounts/password_reset/", enc=enc)
            return
        # The link from the e-mail, then the new-password form it leads to.
        who, token, new_passwords = confirm
        user = world.users.get(who)
        uid = urlsafe_base64_encode(force_bytes(user.pk)) if user else (path_part(who) or "x")
        if token == "valid" and user is not None:
            token = default_token_generator.make_token(user)
        first = browser.get(f"/accounts/reset/{uid}/{path_part(token) or 'x'}/", follow=False)
        target = first["Location"] if first.status_code == 302 else f"/accounts/reset/{uid}/set-password/"
        post(browser, target, new_passwords, page="/accounts/password_reset/", enc=enc)
