"""The IAM documents `manage.py iam_policy` prints, checked against independent sources.

- parliament (an IAM linter) finds nothing in them beyond its two documented false positives;
- AWS's authorization data for EC2, as policy_sentry ships it: every call the portal makes is
  granted on every resource type AWS requires for it, and every condition key is one AWS
  evaluates for that action and resource;
- each side grants exactly the calls that side makes (requests_app/peering/saga/): the
  accepter never rejects or deletes, the requester never accepts;
- peers are limited to the registered accounts' VPCs, resources to the account's own, by
  account-scoped ARNs, and the documents fit IAM's size limits with many accounts and regions;
- the command refuses to print a document with a placeholder principal or with no accounts.

The documents depend only on account rows, so these tests build rows with the ORM; no sandbox.
"""

from __future__ import annotations

import fnmatch
import io
import json
import re
from collections.abc import Iterator
from typing import Any

import parliament
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.test import override_settings
from parliament.finding import Finding
from policy_sentry.querying.actions import get_privilege_info

from requests_app.aws import iam
from requests_app.management.demo import ACCOUNTS, DEPARTMENTS
from requests_app.models import AwsAccount, Department, Vpc
from tests.fixtures import ROOT

PRINCIPAL = "arn:aws:iam::999999999999:role/peering-portal"
SIDES = ("requester_side_policy", "accepter_side_policy")
READ_ACTIONS = {
    "ec2:DescribeVpcs",
    "ec2:DescribeVpcAttribute",
    "ec2:DescribeRouteTables",
    "ec2:DescribeVpcPeeringConnections",
}
# What each side's account calls, read off requests_app/peering/saga/: the requester creates
# (tagging the connection in the same call), sets its DNS option, routes in its own tables and,
# at teardown, deletes the connection; the accepter accepts, sets its DNS option and routes. The
# inventory sync and the reconciler read every account.
REQUESTER_CALLS = {
    "ec2:CreateVpcPeeringConnection",
    "ec2:CreateTags",
    "ec2:ModifyVpcPeeringConnectionOptions",
    "ec2:DeleteVpcPeeringConnection",
    "ec2:CreateRoute",
    "ec2:DeleteRoute",
} | READ_ACTIONS
ACCEPTER_CALLS = {
    "ec2:AcceptVpcPeeringConnection",
    "ec2:ModifyVpcPeeringConnectionOptions",
    "ec2:CreateRoute",
    "ec2:DeleteRoute",
} | READ_ACTIONS


# === helpers =======================================================================================
def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _actions(statement: dict[str, Any]) -> list[str]:
    return _as_list(statement.get("Action", []))


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _register(account_id: str, department: Department, regions: list[str], role_arn: str | None = None) -> AwsAccount:
    return AwsAccount.objects.create(
        account_id=account_id,
        name=f"account-{account_id}",
        department=department,
        role_arn=role_arn or f"arn:aws:iam::{account_id}:role/PeeringPortalRole",
        regions=regions,
    )


def _demo_accounts() -> dict[str, AwsAccount]:
    """The README's four accounts, with their VPCs as inventory rows (fake ids; AWS is never asked)."""
    departments = {slug: Department.objects.create(slug=slug, name=name) for slug, name in DEPARTMENTS.items()}
    accounts = {}
    for spec in ACCOUNTS:
        account = _register(spec.account_id, departments[spec.department], spec.regions, spec.role_arn)
        for number, vpc in enumerate(spec.vpcs):
            Vpc.objects.create(
                vpc_id=f"vpc-{spec.account_id}{number:05d}",
                account=account,
                region=vpc.region,
                name=vpc.name,
                is_services_vpc=vpc.services,
            )
        accounts[spec.account_id] = account
    return accounts


def _documents(account_id: str, principal: str = PRINCIPAL) -> dict[str, Any]:
    out = io.StringIO()
    call_command("iam_policy", "--account", account_id, "--json", "--portal-principal", principal, stdout=out)
    return json.loads(out.getvalue())


def _granted(document: dict[str, Any]) -> set[str]:
    return {action for statement in document["Statement"] for action in _actions(statement)}


def _ec2_privilege(action: str) -> dict[str, Any]:
    service, name = action.split(":")
    return get_privilege_info(service, name)


def _arn_format_regex(arn_format: str) -> re.Pattern[str]:
    """`arn:${Partition}:ec2:${Region}:${Account}:vpc/${VpcId}` as a pattern that a granted ARN
    covering every such resource matches: a placeholder takes any value, `*` included; the rest
    (service, resource type) must be spelled out."""
    parts = re.split(r"(\$\{\w+\})", arn_format)
    return re.compile("".join("[^:]+" if p.startswith("${") else re.escape(p) for p in parts))


def _resource_type(action: str, resource: str) -> str:
    """The resource type of `action` that the granted ARN names ('' for Resource "*")."""
    if resource == "*":
        return ""
    privilege = _ec2_privilege(action)
    matches = [
        kind
        for kind in privilege["resource_types"]
        if kind and _arn_format_regex(privilege["service_resources"][kind]["arn"]).fullmatch(resource)
    ]
    assert len(matches) == 1, f"{action} on {resource}: resource types {matches}"
    return matches[0]


def _key_allowed(key: str, supported: list[str]) -> bool:
    return any(re.fullmatch(re.sub(r"\\\$\\\{\w+\\\}", ".+", re.escape(s)), key) for s in supported)


# === parliament ====================================================================================
def _lint(document: dict[str, Any]) -> list[Finding]:
    return parliament.analyze_policy_string(json.dumps(document), include_community_auditors=True).findings


def _covered_elsewhere(document: dict[str, Any], action: str, required_format: str) -> bool:
    return any(
        action in _actions(s) and any(fnmatch.fnmatchcase(r, required_format) for r in _as_list(s["Resource"]))
        for s in document["Statement"]
    )


@pytest.mark.django_db
def test_parliament_finds_nothing_but_its_documented_false_positives() -> None:
    accounts = _demo_accounts()
    for account_id, account in accounts.items():
        documents = _documents(account_id)

        # 1. Split statements (parliament issue #3, https://github.com/duo-labs/parliament/issues/3):
        # parliament wants every resource type an action requires in each statement that grants
        # it. The create and the accept are authorised on two resources (a VPC and the
        # connection), and the condition that limits the peer (ec2:AccepterVpc, ec2:RequesterVpc)
        # exists only for the connection; on the VPC it would be missing and deny. So AWS's own
        # examples, and these documents, grant each in two statements. Tolerated: exactly those
        # two findings per side, and only where a sibling statement grants the missing resource.
        for side, action in (
            ("requester_side_policy", "ec2:CreateVpcPeeringConnection"),
            ("accepter_side_policy", "ec2:AcceptVpcPeeringConnection"),
        ):
            document = documents[side]
            found = set()
            for finding in _lint(document):
                assert finding.issue == "RESOURCE_MISMATCH", (side, finding.issue, finding.detail)
                for missing in finding.detail:
                    assert _covered_elsewhere(document, missing["action"], missing["required_format"]), missing
                    found.add((missing["action"], missing["required_format"]))
            assert found == {
                (action, "arn:*:ec2:*:*:vpc/*"),
                (action, "arn:*:ec2:*:*:vpc-peering-connection/*"),
            }, side

        # 2. A trust policy has no Resource (IAM refuses one there), and parliament has no
        # trust-policy mode (issue #229, https://github.com/duo-labs/parliament/issues/229): its
        # one finding is that. To lint the rest (principal, condition key), the same statement is
        # linted as what it means: assuming this role.
        trust = documents["trust_policy"]
        assert [(f.issue, f.detail) for f in _lint(trust)] == [
            ("MALFORMED", "Statement contains neither Resource nor NotResource")
        ]
        as_identity = {**trust, "Statement": [{**s, "Resource": account.role_arn} for s in trust["Statement"]]}
        # 3. The community auditor that lists every call returning credentials names
        # sts:AssumeRole; assuming the roles is what the portal's identity is for.
        credentials = [("CREDENTIALS_EXPOSURE", {"actions": ["sts:assumerole"], "filepath": None})]
        assert [(f.issue, f.location) for f in _lint(as_identity)] == credentials
        assert [(f.issue, f.location) for f in _lint(documents["portal_identity_policy"])] == credentials


# === AWS's authorization data (policy_sentry) ======================================================
@pytest.mark.django_db
def test_every_call_is_granted_on_every_resource_type_aws_requires_for_it() -> None:
    for account_id in _demo_accounts():
        documents = _documents(account_id)
        for side, calls in (("requester_side_policy", REQUESTER_CALLS), ("accepter_side_policy", ACCEPTER_CALLS)):
            statements = documents[side]["Statement"]
            for action in sorted(calls):
                privilege = _ec2_privilege(action)
                required = [kind for kind, entry in privilege["resource_types"].items() if entry["required"]]
                granted = [r for s in statements if action in _actions(s) for r in _as_list(s["Resource"])]
                assert granted, f"{side}: {action} is not granted"
                for kind in required:
                    pattern = _arn_format_regex(privilege["service_resources"][kind]["arn"])
                    assert any(r == "*" or pattern.fullmatch(r) for r in granted), (
                        f"{side}: {action} requires a {kind} ({pattern.pattern}); granted only {granted}"
                    )
                if not required:
                    # Creating tags names no required resource (the resource is whatever is being
                    # tagged): ours are granted on the connection the create makes.
                    assert action == "ec2:CreateTags" or granted == ["*"], (side, action, granted)


@pytest.mark.django_db
def test_resource_star_only_for_calls_that_cannot_be_limited_by_resource() -> None:
    for account_id in _demo_accounts():
        documents = _documents(account_id)
        for side in SIDES:
            for statement in documents[side]["Statement"]:
                if "*" not in _as_list(statement["Resource"]):
                    continue
                assert statement["Resource"] == "*"
                for action in _actions(statement):
                    kinds = [kind for kind in _ec2_privilege(action)["resource_types"] if kind]
                    assert not kinds, f"{side}: {action} supports {kinds} yet is granted on *"


@pytest.mark.django_db
def test_every_condition_key_is_one_aws_evaluates_for_that_action_and_resource() -> None:
    used = set()
    for account_id in _demo_accounts():
        documents = _documents(account_id)
        for side in SIDES:
            for statement in documents[side]["Statement"]:
                keys = [key for operator in statement.get("Condition", {}).values() for key in operator]
                for action in _actions(statement):
                    privilege = _ec2_privilege(action)
                    for resource in _as_list(statement["Resource"]):
                        kind = _resource_type(action, resource)
                        supported = (
                            privilege["resource_types"][kind]["condition_keys"]
                            + privilege["resource_types"][""]["condition_keys"]
                        )
                        for key in keys:
                            assert _key_allowed(key, supported), (
                                f"{side} {statement['Sid']}: {key} is not evaluated for {action} on {kind}"
                            )
                            used.add(key)
    tag = settings.PEERING_TAG_KEY
    assert used == {
        "ec2:AccepterVpc",
        "ec2:RequesterVpc",
        "ec2:CreateAction",
        f"aws:RequestTag/{tag}",
    }


# === what each side may do =========================================================================
@pytest.mark.django_db
def test_each_side_grants_exactly_the_calls_that_side_makes() -> None:
    for account_id in _demo_accounts():
        documents = _documents(account_id)
        requester, accepter = documents["requester_side_policy"], documents["accepter_side_policy"]
        assert _granted(requester) == REQUESTER_CALLS
        assert _granted(accepter) == ACCEPTER_CALLS
        # The accepter never rejects, and deletes only as the requester (at teardown).
        assert not _granted(accepter) & {"ec2:RejectVpcPeeringConnection", "ec2:DeleteVpcPeeringConnection"}
        assert "ec2:AcceptVpcPeeringConnection" not in _granted(requester)


def test_the_gateway_makes_no_ec2_call_the_policies_do_not_grant() -> None:
    # Guards the lists above against the code: a new boto3 call in the gateway needs IAM too.
    source = (ROOT / "requests_app" / "aws" / "gateway.py").read_text()
    operations = set(re.findall(r'_call\(\s*ec2,\s*"(\w+)"', source))
    calls = {"ec2:" + "".join(part.capitalize() for part in op.split("_")) for op in operations}
    assert "ec2:AcceptVpcPeeringConnection" in calls and len(calls) >= 10, calls
    assert calls <= REQUESTER_CALLS | ACCEPTER_CALLS, calls - (REQUESTER_CALLS | ACCEPTER_CALLS)


@pytest.mark.django_db
def test_peers_are_limited_to_the_registered_accounts_vpcs() -> None:
    _demo_accounts()
    registered = [f"arn:aws:ec2:*:{a}:vpc/*" for a in sorted(AwsAccount.objects.values_list("account_id", flat=True))]
    documents = _documents("222222222222")
    tag = settings.PEERING_TAG_KEY

    # The create: from own VPCs; the connection only to a registered account's VPC, and tagged.
    create = [
        s for s in documents["requester_side_policy"]["Statement"] if "ec2:CreateVpcPeeringConnection" in _actions(s)
    ]
    on_connection = [s for s in create if any(":vpc-peering-connection/" in r for r in _as_list(s["Resource"]))]
    on_vpc = [s for s in create if s not in on_connection]
    assert [s["Resource"] for s in on_vpc] == [["arn:aws:ec2:us-east-1:222222222222:vpc/*"]]
    (limited,) = on_connection
    assert limited["Condition"] == {
        "Null": {f"aws:RequestTag/{tag}": "false"},
        "ArnLike": {"ec2:AccepterVpc": registered},
    }

    # The accept: into own VPCs; only connections requested from a registered account's VPC.
    accept = [
        s for s in documents["accepter_side_policy"]["Statement"] if "ec2:AcceptVpcPeeringConnection" in _actions(s)
    ]
    (from_registered,) = [s for s in accept if "Condition" in s]
    assert from_registered["Condition"] == {"ArnLike": {"ec2:RequesterVpc": registered}}
    assert [s["Resource"] for s in accept if s is not from_registered] == [["arn:aws:ec2:us-east-1:222222222222:vpc/*"]]

    # A newly registered account is a peer once its policies are printed again.
    _register("555555555555", Department.objects.get(slug="finance"), ["us-east-1"])
    again = _documents("222222222222")
    assert "arn:aws:ec2:*:555555555555:vpc/*" in json.dumps(again["requester_side_policy"])


@pytest.mark.django_db
def test_policies_name_accounts_not_vpcs_so_a_new_vpc_needs_no_new_policy() -> None:
    accounts = _demo_accounts()
    before = _documents("111111111111")
    for side in SIDES:
        assert "vpc-1" not in json.dumps(before[side]), "a VPC listed by id"
    Vpc.objects.create(vpc_id="vpc-0new", account=accounts["111111111111"], region="us-east-1", name="new")
    Vpc.objects.filter(account=accounts["111111111111"]).exclude(vpc_id="vpc-0new").update(present_in_aws=False)
    after = _documents("111111111111")
    assert {k: after[k] for k in SIDES} == {k: before[k] for k in SIDES}


# === sizes =========================================================================================
@pytest.mark.django_db
def test_documents_stay_within_iams_size_limits_with_many_accounts_and_regions() -> None:
    department = Department.objects.create(slug="many", name="Many")
    regions = [
        *("us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1", "sa-east-1"),
        *("eu-west-1", "eu-west-2", "eu-west-3", "eu-central-1", "eu-north-1", "eu-south-1"),
        *("ap-southeast-1", "ap-southeast-2", "ap-northeast-1", "ap-northeast-2", "ap-south-1", "me-south-1"),
    ]
    for number in range(100):
        _register(f"{100000000000 + number:012d}", department, regions[:3])
    three_regions = _documents("100000000000")
    for key in (*SIDES, "portal_identity_policy"):
        assert iam.policy_size(three_regions[key]) <= iam.MANAGED_POLICY_MAX_CHARS, key
    assert iam.policy_size(three_regions["trust_policy"]) <= iam.TRUST_POLICY_MAX_CHARS
    assert ":us-east-2:100000000000:vpc/*" in json.dumps(three_regions["requester_side_policy"])

    # An account in very many regions: its own ARNs name every region (`*`) instead, as AWS's
    # "work within a specific account" example does, and the documents still fit.
    AwsAccount.objects.filter(account_id="100000000000").update(regions=regions)
    everywhere = _documents("100000000000")
    for key in SIDES:
        assert iam.policy_size(everywhere[key]) <= iam.MANAGED_POLICY_MAX_CHARS, key
        assert ":ec2:*:100000000000:vpc/*" in json.dumps(everywhere[key]), key

    # Past what one managed policy can name, the command says so rather than print it.
    for number in range(100, 200):
        _register(f"{100000000000 + number:012d}", department, regions[:1])
    with pytest.raises(CommandError, match="6144"):
        _documents("100000000000")


def test_policy_size_counts_characters_without_white_space() -> None:
    document: iam.Document = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow"}]}
    assert iam.policy_size(document) == len('{"Version":"2012-10-17","Statement":[{"Effect":"Allow"}]}')


# === refusing to print an unusable document ========================================================
@pytest.mark.django_db
@pytest.mark.parametrize(
    "principal",
    [
        "arn:aws:iam::<portal-account-id>:role/<portal-identity>",  # the settings' placeholder
        "",
        "peering-portal",
        "arn:aws:sts::999999999999:assumed-role/peering-portal/session",  # a session, not an identity
        "arn:aws:iam::99999999999:role/peering-portal",  # 11 digits
    ],
)
def test_iam_policy_refuses_a_principal_that_is_not_an_iam_arn(principal: str) -> None:
    _demo_accounts()
    with pytest.raises(CommandError, match=r"PORTAL_AWS_PRINCIPAL \(or pass --portal-principal\)"):
        _documents("222222222222", principal)


@pytest.mark.django_db
def test_iam_policy_refuses_the_placeholder_default() -> None:
    _demo_accounts()
    placeholder = "arn:aws:iam::<portal-account-id>:role/<portal-identity>"  # the built-in default
    with override_settings(PORTAL_AWS_PRINCIPAL=placeholder), pytest.raises(CommandError, match="PORTAL_AWS_PRINCIPAL"):
        call_command("iam_policy", "--account", "222222222222", stdout=io.StringIO())
    with override_settings(PORTAL_AWS_PRINCIPAL=PRINCIPAL):
        call_command("iam_policy", "--account", "222222222222", stdout=io.StringIO())


@pytest.mark.django_db
def test_iam_policy_refuses_with_no_accounts_or_an_unknown_one() -> None:
    with pytest.raises(CommandError, match="register an account first"):
        _documents("222222222222")
    _demo_accounts()
    with pytest.raises(CommandError, match="999999999999 is registered; register it first"):
        _documents("999999999999")


# === partitions ====================================================================================
@pytest.mark.django_db
def test_arns_use_the_partition_of_the_accounts_role() -> None:
    department = Department.objects.create(slug="gov", name="Gov")
    _register("777777777777", department, ["us-gov-west-1"], "arn:aws-us-gov:iam::777777777777:role/PeeringPortalRole")
    _register("888888888888", department, ["us-gov-west-1"], "arn:aws-us-gov:iam::888888888888:role/PeeringPortalRole")
    _register("222222222222", department, ["us-east-1"])  # commercial: never a peer of a GovCloud VPC
    documents = _documents("777777777777", "arn:aws-us-gov:iam::999999999999:role/peering-portal")
    arns = [s for key in (*SIDES, "portal_identity_policy") for s in _strings(documents[key]) if s.startswith("arn:")]
    assert arns and all(a.startswith("arn:aws-us-gov:") for a in arns), arns
    assert "arn:aws-us-gov:ec2:*:888888888888:vpc/*" in arns
    assert not any(":222222222222:" in a for a in arns)

    # A commercial-partition portal cannot assume a GovCloud role: refuse the trust policy.
    with pytest.raises(CommandError, match="different AWS partitions"):
        _documents("777777777777", PRINCIPAL)


# === the annotated output ==========================================================================
@pytest.mark.django_db
def test_the_annotated_output_names_each_document_and_its_size() -> None:
    _demo_accounts()
    out = io.StringIO()
    call_command("iam_policy", "--account", "111111111111", "--portal-principal", PRINCIPAL, stdout=out)
    text = out.getvalue()
    for key in ("trust_policy", *SIDES, "portal_identity_policy"):
        assert re.search(rf"^# {key}: .*\(\d[\d,]* of IAM's [\d,]+ characters\)$", text, re.MULTILINE), key


# === least privilege, bound to the ExternalId (once section 7 of the security tests) ================
@pytest.mark.django_db
def test_iam_policy_is_least_privilege_and_bound_to_the_accounts_external_id() -> None:
    _demo_accounts()
    tag = settings.PEERING_TAG_KEY
    registered = set(AwsAccount.objects.values_list("account_id", flat=True))
    external_ids = set()
    for account_id in ("222222222222", "111111111111"):
        documents = _documents(account_id)
        account = AwsAccount.objects.get(account_id=account_id)
        external_ids.add(account.external_id)

        # The trust policy: only the portal, only with this account's ExternalId.
        (trust,) = documents["trust_policy"]["Statement"]
        assert trust["Effect"] == "Allow" and trust["Action"] == "sts:AssumeRole"
        assert trust["Principal"] == {"AWS": PRINCIPAL}
        assert trust["Condition"] == {"StringEquals": {"sts:ExternalId": account.external_id}}
        assert account.external_id.startswith("pp-") and len(account.external_id) >= 32

        creates_on_peerings = []
        for kind in SIDES:
            for statement in documents[kind]["Statement"]:
                assert statement["Effect"] == "Allow"
                actions = _actions(statement)
                assert all(":" in a and "*" not in a for a in actions), statement  # no wildcard actions
                resources = _as_list(statement["Resource"])
                if set(actions) <= READ_ACTIONS and resources == ["*"]:
                    continue  # these Describe calls cannot be limited by resource
                where = f"{kind} {statement.get('Sid')}"
                assert "*" not in resources, f"{where}: a mutating action on Resource *"
                # Resources are the account's own. (The old test also required every ARN in the
                # conditions to be the account's: wrong for the peer limits, which name the other
                # registered accounts on purpose.)
                assert all(f":{account_id}:" in r for r in resources), f"{where}: another account's resource"
                for arn in _strings(statement.get("Condition", {})):
                    if arn.startswith("arn:"):
                        assert arn.split(":")[4] in registered, f"{where}: an unregistered account {arn}"
                # The old test required VPCs listed one by one (the VPCs in the inventory): that
                # broke on any VPC created after the policy and outgrew IAM's size limit at about
                # 14 VPCs. Account-scoped ARNs cover the account's VPCs and nothing else.
                assert not any(re.search(r":vpc/vpc-", a) for a in _strings(statement)), where
                if actions == ["ec2:CreateTags"]:
                    # Tagging is allowed only as part of a create, which the create statements limit.
                    assert statement["Condition"] == {
                        "StringEquals": {"ec2:CreateAction": "CreateVpcPeeringConnection"}
                    }, where
                    continue
                if "ec2:CreateVpcPeeringConnection" in actions and any(
                    ":vpc-peering-connection/" in r for r in resources
                ):
                    creates_on_peerings.append(statement)
        # Creating a connection needs the portal's request-id tag on it.
        assert creates_on_peerings, "no statement limits the connection a create makes"
        for statement in creates_on_peerings:
            assert statement["Condition"].get("Null", {}).get(f"aws:RequestTag/{tag}") == "false", statement

        # The portal's own identity may assume the registered roles and nothing else.
        (identity,) = documents["portal_identity_policy"]["Statement"]
        assert identity["Action"] == "sts:AssumeRole"
        assert set(identity["Resource"]) == set(AwsAccount.objects.values_list("role_arn", flat=True))
    assert len(external_ids) == 2, "two accounts share an ExternalId"

    with pytest.raises(CommandError, match="999999999999"):
        _documents("999999999999")


def _json_documents(text: str) -> list[dict[str, Any]]:
    """Every JSON document in the ```json blocks of a Markdown text, in order."""
    decoder, documents = json.JSONDecoder(), []
    for block in re.findall(r"```json\n(.*?)```", text, re.DOTALL):
        position = 0
        while block[position:].strip():
            position += len(block[position:]) - len(block[position:].lstrip())
            document, position = decoder.raw_decode(block, position)
            documents.append(document)
    return documents


@pytest.mark.django_db
def test_the_docs_print_what_the_command_prints_and_explain_every_statement() -> None:
    _demo_accounts()
    text = (ROOT / "docs" / "aws-setup.md").read_text()
    finance, services = _documents("222222222222"), _documents("111111111111")
    trust = json.loads(
        json.dumps(finance["trust_policy"]).replace(
            AwsAccount.objects.get(account_id="222222222222").external_id, "pp-0123456789abcdef0123456789abcdef"
        )
    )  # the ExternalId is random per registration; the docs show one
    assert _json_documents(text) == [
        finance["requester_side_policy"],
        services["accepter_side_policy"],
        trust,
        finance["portal_identity_policy"],
    ]
    sids = {s["Sid"] for key in ("trust_policy", *SIDES, "portal_identity_policy") for s in finance[key]["Statement"]}
    for sid in sids:
        assert f"`{sid}`" in text, f"docs/aws-setup.md does not explain {sid}"
