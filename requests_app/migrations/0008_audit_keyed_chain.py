"""Keyed audit hashes: a `keyed` flag on each event, and the database's copy of chain anchors.

The flag is added with default False, so every event already written (a plain SHA-256) is marked
unkeyed, and then its default becomes True for new rows. Neither step updates a row: PostgreSQL
adds a column with a constant default without touching the rows (its append-only trigger, which
refuses UPDATE, does not fire), and SQLite copies the table. Old rows are never rehashed: that
would need an UPDATE, and a rehash by the portal would look exactly like the attack it defends
against. They stay plain SHA-256, protected by anchors (`manage.py anchor_audit`).
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("requests_app", "0007_network_model")]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="keyed",
            field=models.BooleanField(default=False),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="keyed",
            field=models.BooleanField(default=True),
        ),
        migrations.CreateModel(
            name="AuditAnchor",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("version", models.PositiveSmallIntegerField(default=1)),
                ("last_event_id", models.BigIntegerField(blank=True, null=True)),
                ("head_hash", models.CharField(max_length=64)),
                ("count", models.PositiveBigIntegerField()),
                ("at", models.CharField(max_length=40)),
                ("signature", models.CharField(max_length=64, unique=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
            ],
            options={"ordering": ["-id"]},
        ),
    ]
