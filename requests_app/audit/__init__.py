"""The audit trail: every state change and AWS call, hash-chained, keyed and anchored.

`chain` appends and verifies events and signs anchors; `exports` writes them out for auditors.
The names other modules use are re-exported here (`from requests_app import audit`).
"""

from requests_app.audit.actions import AuditAction
from requests_app.audit.chain import (
    CANONICAL_KEYS,
    GENESIS,
    Anchor,
    AnchorRefused,
    ChainReport,
    anchor,
    anchor_event,
    anchor_file,
    anchor_payload,
    canonical_fields,
    canonical_payload,
    chain_key,
    chain_keys,
    compute_hash,
    derive_chain_key,
    known_anchors,
    publish_anchor,
    read_anchor,
    record,
    sign_anchor,
    verify_chain,
)
from requests_app.audit.exports import FORMULA_PREFIXES, export_csv, export_jsonl

__all__ = [
    "CANONICAL_KEYS",
    "FORMULA_PREFIXES",
    "GENESIS",
    "Anchor",
    "AnchorRefused",
    "AuditAction",
    "ChainReport",
    "anchor",
    "anchor_event",
    "anchor_file",
    "anchor_payload",
    "canonical_fields",
    "canonical_payload",
    "chain_key",
    "chain_keys",
    "compute_hash",
    "derive_chain_key",
    "export_csv",
    "export_jsonl",
    "known_anchors",
    "publish_anchor",
    "read_anchor",
    "record",
    "sign_anchor",
    "verify_chain",
]
