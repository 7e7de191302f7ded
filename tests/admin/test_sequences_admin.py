"""Issue 17 item 4, the admin: a template form (refusing unknown placeholders), a sequence with its
steps inline and in order (renumbered to reorder), enrollments by hand and in bulk from a list, their
state and history with failures shown, and stopping them."""

import pytest
from django.utils import timezone

from crm.actors import SYSTEM
from crm.messaging.services import email_template_create
from crm.models import EmailTemplate, EnrollmentStatus, Sequence, SequenceEnrollment, SequenceStep
from crm.sequences import services
from tests.admin.form_data import change_form_data
from tests.factories import ContactFactory, LeadFactory

pytestmark = pytest.mark.django_db

ADMIN = "/admin/crm/"


@pytest.fixture
def welcome(db):
    return email_template_create(
        user=SYSTEM,
        data={"name": "Welcome", "subject": "Hi {{ recipient.first_name }}", "body_html": "<p>Hi</p>"},
    )


def messages_of(response) -> str:
    return " ".join(str(m) for m in response.context["messages"]) if response.context else ""


def test_the_template_form_refuses_an_unknown_placeholder_naming_it(admin_client):
    page = admin_client.post(
        f"{ADMIN}emailtemplate/add/",
        {"name": "Intro", "subject": "Hi {{ lead.nmae }}", "body_html": "<p>x</p>", "is_active": "on"},
        follow=True,
    )
    assert "Unknown placeholder: lead.nmae." in page.content.decode()
    assert not EmailTemplate.objects.exists()


def test_the_template_form_saves_a_good_template(admin_client):
    page = admin_client.post(
        f"{ADMIN}emailtemplate/add/",
        {
            "name": "Intro",
            "subject": "Hi {{ lead.name }}",
            "body_html": "<p>x<script>y</script></p>",
            "is_active": "on",
        },
    )
    assert page.status_code == 302
    assert EmailTemplate.objects.get().body_html == "<p>x</p>"


def inline_rows(steps):
    data = {
        "steps-TOTAL_FORMS": str(len(steps)),
        "steps-INITIAL_FORMS": "0",
        "steps-MIN_NUM_FORMS": "0",
        "steps-MAX_NUM_FORMS": "1000",
    }
    for n, step in enumerate(steps):
        data.update({f"steps-{n}-{key}": str(value) for key, value in step.items()})
        data.setdefault(f"steps-{n}-task_due_days", "0")
        data.setdefault(f"steps-{n}-wait_days", "0")
    return data


def test_a_sequence_is_made_with_its_steps_inline_and_reordered_by_renumbering(admin_client, welcome):
    added = admin_client.post(
        f"{ADMIN}sequence/add/",
        {
            "name": "Nurture",
            "is_active": "on",
            **inline_rows(
                [
                    {"position": 1, "kind": "email", "email_template": welcome.pk},
                    {"position": 2, "kind": "wait", "wait_days": 2, "business_days": "on"},
                    {"position": 3, "kind": "task", "task_subject": "Call", "task_type": "call"},
                ]
            ),
        },
    )
    assert added.status_code == 302, messages_of(added) or added.content.decode()[:3000]
    sequence = Sequence.objects.get()
    assert list(sequence.steps.values_list("position", "kind")) == [(1, "email"), (2, "wait"), (3, "task")]

    page = admin_client.get(f"{ADMIN}sequence/{sequence.pk}/change/")
    data = change_form_data(page)
    rows = {data[f"steps-{n}-kind"]: n for n in range(3)}
    data[f"steps-{rows['email']}-position"], data[f"steps-{rows['task']}-position"] = "3", "1"  # swap
    changed = admin_client.post(f"{ADMIN}sequence/{sequence.pk}/change/", data)

    assert changed.status_code == 302, messages_of(changed)
    assert list(
        SequenceStep.objects.filter(sequence=sequence).order_by("position").values_list("kind", flat=True)
    ) == [
        "task",
        "wait",
        "email",
    ]


def test_leads_are_enrolled_in_bulk_from_the_list(admin_client, welcome, stages):
    sequence = services.sequence_create(
        user=SYSTEM, data={"name": "S"}, steps=[{"position": 1, "kind": "wait", "wait_days": 1}]
    )
    leads = [LeadFactory(stage=stages["New"]) for _ in range(3)]
    closed = LeadFactory(stage=stages["New"], status="lost")
    selected = [lead.pk for lead in [*leads, closed]]

    page = admin_client.post(f"{ADMIN}lead/", {"action": "enroll_in_sequence", "_selected_action": selected})
    assert page.status_code == 200 and "Enroll in a sequence" in page.content.decode()
    done = admin_client.post(
        f"{ADMIN}lead/",
        {"action": "enroll_in_sequence", "_selected_action": selected, "apply": "1", "sequence": sequence.pk},
        follow=True,
    )

    assert set(SequenceEnrollment.objects.values_list("lead_id", flat=True)) == {lead.pk for lead in leads}
    text = messages_of(done)
    assert "3 leads enrolled in “S”" in text and "only open leads" in text


def test_contacts_are_enrolled_by_hand_and_stopped_with_the_action(admin_client, welcome):
    sequence = services.sequence_create(
        user=SYSTEM, data={"name": "S"}, steps=[{"position": 1, "kind": "wait", "wait_days": 1}]
    )
    contact = ContactFactory()

    added = admin_client.post(
        f"{ADMIN}sequenceenrollment/add/", {"sequence": sequence.pk, "contact": contact.pk}
    )
    assert added.status_code == 302, added.content.decode()[:2000]
    enrollment = SequenceEnrollment.objects.get(contact=contact)

    admin_client.post(
        f"{ADMIN}sequenceenrollment/", {"action": "stop_selected", "_selected_action": [enrollment.pk]}
    )

    enrollment.refresh_from_db()
    assert enrollment.status == EnrollmentStatus.STOPPED


def test_the_enrollment_list_and_page_show_state_history_and_failures(admin_client, welcome, stages):
    sequence = services.sequence_create(
        user=SYSTEM, data={"name": "S"}, steps=[{"position": 1, "kind": "wait", "wait_days": 1}]
    )
    enrollment = services.sequence_enroll(
        sequence=sequence, record=LeadFactory(stage=stages["New"]), user=SYSTEM, kick=False
    )
    SequenceEnrollment.objects.filter(pk=enrollment.pk).update(
        attempts=2, last_error="Step 1 (Email): SMTP refused"
    )

    listing = admin_client.get(f"{ADMIN}sequenceenrollment/", {"status__exact": "active"})
    assert "SMTP refused" in listing.content.decode() and "Active" in listing.content.decode()
    page = admin_client.get(f"{ADMIN}sequenceenrollment/{enrollment.pk}/change/")
    assert page.status_code == 200
    assert "Enrolled by the system." in page.content.decode() and "SMTP refused" in page.content.decode()


def test_the_enrollment_changelist_costs_a_fixed_number_of_queries(
    admin_client, welcome, stages, django_assert_max_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    sequence = services.sequence_create(
        user=SYSTEM, data={"name": "S"}, steps=[{"position": 1, "kind": "wait", "wait_days": 1}]
    )

    def add(count):
        for _ in range(count):
            services.sequence_enroll(
                sequence=sequence, record=LeadFactory(stage=stages["New"]), user=SYSTEM, kick=False
            )
            services.sequence_enroll(sequence=sequence, record=ContactFactory(), user=SYSTEM, kick=False)

    add(2)
    admin_client.get(f"{ADMIN}sequenceenrollment/")
    with CaptureQueriesContext(connection) as few:
        admin_client.get(f"{ADMIN}sequenceenrollment/")
    add(15)
    with django_assert_max_num_queries(len(few)):
        assert admin_client.get(f"{ADMIN}sequenceenrollment/").status_code == 200
    assert timezone.now()
