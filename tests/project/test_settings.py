"""The settings as shipped: production refuses the development secret key, docker-compose.yml's
environment configures the settings it names, and a worker refuses task limits above the broker's
visibility timeout.

(Production settings end to end, `check --deploy` and the cookies: tests/project/test_deploy.py.)"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.fixtures import ROOT


def test_production_settings_refuse_the_development_secret_key() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env={"DJANGO_SETTINGS_MODULE": "peering_portal.settings", "DJANGO_DEBUG": "0", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_docker_compose_environment_configures_the_settings_it_names() -> None:
    """docker-compose.yml cannot run here, so check what it promises: its env loads the settings."""
    import yaml

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"web", "worker", "beat", "postgres", "redis", "sandbox"} <= set(services)
    assert "peering_portal.wsgi:application" in services["web"]["command"]
    assert services["worker"]["command"].startswith("celery -A peering_portal worker")
    # Interpolate ${VAR:-default} as compose does, with nothing set in the environment.
    env = {
        k: re.sub(r"\$\{\w+(?::-([^}]*)|:\?[^}]*)?\}", lambda m: m.group(1) or "", str(v))
        for k, v in services["worker"]["environment"].items()
    }
    env["DJANGO_SECRET_KEY"] = "x" * 50  # compose requires the operator to set one
    env["DJANGO_SETTINGS_MODULE"] = "peering_portal.settings"  # set by the image
    env["PATH"] = "/usr/bin:/bin"
    env["PORTAL_VAR_DIR"] = str(ROOT / "var" / "compose-check")
    probe = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.DATABASES['default']['ENGINE'], s.DATABASES['default']['HOST'], s.CELERY_BROKER_URL, s.DEBUG)"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["django.db.backends.postgresql", "postgres", "redis://redis:6379/0", "False"]


def test_a_worker_refuses_to_start_with_task_limits_above_the_visibility_timeout(settings) -> None:
    from django.core.exceptions import ImproperlyConfigured

    from peering_portal.celery import _check_time_limits

    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 600}
    settings.CELERY_TASK_TIME_LIMIT = 900
    with pytest.raises(ImproperlyConfigured, match=r"\(900s\) must be below the broker's visibility timeout \(600s\)"):
        _check_time_limits()
    settings.CELERY_TASK_TIME_LIMIT = 300
    _check_time_limits()  # fine: a task ends before Redis would hand it to another worker
