"""Stopping enrollments as soon as their record leaves the audience: a lead converted or lost, a
contact who opted out of email (the runner checks it again before every step anyway)."""

from crm.events import register_consumer
from crm.models import Contact, EnrollmentStatus, Lead, OutboxEvent, SequenceEnrollment
from crm.sequences.services import enrollments_stop_for

LEAD_REASONS = {"lead.converted": "The lead was converted.", "lead.lost": "The lead was lost."}


def _lead_closed(event: OutboxEvent) -> None:
    lead = Lead.objects.filter(pk=event.record_id).first()
    if lead is not None:
        enrollments_stop_for(record=lead, reason=LEAD_REASONS[event.type])


def _contact_changed(event: OutboxEvent) -> None:
    contact = Contact.objects.filter(pk=event.record_id, email_opt_out=True).first()
    if (
        contact is not None
        and SequenceEnrollment.objects.filter(contact=contact, status=EnrollmentStatus.ACTIVE).exists()
    ):
        enrollments_stop_for(record=contact, reason="The contact opted out of email.")


def register() -> None:
    register_consumer("lead.converted", _lead_closed, name="sequences.lead_converted")
    register_consumer("lead.lost", _lead_closed, name="sequences.lead_lost")
    register_consumer("contact.updated", _contact_changed, name="sequences.contact_opted_out")
