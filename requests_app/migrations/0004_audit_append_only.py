"""On PostgreSQL, the database itself refuses to change or delete an audit event.

The model refuses too (AuditEvent.save/delete), but that stops only the ORM; this trigger also
stops raw SQL, a shell, or another program with the portal's credentials. (On SQLite the model's
refusal is what there is.) Disabling it takes `ALTER TABLE`, which a table owner can do: give
the portal a role that does not own the table in production.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION requests_app_auditevent_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only: % on requests_app_auditevent is refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER requests_app_auditevent_append_only
    BEFORE UPDATE OR DELETE ON requests_app_auditevent
    FOR EACH ROW EXECUTE FUNCTION requests_app_auditevent_append_only();
"""
DROP = """
DROP TRIGGER IF EXISTS requests_app_auditevent_append_only ON requests_app_auditevent;
DROP FUNCTION IF EXISTS requests_app_auditevent_append_only();
"""


def forwards(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)  # no parameters: the `%` is PL/pgSQL's


def backwards(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("requests_app", "0003_webhook_outbox_and_tokens")]
    operations = [migrations.RunPython(forwards, backwards)]
