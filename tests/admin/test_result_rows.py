"""Changelist rows written by crm.admin.result_rows are Django's HTML, cell for cell, on every
changelist of the site (issue 24: the admin changelist at the speed of its SQL)."""

import pytest
from django.contrib import admin
from django.contrib.admin.templatetags import admin_list
from django.urls import NoReverseMatch, reverse

from crm.admin.result_rows import result_rows, rows_are_ours
from crm.models import Lead
from tests.factories import ActivityFactory, LeadFactory, LostReasonFactory, ProductFactory, TagFactory


def djangos_rows(cl) -> list[list[str]]:
    return [[str(cell) for cell in row] for row in admin_list.results(cl)]


def our_rows(cl) -> list[list[str]]:
    return [[str(cell) for cell in row] for row in result_rows(cl)]


def changelist_of(client, url):
    response = client.get(url)
    assert response.status_code == 200, url
    return response, response.context["cl"]


@pytest.fixture
def varied_records(people, stages):
    """The personas' records, and what a cell has to get right: markup and quotes in a name, a blank
    and a whitespace-only text, no owner, tags, an activity with a due date."""
    tag = TagFactory(name='<i>vip</i> & "gold"')
    hostile = LeadFactory(name='Acme <b>"big"</b> & co', company_name="   ", stage=stages["New"], owner=None)
    hostile.tags.add(tag)
    LeadFactory(name="Plain", company_name="", contact_name="Ann O'Neil", stage=stages["Won"])
    ActivityFactory(subject="<script>x</script>", lead=hostile, owner=people.users["owner"])
    LostReasonFactory(name="Price & <terms>")
    ProductFactory()  # money, a boolean


@pytest.mark.django_db
def test_every_changelist_writes_djangos_rows(admin_client, varied_records):
    compared = {}
    for model in admin.site._registry:
        opts = model._meta
        try:
            url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        except NoReverseMatch:
            continue
        response = admin_client.get(url)
        if response.status_code != 200 or not response.context or "cl" not in response.context:
            continue  # a changelist replaced by another page (a redirect, a board)
        cl = response.context["cl"]
        if not rows_are_ours(cl):
            continue
        ours = our_rows(cl)
        assert ours == djangos_rows(cl), opts.label
        page = response.content.decode()
        for row in ours:
            assert "".join(row) in page, opts.label  # the page shows these rows, not Django's
        compared[opts.label] = len(ours)
    for label in ("crm.Lead", "crm.Account", "crm.Contact", "sales.Opportunity", "activities.Activity"):
        assert compared.get(label, 0) > 0, (label, compared)
    assert len([label for label, count in compared.items() if count]) >= 14, compared


@pytest.mark.django_db
def test_a_filtered_and_searched_list_links_each_row_with_its_filters(admin_client, varied_records):
    searched = reverse("admin:crm_lead_changelist") + "?q=%3Cb%3E%22big%22&o=-2"
    _response, cl = changelist_of(admin_client, searched)
    assert len(cl.result_list) == 1
    assert our_rows(cl) == djangos_rows(cl)
    assert "_changelist_filters=q%3D%253Cb%253E%2522big%2522%26o%3D-2" in our_rows(cl)[0][1]
    url = reverse("admin:crm_lead_changelist") + "?status__exact=open&o=1.-2"
    _response, cl = changelist_of(admin_client, url)
    assert len(cl.result_list) >= 5
    ours = our_rows(cl)
    assert ours == djangos_rows(cl)
    hostile = Lead.objects.get(name__startswith="Acme")
    row = next(row for row in ours if f"/{hostile.pk}/change/" in row[1])
    assert "_changelist_filters=status__exact%3Dopen%26o%3D1.-2" in row[1]
    assert "&lt;b&gt;&quot;big&quot;&lt;/b&gt; &amp; co" in row[1]
    assert "<b>" not in "".join(row)


@pytest.mark.django_db
def test_an_editable_or_popup_list_keeps_djangos_rows(admin_client, varied_records):
    url = reverse("admin:crm_lead_changelist") + "?_popup=1&_to_field=id"
    response, cl = changelist_of(admin_client, url)
    assert cl.is_popup and not rows_are_ours(cl)
    assert 'data-popup-opener="' in response.content.decode()


@pytest.mark.django_db
def test_the_rows_table_is_djangos_template_output(admin_client, varied_records):
    """templates/admin/change_list_results.html joins each row's cells with one filter: the table it
    writes is Django's, on a plain, an editable (form errors included) and a popup list."""
    from pathlib import Path

    import django.contrib.admin
    from django.template import Context, Template
    from django.template.loader import get_template

    djangos = Template(
        (Path(django.contrib.admin.__file__).parent / "templates/admin/change_list_results.html").read_text()
    )
    ours = get_template("admin/change_list_results.html")
    for url in (
        reverse("admin:crm_lead_changelist"),
        reverse("admin:crm_lead_changelist") + "?_popup=1&_to_field=id",
        reverse("admin:crm_tag_changelist"),
    ):
        _response, cl = changelist_of(admin_client, url)
        context = admin_list.result_list(cl)
        if cl.formset is None:  # an editable list's rows as Django writes them, errors and all
            rows = context["results"]
            if rows:
                rows[0] = admin_list.ResultList(type("F", (), {"non_field_errors": "<ul>x</ul>"})(), rows[0])
        expected = djangos.render(Context(context))
        assert ours.render(context) == expected, url
        assert expected.count("<tr>") >= 2


# Languages whose formats differ in what a cell shows: separators (German, French's narrow space,
# Swiss German's apostrophe), grouping (Hindi's 3-2-2), month and day names (Russian, Greek, Japanese,
# Arabic), 24-hour clocks.
LANGUAGES = ("en-us", "en-gb", "de", "de-ch", "fr", "ru", "el", "ja", "ar", "hi", "pt-br")
ZONES = ("UTC", "America/St_Johns", "Asia/Kathmandu", "Pacific/Chatham")


def _datetimes():
    import datetime as dt
    from zoneinfo import ZoneInfo

    utc = dt.UTC
    values = [
        dt.datetime(2026, month, 1 + month, hour, minute, 7, 123, tzinfo=utc)
        for month in range(1, 13)
        for hour, minute in ((0, 0), (0, 5), (11, 59), (12, 0), (12, 30), (23, 0))
    ]
    values += [
        dt.datetime(2026, 3, 8, 6, 30, tzinfo=utc),  # the hour New York's clocks skip, seen from UTC
        dt.datetime(2026, 11, 1, 5, 30, tzinfo=utc),  # and the hour they repeat
        dt.datetime(2026, 11, 1, 1, 30, fold=1, tzinfo=ZoneInfo("America/New_York")),
        dt.datetime(1, 1, 1, 12, 0, tzinfo=utc),
        dt.datetime(2024, 2, 29, 0, 0),  # naive: shown as it is
    ]
    return values


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_pages_formats_write_what_djangos_display_for_field_writes(language):
    """PageFormats reads the language's separators, zone, date format and words once a page; every
    value it writes equals Django's own formatting of it, in every zone."""
    from decimal import Decimal

    from django.contrib.admin.utils import display_for_field
    from django.db import models
    from django.utils import dateformat, timezone, translation

    from crm.admin.result_rows import PageFormats

    when = models.DateTimeField()
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    ratio = models.DecimalField(max_digits=5, decimal_places=0)
    count, share = models.IntegerField(), models.FloatField()
    numbers = [
        (amount, Decimal("1234567.891")),
        (amount, Decimal("-0.005")),
        (amount, Decimal("12")),
        (ratio, Decimal("45.5")),
        (count, 0),
        (count, -98765432),
        (count, 1234),
        (share, 1234.5678),
        (share, 1e21),
        (share, -0.25),
    ]
    with translation.override(language):
        for zone in ZONES:
            with timezone.override(zone):
                page = PageFormats()
                for value in _datetimes():
                    assert page.datetime(value) == display_for_field(value, when, "-"), (zone, value)
                    # Every word the format letters name, whichever format the language uses.
                    for letter in "aAbDEFlMNP":
                        assert page.date_format(value).format(letter) == dateformat.format(value, letter)
                # A date set on an instance's date-time field is written as a date, as Django does.
                day = _datetimes()[0].date()
                assert page.datetime(day) == display_for_field(day, when, "-")
        page = PageFormats()
        for field, value in numbers:
            places = getattr(field, "decimal_places", None)
            assert page.number(value, places) == display_for_field(value, field, "-"), (field, value)


@pytest.mark.django_db
@pytest.mark.parametrize("language,zone", [("de", "Asia/Kathmandu"), ("hi", "America/St_Johns")])
def test_a_changelist_in_another_language_and_zone_writes_djangos_rows(
    admin_client, varied_records, language, zone
):
    from django.utils import timezone, translation

    for url in (reverse("admin:crm_lead_changelist"), reverse("admin:sales_opportunity_changelist")):
        _response, cl = changelist_of(admin_client, url)
        with translation.override(language), timezone.override(zone):
            ours = our_rows(cl)
            assert ours == djangos_rows(cl), url
        assert ours != our_rows(cl), url  # the dates and numbers are not those of en-us and UTC
