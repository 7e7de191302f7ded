"""The account and contact a lead's conversion reuses, asked by the conversion and by its preview alike."""

from crm.models import Account, Contact, Lead


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
    return Contact.objects.filter(email__iexact=email).select_related("account").order_by("id").first()
