"""The real worker sends the notifications: the requester is emailed when the peering is active (the
file-based mail backend, read back here)."""

from __future__ import annotations

import email
import email.header
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from requests_app.models import Notification
from tests.fixtures.clients import file_finance_request
from tests.fixtures.processes import WorkerProcess, wait_for_status
from tests.fixtures.world import DemoWorld

URL = "/api/v1/peering-requests/"


# --- the real worker ------------------------------------------------------------------------------
@pytest.fixture
def mail_worker(
    worker: WorkerProcess, worker_env: dict[str, str], tmp_path: Path
) -> Iterator[tuple[WorkerProcess, Path]]:
    """The session worker stopped; one that writes its mail to files takes its place."""
    worker.stop()
    mail_dir = tmp_path / "mail"
    mail_dir.mkdir()
    env = {
        **worker_env,
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(mail_dir),
    }
    mailer = WorkerProcess(env, tmp_path / "mail-worker.log", name="mail")
    mailer.start()
    yield mailer, mail_dir
    mailer.stop()
    if worker.proc is None or worker.proc.poll() is not None:
        worker.start()


def _mails(mail_dir: Path) -> list[email.message.Message]:
    """Every message the file backend wrote (several a file, each followed by a line of dashes)."""
    messages = []
    for path in sorted(mail_dir.iterdir()):
        for chunk in path.read_text().split("\n" + "-" * 79 + "\n"):
            if chunk.strip():
                messages.append(email.message_from_string(chunk.lstrip("\n")))
    return messages


def _subject(message: email.message.Message) -> str:
    """The Subject as a person reads it (a non-ASCII one travels as RFC 2047 encoded words)."""
    return str(email.header.make_header(email.header.decode_header(message["Subject"])))


def _text(message: email.message.Message) -> str:
    payload = message.get_payload(decode=True)
    return payload.decode(message.get_content_charset() or "utf-8") if isinstance(payload, bytes) else str(payload)


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_the_worker_emails_the_requester_when_the_peering_is_active(
    mail_worker: tuple[WorkerProcess, Path], demo_world: DemoWorld, api: Any
) -> None:
    _, mail_dir = mail_worker
    filed = file_finance_request(api, demo_world.vpcs, external_ref="INC0042")
    response = api("nina").post(f"{URL}{filed['id']}/approve/", {"comment": "ok"}, format="json")
    assert response.status_code == 200, response.json()
    done = wait_for_status(filed["id"], {"active", "failed"})
    assert done.status == "active", done.failure_reason

    deadline = time.monotonic() + 30
    rows = Notification.objects.filter(request_id=filed["id"])
    while rows.exclude(state=Notification.State.SENT).exists() and time.monotonic() < deadline:
        time.sleep(0.25)
    assert sorted(rows.values_list("event", "state")) == [
        ("request.active", "sent"),
        ("request.approved", "sent"),
        ("request.submitted", "sent"),
    ]

    to_fiona = [m for m in _mails(mail_dir) if m["To"] == "fiona@example.com"]
    active = [m for m in to_fiona if "is active" in _subject(m)]
    assert len(active) == 1, [_subject(m) for m in to_fiona]
    assert "INC0042" in _subject(active[0]) and "finance-app → services-use1" in _subject(active[0])
    body = _text(active[0])
    assert "Your peering request is active" in body and done.aws_peering_connection_id in body
    assert f"/requests/{filed['id']}/" in body
    to_owners = [m for m in _mails(mail_dir) if m["To"] == "nina@example.com, sam@example.com"]
    assert len(to_owners) == 1 and "INC0042" in _subject(to_owners[0])
