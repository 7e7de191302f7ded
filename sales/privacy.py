"""The sales app's personal data for crm's privacy requests: the deals of the person's leads and
contacts (kept, their free text scrubbed of the person) and the quotes sent to them."""

from django.db import transaction
from django.db.models import Q, QuerySet

from crm.privacy.registry import Person, PersonalData, register_personal_data, register_text_copies
from sales.models import Opportunity
from sales.models_quotes import Quote


def _quote_pdfs_remove(queryset: QuerySet, person: Person) -> None:
    """A quote's PDF prints the recipient's name: removed after the commit (the quote can print anew)."""
    files = [(q.pdf.storage, q.pdf.name) for q in queryset if q.pdf]

    def remove():
        for storage, name in files:
            storage.delete(name)

    transaction.on_commit(remove)


def register() -> None:
    register_personal_data(
        PersonalData(
            key="opportunities",
            model=Opportunity,
            find=lambda p: Opportunity.objects.filter(
                Q(contact_id__in=sorted(p.contact_ids)) | Q(lead_id__in=sorted(p.lead_ids))
            ),
            # The deal is the company's: amounts, stages and dates stay; only what names the person goes.
            scrub=("name", "description", "lost_note"),
        )
    )
    register_personal_data(
        PersonalData(
            key="quotes",
            model=Quote,
            find=lambda p: Quote.objects.filter(
                Q(opportunity_id__in=p.found.get("opportunities", [])) | p.email_q("recipient_email")
            ),
            erase={"recipient_email": "", "answered_by_name": "", "answered_from_ip": None, "pdf": ""},
            scrub=("notes", "payment_terms"),
            anonymise=_quote_pdfs_remove,
        )
    )
    register_text_copies(Opportunity, ("name", "description", "lost_note"))
    register_text_copies(Quote, ("notes",))
