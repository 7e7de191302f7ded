"""The schemathesis run: the API is held to its own OpenAPI schema, served at /api/schema/.

Schemathesis reads the schema the running project serves and, for every operation, sends requests
made from it (valid ones, and in its negative mode invalid ones: wrong types, missing fields, strings
with NUL bytes and other odd characters) through the real WSGI application and middleware, against
the test database holding the demo data. Each response must be no server error and match the
schema: a documented status, content type, headers and body. The run is done twice:

* with the token of a superuser, who may do everything, so the requests reach the views and the
  services behind them (writes included: the test's transaction is rolled back afterwards);
* with no credentials, where every operation must answer 401 (a URL no view matches, 404) and the
  response must still be the documented one. The one public operation, POST /api/v1/auth/token/,
  is how a client gets credentials; it answers 400 (or 429) to guessed ones.

In the first run schemathesis' ignored_auth check also resends each request without the token and
expects it refused.

The examples are bounded (FUZZ_EXAMPLES, default 8 per operation; the run without credentials a
quarter of them, at least 2) and derandomized, so a run is the same every time. Without credentials
an operation is refused before its query or body is read, and the first run's ignored_auth check has
already sent each of its requests without the token; making the bodies, not sending them, was most
of that run's cost (53 of 117 s of the whole module on SQLite).

Each operation is its own pytest test, named by its method and path. The throttles cannot fail
the run: their counters start empty for each test (tests/conftest.py) and a 429 is a documented
answer anyway, as is django-axes' lockout of the token endpoint; production rates are left as they
are.
"""

import os

import pytest
import schemathesis
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from crm_project.wsgi import application

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "8"))
ANONYMOUS_EXAMPLES = max(2, EXAMPLES // 4)
PUBLIC = {("POST", "/api/v1/auth/token/")}
WHOLE_RUN = 200

# Schema-valid requests the API rightly refuses are not checked (positive_data_acceptance): an id
# of a record that does not exist, or a stage of another pipeline, is valid by the schema's types
# but answers 400 per field. Schema-violating requests it accepts are not checked either
# (negative_data_rejection): DRF reads "12" as 12 and "true" as true on purpose.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

# JSON: the same document as the default YAML, which took over a second of CPU to write and read back.
schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)
# Strings may hold NUL bytes (schemathesis' default, said here because the run is meant to send them).
schema.config.generation.update(allow_x00=True)
# The coverage phase sends every boundary value of every parameter: some 7,000 requests per run,
# too many for CI twice per database. The fuzzing phase's bounded examples cover the same kinds.
schema.config.phases.coverage.enabled = False
fuzz = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    print_blob=False,
)
fuzz_anonymous = settings(fuzz, max_examples=ANONYMOUS_EXAMPLES)


@pytest.fixture
def same_transaction():
    """Keep the test's transaction open across requests.

    The WSGI handler closes the database connection at the end of each request, as it should in
    production; Django's test client stops it doing so, and this does the same for schemathesis'
    client, so the requests run in the test's transaction and the test database is left as it was.
    """
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


class Sent:
    """What the run sent: how many requests, and how many of them carried a NUL byte."""

    def __init__(self):
        self.cases = 0
        self.with_nul = 0

    def record(self, case) -> None:
        self.cases += 1
        sent = repr((case.path_parameters, case.query, case.headers, case.body))
        self.with_nul += "\\x00" in sent or "\x00" in sent


@pytest.fixture(scope="module")
def sent():
    """After a whole run (not a -k selection of a few operations), NUL bytes were among the inputs."""
    sent = Sent()
    yield sent
    if sent.cases >= WHOLE_RUN:
        assert sent.with_nul > 0, f"none of the {sent.cases} requests carried a NUL byte"


@pytest.fixture(scope="module")
def superuser_token(django_db_setup, django_db_blocker):
    """The demo data and a superuser's token, loaded once for the module's tests.

    They are written in a transaction that spans the module and is rolled back at its end; each test
    runs in a savepoint inside it (pytest-django's ``db``), so one operation's writes are undone
    before the next operation's run, and the demo data is loaded once instead of per operation.
    """
    with django_db_blocker.unblock(), transaction.atomic():
        call_command("loaddata", "demo", verbosity=0)
        user = get_user_model().objects.create_superuser("fuzz", "fuzz@example.com", None)
        yield Token.objects.create(user=user).key
        transaction.set_rollback(True)


def no_access_without_credentials(ctx, response, case):
    """Without credentials only 401 answers, or 404 before any view ran: a URL no route matches, or
    one whose format suffix (`/leads/1.5/` is lead 1 as format "5") names no renderer."""
    if (case.operation.method.upper(), case.operation.path) in PUBLIC or response.status_code in (401, 404):
        return None
    raise AssertionError(
        f"{case.method.upper()} {case.formatted_path} answered {response.status_code} without credentials"
    )


@pytest.mark.django_db
@schema.parametrize()
@fuzz
def test_api_with_a_superuser_token(case, superuser_token, same_transaction, sent):
    sent.record(case)
    case.call_and_validate(
        headers={"Authorization": f"Token {superuser_token}"},
        checks=CHECKS,
        additional_checks=[ignored_auth],
    )


@pytest.mark.django_db
@schema.parametrize()
@fuzz_anonymous
def test_api_without_credentials(case, same_transaction, sent):
    sent.record(case)
    case.call_and_validate(checks=CHECKS, additional_checks=[no_access_without_credentials])
