"""The account and contact a lead's conversion reuses, asked by the conversion and by its preview alike."""

from django.db.models import QuerySet, Value
from django.db.models.functions import Lower

from crm.models import Account, Contact, Lead


def with_email(queryset: QuerySet, email: str, field: str = "email") -> QuerySet:
    """The records of ``queryset`` whose ``field`` is ``email`` in any case, read through the index on
    LOWER(email) that leads and contacts have: ``email__iexact`` compiles to UPPER(email), which only
    the trigram index answers, at 12–18 ms among a million leads or 300,000 contacts instead of 0.1."""
    return queryset.alias(_email_lower=Lower(field)).filter(_email_lower=Lower(Value(email)))


# What converting a lead reuses instead of creating (sales.services.lead_convert, and the admin's
# convert page that says beforehand what will happen): one rule for both.
def conversion_account_match(lead: Lead) -> Account | None:
    """The account named like the lead's company (case-insensitive, the oldest), if any."""
    name = lead.company_name.strip()
    return Account.objects.filter(name__iexact=name).order_by("id").first() if name else None


def conversion_contact_match(lead: Lead) -> Contact | None:
    """The contact with the lead's email (case-insensitive, the oldest), if any."""
    email = lead.email.strip()
    if not email:
        return None
    return with_email(Contact.objects.all(), email).select_related("account").order_by("id").first()
