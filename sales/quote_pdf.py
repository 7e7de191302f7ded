"""A quote as HTML (one template, sales/quote_pdf.html) and as PDF rendered by WeasyPrint."""

from pathlib import Path

from django.conf import settings
from django.template.loader import render_to_string

from sales import pricing
from sales.models import Quote


def company() -> dict:
    address = settings.CRM_COMPANY_ADDRESS.replace(" | ", "\n").replace("\\n", "\n")
    logo = settings.CRM_COMPANY_LOGO
    logo_uri = Path(logo).resolve().as_uri() if logo and Path(logo).is_file() else ""
    return {
        "name": settings.CRM_COMPANY_NAME,
        "address_lines": [line for line in address.splitlines() if line.strip()],
        "logo_uri": logo_uri,
    }


def quote_context(quote: Quote) -> dict:
    lines = list(quote.lines.select_related("product").order_by("position", "id"))
    opportunity = quote.opportunity
    return {
        "quote": quote,
        "lines": lines,
        "totals": pricing.totals(lines),
        "company": company(),
        "account": opportunity.account,
        "contact": opportunity.contact,
    }


def quote_html(quote: Quote) -> str:
    return render_to_string("sales/quote_pdf.html", quote_context(quote))


def quote_pdf_bytes(quote: Quote) -> bytes:
    # Imported here: WeasyPrint loads Pango when imported, which only the code that renders needs.
    from weasyprint import HTML

    return HTML(string=quote_html(quote), base_url=str(settings.BASE_DIR)).write_pdf()
