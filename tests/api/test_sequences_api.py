"""Issue 17 item 4, the API: email templates (CRUD, preview, send), sequences with their steps in
order, enrollments (enroll, state and history, stop) and the sent-email log; in the OpenAPI schema."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from drf_spectacular.generators import SchemaGenerator

from crm.actors import SYSTEM
from crm.messaging.services import email_template_create
from crm.models import EnrollmentStatus, OutgoingEmail, Sequence, SequenceEnrollment, SequenceStep
from crm.sequences import services
from tests.factories import LeadFactory

pytestmark = pytest.mark.django_db

API = "/api/v1/crm/"


@pytest.fixture
def api(api_as):
    return api_as("crm_admin")


@pytest.fixture
def welcome(db):
    return email_template_create(
        user=SYSTEM,
        data={"name": "Welcome", "subject": "Hi {{ recipient.first_name }}", "body_html": "<p>Hi</p>"},
    )


def steps_body(welcome):
    return [
        {"position": 1, "kind": "email", "email_template_id": welcome.pk},
        {"position": 2, "kind": "wait", "wait_days": 2, "business_days": True},
        {"position": 3, "kind": "task", "task_subject": "Call", "task_type": "call"},
    ]


def test_a_template_is_created_read_changed_and_deleted(api):
    created = api.post(
        f"{API}email-templates/",
        {"name": "Intro", "subject": "Hello {{ lead.name }}", "body_html": "<p onclick='x'>Hi</p>"},
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["body_html"] == "<p>Hi</p>" and body["is_active"] is True
    changed = api.patch(
        f"{API}email-templates/{body['id']}/", {"subject": "Yo {{ sender.first_name }}"}, format="json"
    )
    assert changed.status_code == 200 and changed.json()["subject"] == "Yo {{ sender.first_name }}"
    assert api.delete(f"{API}email-templates/{body['id']}/").status_code == 204


def test_a_template_a_sequence_sends_is_not_deleted(api, welcome):
    services.sequence_create(user=SYSTEM, data={"name": "S"}, steps=steps_body_models(welcome))
    answer = api.delete(f"{API}email-templates/{welcome.pk}/")
    assert answer.status_code == 409


def steps_body_models(welcome):
    return [{"position": 1, "kind": "email", "email_template": welcome}]


def test_send_queues_an_email_to_the_record(api, welcome, stages, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    lead = LeadFactory(contact_name="Wile E", stage=stages["New"])
    answer = api.post(f"{API}email-templates/{welcome.pk}/send/", {"lead_id": lead.pk}, format="json")
    assert answer.status_code == 202, answer.content
    assert answer.json()["subject"] == "Hi Wile" and answer.json()["to"] == lead.email
    email = OutgoingEmail.objects.get()
    assert answer.json()["id"] == email.pk


def test_a_sequence_is_created_with_its_steps_in_order(api, welcome):
    answer = api.post(f"{API}sequences/", {"name": "Nurture", "steps": steps_body(welcome)}, format="json")
    assert answer.status_code == 201, answer.content
    body = answer.json()
    assert [(s["position"], s["kind"]) for s in body["steps"]] == [(1, "email"), (2, "wait"), (3, "task")]
    assert body["active_enrollments"] == 0


def test_steps_are_reordered_by_swapping_positions(api, welcome):
    created = api.post(
        f"{API}sequences/", {"name": "Nurture", "steps": steps_body(welcome)}, format="json"
    ).json()
    email, wait, task = created["steps"]
    answer = api.patch(
        f"{API}sequences/{created['id']}/",
        {"steps": [{**email, "position": 3}, wait, {**task, "position": 1}]},
        format="json",
    )
    assert answer.status_code == 200, answer.content
    assert [(s["position"], s["kind"]) for s in answer.json()["steps"]] == [
        (1, "task"),
        (2, "wait"),
        (3, "email"),
    ]


def test_a_bad_step_is_a_400_naming_the_step(api, welcome):
    answer = api.post(
        f"{API}sequences/",
        {"name": "Bad", "steps": [{"position": 1, "kind": "email"}, {"position": 2, "kind": "wait"}]},
        format="json",
    )
    assert answer.status_code == 400
    assert any("Step 1" in message for message in answer.json()["steps"])
    assert not Sequence.objects.exists()


def test_a_sales_rep_reads_sequences_but_does_not_write_them(api_as, welcome):
    rep = api_as("owner")
    assert rep.get(f"{API}sequences/").status_code == 200
    assert rep.post(f"{API}sequences/", {"name": "Mine"}, format="json").status_code == 403
    assert (
        rep.post(
            f"{API}email-templates/", {"name": "Mine", "subject": "x", "body_html": "x"}, format="json"
        ).status_code
        == 403
    )


def test_enroll_read_the_history_and_stop(api_as, people, welcome):
    sequence = services.sequence_create(user=SYSTEM, data={"name": "S"}, steps=steps_body_models(welcome))
    rep = api_as("owner")
    lead = people.records["owner"].lead

    enrolled = rep.post(
        f"{API}sequence-enrollments/", {"sequence_id": sequence.pk, "lead_id": lead.pk}, format="json"
    )
    assert enrolled.status_code == 201, enrolled.content
    body = enrolled.json()
    assert (
        body["status"] == "active" and body["lead_id"] == lead.pk and body["history"][0]["kind"] == "enrolled"
    )
    again = rep.post(
        f"{API}sequence-enrollments/", {"sequence_id": sequence.pk, "lead_id": lead.pk}, format="json"
    )
    assert again.status_code == 400 and "already" in again.json()["lead_id"][0]

    stopped = rep.post(
        f"{API}sequence-enrollments/{body['id']}/stop/", {"reason": "Called us"}, format="json"
    )
    assert stopped.status_code == 200 and stopped.json()["status"] == "stopped"
    assert stopped.json()["stop_reason"] == "Called us"
    assert rep.post(f"{API}sequence-enrollments/{body['id']}/stop/", {}, format="json").status_code == 409


def test_another_teams_lead_is_not_enrolled(api_as, people, welcome):
    sequence = services.sequence_create(user=SYSTEM, data={"name": "S"}, steps=steps_body_models(welcome))
    theirs = people.records["outsider"].lead
    answer = api_as("owner").post(
        f"{API}sequence-enrollments/", {"sequence_id": sequence.pk, "lead_id": theirs.pk}, format="json"
    )
    assert answer.status_code == 400 and "lead_id" in answer.json()
    assert not SequenceEnrollment.objects.exists()


def test_a_converted_lead_is_not_enrolled(api, welcome, stages):
    sequence = services.sequence_create(user=SYSTEM, data={"name": "S"}, steps=steps_body_models(welcome))
    from django.utils import timezone

    lead = LeadFactory(stage=stages["New"], status="converted", converted_at=timezone.now())
    answer = api.post(
        f"{API}sequence-enrollments/", {"sequence_id": sequence.pk, "lead_id": lead.pk}, format="json"
    )
    assert answer.status_code == 400 and "only open leads" in answer.json()["lead_id"][0]


def _queries(api, path) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert api.get(path).status_code == 200
    return len(captured)


@pytest.mark.parametrize("path", ["sequence-enrollments/", "sequences/", "sent-emails/", "email-templates/"])
def test_lists_cost_a_fixed_number_of_queries(api, welcome, stages, path, django_assert_max_num_queries):
    def add(count):
        for _ in range(count):
            sequence = services.sequence_create(
                user=SYSTEM, data={"name": f"S{Sequence.objects.count()}"}, steps=steps_body_models(welcome)
            )
            lead = LeadFactory(stage=stages["New"])
            services.sequence_enroll(sequence=sequence, record=lead, user=SYSTEM, kick=False)
            OutgoingEmail.objects.create(lead=lead, to=lead.email, subject="x")
            email_template_create(user=SYSTEM, data={"name": f"T{lead.pk}", "subject": "x", "body_html": "x"})

    add(2)
    _queries(api, API + path)
    few = _queries(api, API + path)
    add(10)
    with django_assert_max_num_queries(few):
        _queries(api, API + path)


def test_the_schema_documents_the_operations_with_their_bodies():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    paths = schema["paths"]
    preview = paths["/api/v1/crm/email-templates/{id}/preview/"]["post"]
    assert preview["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "RecordChoiceRequest"
    )
    assert "200" in preview["responses"] and "/api/v1/crm/sequences/{id}/" in paths
    stop = paths["/api/v1/crm/sequence-enrollments/{id}/stop/"]["post"]
    assert stop["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("StopInputRequest")
    assert "post" in paths["/api/v1/crm/sequence-enrollments/"]


def test_steps_keep_their_order_in_the_database(api, welcome):
    created = api.post(
        f"{API}sequences/", {"name": "Nurture", "steps": steps_body(welcome)}, format="json"
    ).json()
    assert list(SequenceStep.objects.filter(sequence=created["id"]).values_list("position", flat=True)) == [
        1,
        2,
        3,
    ]
    assert EnrollmentStatus.ACTIVE == "active"
