"""Issue 17 item 2: email templates rendered in a sandbox from a record's plain values, an unknown
placeholder refused on save (named), a preview that writes nothing, and sending through Django's email
backend to a real SMTP server on loopback, logged on the record's timeline; opt-out respected."""

import pytest
from django.core.exceptions import ValidationError

from activities.models import Activity
from crm.actors import SYSTEM
from crm.messaging import services
from crm.models import EmailTemplate, OutboxEvent, OutgoingEmail, OutgoingEmailStatus
from tests.backbone import wait_until
from tests.factories import AccountFactory, ContactFactory, LeadFactory, UserFactory

pytestmark = pytest.mark.django_db

API = "/api/v1/crm/email-templates/"


def template(**data):
    defaults = {"name": "Welcome", "subject": "Hello {{ recipient.first_name }}", "body_html": "<p>Hi</p>"}
    return services.email_template_create(user=SYSTEM, data={**defaults, **data})


@pytest.fixture
def api(api_as):
    return api_as("crm_admin")


@pytest.fixture
def lead(stages):
    owner = UserFactory(username="ann", first_name="Ann", last_name="Seller", email="ann@crm.example")
    return LeadFactory(
        name="Acme — 50 seats",
        contact_name="Wile Coyote",
        company_name="Acme",
        email="wile@acme.example",
        rating="hot",
        stage=stages["Qualified"],
        owner=owner,
    )


def test_a_template_renders_the_records_fields_and_its_related_records(lead):
    body = (
        "<p>{{ recipient.first_name }} of {{ lead.company_name }}: {{ lead.stage.name }}, "
        "{{ lead.rating }}, owned by {{ lead.owner.full_name }} ({{ lead.owner.email }}).</p>"
        '{% if lead.rating == "Hot" %}<p>Hot!</p>{% endif %}'
    )
    rendered = services.email_template_render(
        template=template(body_html=body, subject="For {{ lead.name }}"), record=lead, user=SYSTEM
    )
    assert rendered.subject == "For Acme — 50 seats"
    assert rendered.html == (
        "<p>Wile of Acme: Qualified, Hot, owned by Ann Seller (ann@crm.example).</p><p>Hot!</p>"
    )
    assert rendered.text == "Wile of Acme: Qualified, Hot, owned by Ann Seller (ann@crm.example).\nHot!"


def test_a_contact_fills_its_account_and_the_common_recipient_names(db):
    contact = ContactFactory(first_name="Road", last_name="Runner", account=AccountFactory(name="Desert Inc"))
    rendered = services.email_template_render(
        template=template(
            body_html="<p>{{ recipient.name }} at {{ contact.account.name }} / {{ recipient.company }}</p>",
            body_text="Dear {{ contact.first_name }}, {{ contact.account.name }}",
        ),
        record=contact,
        user=SYSTEM,
    )
    assert rendered.html == "<p>Road Runner at Desert Inc / Desert Inc</p>"
    assert rendered.text == "Dear Road, Desert Inc"


def test_values_are_autoescaped_in_the_html_part_and_plain_in_the_text_part(lead):
    lead.company_name = '<script>alert("x")</script> & Co'
    lead.save()
    rendered = services.email_template_render(
        template=template(body_html="<p>{{ lead.company_name }}</p>"), record=lead, user=SYSTEM
    )
    assert rendered.html == "<p>&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; Co</p>"
    assert rendered.text == '<script>alert("x")</script> & Co'


def test_html_typed_into_a_template_is_sanitized_on_save(db):
    saved = template(body_html='<p onclick="steal()">Hi {{ lead.name }}<script>evil()</script></p>')
    assert saved.body_html == "<p>Hi {{ lead.name }}</p>"


@pytest.mark.parametrize(
    ("field", "source", "named"),
    [
        ("body_html", "<p>{{ lead.nmae }}</p>", "lead.nmae"),
        ("subject", "Hi {{ contact.account.owner }}", "contact.account.owner"),
        ("body_text", "{% if lead.secret %}x{% endif %}", "lead.secret"),
        ("body_html", "{{ lead.name|default:lead.password }}", "lead.password"),
        ("body_html", "{{ lead }}", "lead"),
    ],
)
def test_an_unknown_placeholder_is_refused_on_save_naming_it(db, field, source, named):
    with pytest.raises(ValidationError) as refused:
        template(**{field: source})
    assert f"Unknown placeholder: {named}." in refused.value.message_dict[field][0]
    assert not EmailTemplate.objects.exists()


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ('{% include "admin/base.html" %}', "The tag {% include %} is not allowed"),
        ("{% load static %}", "not a registered tag library"),
        ("{{ lead.name|safe }}", "The filter |safe is not allowed"),
        ("{% if %}", "This is not a valid template"),
    ],
)
def test_tags_filters_and_syntax_outside_the_sandbox_are_refused(db, source, message):
    with pytest.raises(ValidationError) as refused:
        template(body_html=source)
    assert message in refused.value.message_dict["body_html"][0]


def test_the_api_refuses_an_unknown_placeholder_with_400_on_its_field(api):
    answer = api.post(
        API, {"name": "T", "subject": "{{ lead.nope }}", "body_html": "<p>x</p>"}, format="json"
    )
    assert answer.status_code == 400
    assert "Unknown placeholder: lead.nope." in answer.json()["subject"][0]


def test_preview_renders_on_a_chosen_record_and_writes_nothing(api, lead):
    saved = template(body_html="<p>{{ recipient.name }}</p>")
    counts = (OutgoingEmail.objects.count(), Activity.objects.count(), OutboxEvent.objects.count())

    answer = api.post(f"{API}{saved.pk}/preview/", {"lead_id": lead.pk}, format="json")

    assert answer.status_code == 200, answer.content
    assert answer.json() == {"subject": "Hello Wile", "html": "<p>Wile Coyote</p>", "text": "Wile Coyote"}
    assert (OutgoingEmail.objects.count(), Activity.objects.count(), OutboxEvent.objects.count()) == counts


def test_preview_on_a_record_one_cannot_see_is_refused(api_as, people):
    saved = template()
    theirs = people.records["outsider"].lead
    answer = api_as("owner").post(f"{API}{saved.pk}/preview/", {"lead_id": theirs.pk}, format="json")
    assert answer.status_code == 400
    assert "lead_id" in answer.json()


def test_the_admin_preview_page_renders_on_a_chosen_record(admin_client, lead):
    lead.company_name = 'Acme"><script>x()</script>'
    lead.save()
    saved = template(body_html="<p>{{ lead.company_name }}</p>", body_text="{{ lead.company_name }}")
    page = admin_client.get(f"/admin/crm/emailtemplate/{saved.pk}/preview/", {"lead": lead.pk})
    assert page.status_code == 200
    html = page.content.decode()
    assert '<p class="crm-preview-subject">Hello Wile</p>' in html
    # Escaped twice in the frame's srcdoc (once by the template, once as an attribute), once in text.
    assert 'srcdoc="&lt;p&gt;Acme&amp;quot;&amp;gt;&amp;lt;script&amp;gt;x()' in html
    assert "Acme&quot;&gt;&lt;script&gt;x()&lt;/script&gt;</pre>" in html
    assert "<script>x()" not in html
    assert not OutgoingEmail.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_sending_reaches_the_smtp_server_and_logs_an_email_activity(smtp_server, stages):
    lead = LeadFactory(
        name="Acme", contact_name="Wile Coyote", email="wile@acme.example", stage=stages["New"]
    )
    saved = template(body_html="<p>Hi {{ recipient.first_name }}</p>", subject="Hello {{ lead.name }}")

    email = services.email_template_send(template=saved, record=lead, user=SYSTEM)

    (message,) = smtp_server.wait_for(1)
    assert message["To"] == "wile@acme.example" and message["Subject"] == "Hello Acme"
    parts = {
        part.get_content_type(): part.get_payload(decode=True).decode()
        for part in message.walk()
        if not part.is_multipart()
    }
    assert parts["text/plain"].strip() == "Hi Wile" and parts["text/html"] == "<p>Hi Wile</p>"
    email.refresh_from_db()
    assert email.status == OutgoingEmailStatus.SENT and email.sent_at is not None
    logged = wait_until(lambda: Activity.objects.filter(lead=lead, activity_type="email").first())
    assert logged.subject == "Hello Acme" and logged.status == "completed"


@pytest.mark.django_db(transaction=True)
def test_an_address_that_opted_out_is_never_emailed(smtp_server, stages):
    ContactFactory(email="wile@acme.example", email_opt_out=True)
    lead = LeadFactory(name="Acme", email="WILE@acme.example", stage=stages["New"])
    opted_out = ContactFactory(email="road@runner.example", email_opt_out=True)
    saved = template()

    emails = [
        services.email_template_send(template=saved, record=lead, user=SYSTEM),
        services.email_template_send(template=saved, record=opted_out, user=SYSTEM),
    ]

    assert [email.status for email in emails] == [OutgoingEmailStatus.SUPPRESSED] * 2
    assert smtp_server.received() == []
    assert not Activity.objects.filter(activity_type="email").exists()


@pytest.mark.django_db(transaction=True)
def test_an_email_left_sending_by_a_dead_worker_is_marked_interrupted_and_sent_again_on_retry(
    smtp_server, stages, admin_user, settings
):
    """At most once: a message claimed ("sending") by a worker that died before reporting is not
    resent by itself; once the job lease has passed the periodic sweep marks it failed with an
    "interrupted" message, and the API's retry sends it. One claimed recently is left alone."""
    from datetime import timedelta

    from django.utils import timezone
    from rest_framework.test import APIClient

    from crm.messaging.tasks import outgoing_emails_queued_send

    settings.CRM_JOB_LEASE = 300
    lead = LeadFactory(
        name="Acme", contact_name="Wile Coyote", email="wile@acme.example", stage=stages["New"]
    )
    saved = template()
    stuck = services.email_template_send(template=saved, record=lead, user=SYSTEM)
    recent = services.email_template_send(template=saved, record=lead, user=SYSTEM)
    smtp_server.wait_for(2)
    with smtp_server.lock:
        smtp_server.messages.clear()
    # What a worker killed between its claim and the SMTP answer leaves behind.
    OutgoingEmail.objects.filter(pk=stuck.pk).update(
        status=OutgoingEmailStatus.SENDING, claim="dead", claimed_at=timezone.now() - timedelta(seconds=301)
    )
    OutgoingEmail.objects.filter(pk=recent.pk).update(
        status=OutgoingEmailStatus.SENDING, claim="busy", claimed_at=timezone.now() - timedelta(seconds=10)
    )

    outgoing_emails_queued_send()

    stuck.refresh_from_db()
    recent.refresh_from_db()
    assert stuck.status == OutgoingEmailStatus.FAILED and stuck.error == services.INTERRUPTED
    assert recent.status == OutgoingEmailStatus.SENDING
    assert smtp_server.received() == []  # not resent by itself

    api = APIClient()
    api.force_authenticate(admin_user)
    listed = api.get("/api/v1/crm/sent-emails/").json()["results"]
    assert {row["id"]: row["status"] for row in listed}[stuck.pk] == "failed"
    response = api.post(f"/api/v1/crm/sent-emails/{stuck.pk}/retry/")
    assert response.status_code == 202, response.content
    (message,) = smtp_server.wait_for(1)
    assert message["To"] == "wile@acme.example"
    stuck.refresh_from_db()
    assert stuck.status == OutgoingEmailStatus.SENT and stuck.error == ""
    assert api.post(f"/api/v1/crm/sent-emails/{stuck.pk}/retry/").status_code == 409


def test_the_admin_retries_failed_emails_through_the_service(admin_client, lead, smtp_server):
    from django.urls import reverse

    saved = template()
    email = services.email_template_send(template=saved, record=lead, user=SYSTEM)
    OutgoingEmail.objects.filter(pk=email.pk).update(
        status=OutgoingEmailStatus.FAILED, error=services.INTERRUPTED
    )
    response = admin_client.post(
        reverse("admin:crm_outgoingemail_changelist"),
        {"action": "retry_send", "_selected_action": [email.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert "1 email(s) queued again." in response.content.decode()
    email.refresh_from_db()
    assert (email.status, email.error) == (OutgoingEmailStatus.QUEUED, "")
