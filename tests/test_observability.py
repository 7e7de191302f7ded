"""Issue 24 item 6: the Prometheus endpoint (refused to anonymous callers; latency by view, queries,
Celery queues and task outcomes, outbox lag) and a request id in every response and log line."""

import io
import logging
import re

import pytest
import redis
from django.urls import resolve
from rest_framework.test import APIClient

from crm import services as crm_services
from crm.actors import SYSTEM
from crm_project import observability

pytestmark = pytest.mark.django_db


@pytest.fixture
def token(settings):
    settings.CRM_METRICS_TOKEN = "s3cret-metrics-token"
    settings.CRM_METRICS_ALLOWED_IPS = []
    return settings.CRM_METRICS_TOKEN


def scrape(client, token):
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200, response.content
    return response.content.decode()


def test_metrics_are_off_without_a_token_or_an_allow_list(client, settings):
    settings.CRM_METRICS_TOKEN, settings.CRM_METRICS_ALLOWED_IPS = "", []
    assert client.get("/metrics").status_code == 404


def test_an_anonymous_caller_or_a_wrong_token_is_refused(client, admin_client, token):
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Basic {token}").status_code == 403
    assert admin_client.get("/metrics").status_code == 403  # a superuser's session is no token
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200


def test_a_token_of_any_characters_is_refused_not_a_server_error(client, token):
    # Header values reach Django decoded as latin-1; hmac.compare_digest refuses a str with non-ASCII
    # characters (TypeError), which was a 500.
    for offered in ("Bearer caf\u00e9", f"Bearer {token}\u00ff", "Bearer \u00e9" * 40):
        assert client.get("/metrics", HTTP_AUTHORIZATION=offered).status_code == 403


def test_a_made_up_http_method_does_not_make_a_series_of_its_own(client, token):
    # Any token is a method to the server: each one labelled as sent would be a new series, so a
    # caller could grow the metrics (and a multiprocess directory's files) without bound.
    for number in range(5):
        client.generic(f"PROBE{number}", "/api/v1/crm/leads/")
    text = scrape(client, token)
    assert "PROBE" not in text
    assert re.search(
        r'crm_http_request_duration_seconds_count\{method="other",status="\d+",view="[^"]*"\} 5\.0', text
    ), [line for line in text.splitlines() if "method=" in line and "_count" in line]


def test_an_allowed_address_needs_no_token(client, settings):
    settings.CRM_METRICS_TOKEN = ""
    settings.CRM_METRICS_ALLOWED_IPS = ["10.0.0.9"]
    assert client.get("/metrics").status_code == 403  # the test client calls from 127.0.0.1
    assert client.get("/metrics", REMOTE_ADDR="10.0.0.9").status_code == 200


def test_requests_show_their_latency_and_queries_by_view_and_the_outbox_its_lag(
    client, admin_user, token, stages
):
    api = APIClient()
    api.force_authenticate(admin_user)
    crm_services.lead_create(user=SYSTEM, data={"name": "Pending event"})
    # The registry is the process's: other tests in this process may have counted the same view.
    counted = r'crm_http_request_duration_seconds_count\{{method="GET",status="200",view="{view}"\}} (\S+)'
    view = resolve("/api/v1/crm/leads/").view_name
    before = re.search(counted.format(view=re.escape(view)), scrape(client, token))
    for _ in range(3):
        assert api.get("/api/v1/crm/leads/").status_code == 200

    text = scrape(client, token)
    latency = re.search(counted.format(view=re.escape(view)), text)
    assert "lead" in view
    assert latency, text[:2000]
    assert float(latency.group(1)) - (float(before.group(1)) if before else 0) == 3
    queries = re.search(rf'crm_http_request_queries_sum\{{view="{re.escape(view)}"\}} (\S+)', text)
    assert queries and float(queries.group(1)) > 0
    assert 'view="metrics"' not in text  # the scrape does not measure itself
    lag = re.search(r"^crm_outbox_lag_seconds (\S+)$", text, re.M)
    assert lag and float(lag.group(1)) >= 0
    assert re.search(r"^crm_outbox_pending (\d+)\.0$", text, re.M).group(1) != "0"


def test_celery_queue_lengths_and_task_outcomes_come_from_redis(client, token, settings, redis_db_url):
    settings.CELERY_BROKER_URL = redis_db_url
    connection = redis.Redis.from_url(redis_db_url)
    connection.flushdb()
    connection.rpush(settings.CELERY_TASK_DEFAULT_QUEUE, "task-1", "task-2")
    observability.task_outcome("crm.events.tasks.outbox_relay", "success")
    observability.task_outcome("crm.events.tasks.outbox_relay", "success")
    observability.task_outcome("crm.webhooks.tasks.webhook_deliver_batch", "failure")
    try:
        text = scrape(client, token)
    finally:
        connection.flushdb()

    assert f'crm_celery_queue_length{{queue="{settings.CELERY_TASK_DEFAULT_QUEUE}"}} 2.0' in text
    assert 'crm_celery_tasks_total{outcome="success",task="crm.events.tasks.outbox_relay"} 2.0' in text
    assert (
        'crm_celery_tasks_total{outcome="failure",task="crm.webhooks.tasks.webhook_deliver_batch"} 1.0'
        in text
    )


@pytest.fixture
def redis_db_url():
    from tests.backbone import test_redis_db

    return f"redis://127.0.0.1:6379/{test_redis_db(1)}"


@pytest.fixture
def log_lines():
    """What the console handler would print for django.request, in logfmt with the request id."""
    from crm_project.logging import LogfmtFormatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(LogfmtFormatter())
    handler.addFilter(observability.RequestIdFilter())
    logger = logging.getLogger("django.request")
    logger.addHandler(handler)
    try:
        yield lambda: stream.getvalue().splitlines()
    finally:
        logger.removeHandler(handler)


def test_a_sane_request_id_is_kept_in_the_answer_and_the_log_line(client, log_lines):
    response = client.get("/no-such-page/", HTTP_X_REQUEST_ID="edge-7f3a.42_b")

    assert response.status_code == 404
    assert response["X-Request-ID"] == "edge-7f3a.42_b"
    (line,) = [line for line in log_lines() if "no-such-page" in line]
    assert "request_id=edge-7f3a.42_b" in line


def test_a_missing_or_insane_request_id_is_replaced_by_a_new_one(client, log_lines):
    first = client.get("/no-such-page/", HTTP_X_REQUEST_ID='bad id "with" spaces\nand a newline')
    second = client.get("/no-such-page/")

    ids = [first["X-Request-ID"], second["X-Request-ID"]]
    assert all(re.fullmatch(r"[0-9a-f]{32}", value) for value in ids) and ids[0] != ids[1]
    assert [line.split("request_id=")[1].split()[0] for line in log_lines() if "no-such-page" in line] == ids
