"""Health check and production settings."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

BASE_DIR = Path(__file__).resolve().parent.parent


@pytest.mark.django_db
def test_healthz_answers_200_without_credentials_when_the_database_answers(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "embedded"}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
def test_healthz_answers_503_when_the_database_does_not(client, monkeypatch):
    def broken_cursor(*args, **kwargs):
        from django.db import OperationalError

        raise OperationalError("connection refused")

    # The only thing replaced is the connection to an unreachable server.
    monkeypatch.setattr(connection, "cursor", broken_cursor)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["database"] == "unavailable"


# Variables the test run itself sets (pytest-env, the browser harness) that no deployment has.
TEST_ONLY_VARIABLES = {
    "SECURE_SSL_REDIRECT",
    "SECURE_COOKIES",
    "STATICFILES_STORAGE",
    "CACHE_URL",
    "DEBUG",
    "SECRET_KEY",
    "DJANGO_ALLOW_ASYNC_UNSAFE",
}


def run_manage(*args, **env_overrides):
    """Run manage.py in a fresh process with the environment a deployment would have."""
    env = {k: v for k, v in os.environ.items() if k not in TEST_ONLY_VARIABLES}
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, capture_output=True, text=True
    )


def test_deploy_check_passes_with_production_settings():
    result = run_manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="crm.example.com",
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_production_refuses_to_start_without_a_secret_key():
    result = run_manage("check", DEBUG="false", SECRET_KEY="")
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_development_key_only_with_debug_on():
    result = run_manage("check", DEBUG="true", SECRET_KEY="")
    assert result.returncode == 0, result.stderr


def test_the_wsgi_application_freezes_what_startup_made_out_of_the_garbage_collector():
    """A server process loads every view and then freezes its startup objects (crm_project.runtime):
    a full collection during a large answer no longer walks the ~200,000 of them."""
    env = {k: v for k, v in os.environ.items() if k not in TEST_ONLY_VARIABLES}
    env.update(DEBUG="false", SECRET_KEY=secrets.token_urlsafe(50), CRM_EMBEDDED_SCHEDULER="false")
    probe = (
        "import gc, sys; from crm_project.wsgi import application; "
        "print(gc.get_freeze_count(), 'crm.api.views' in sys.modules, 'sales.admin' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=BASE_DIR, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    frozen, views_loaded, admin_loaded = result.stdout.split()
    assert int(frozen) > 50_000
    assert views_loaded == admin_loaded == "True"
