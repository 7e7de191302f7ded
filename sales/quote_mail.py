"""A sent quote's email to the customer: the PDF attached and the link to accept or decline online."""

from django.conf import settings
from django.core.mail import EmailMessage

from sales.models import Quote
from sales.quote_links import quote_public_url


def quote_email_send(*, quote_id: int) -> bool:
    """Email the quote's stored PDF to its recipient. Sending it again (a retried task) sends again:
    the customer may ask for it twice, and a lost email is worse than a duplicate."""
    quote = Quote.objects.select_related("opportunity").filter(pk=quote_id).first()
    if quote is None or not quote.recipient_email or not quote.pdf:
        return False
    company = settings.CRM_COMPANY_NAME
    body = (
        f"Hello,\n\nPlease find attached our quote {quote.number} (version {quote.version}) for "
        f"“{quote.opportunity.name}”: {quote.total} {quote.currency} including tax"
        + (f", valid until {quote.valid_until:%Y-%m-%d}" if quote.valid_until else "")
        + f".\n\nYou can read it and accept or decline it online:\n{quote_public_url(quote)}\n\n{company}\n"
    )
    message = EmailMessage(
        subject=f"Quote {quote.number} from {company}",
        body=body,
        to=[quote.recipient_email],
    )
    with quote.pdf.open("rb") as pdf:
        message.attach(f"{quote.number}-v{quote.version}.pdf", pdf.read(), "application/pdf")
    message.send()
    return True
