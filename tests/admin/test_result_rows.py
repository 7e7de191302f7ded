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
