"""``crm.admin_links``: a record's admin change URL reversed once per URL name, then the id put in, is
the URL Django's ``reverse`` gives, whatever the script prefix, URL configuration or id."""

import pytest
from django.urls import NoReverseMatch, clear_script_prefix, reverse, set_script_prefix

from activities.models import Activity
from crm.admin_links import admin_change_url, admin_url
from crm.models import Lead
from sales.models import Opportunity


@pytest.mark.parametrize("model", [Lead, Opportunity, Activity])
@pytest.mark.parametrize("pk", [1, 42, 2_147_483_647, 9_000_000_000])
def test_a_change_url_is_the_one_django_reverses(model, pk):
    opts = model._meta
    assert admin_change_url(opts, pk) == reverse(
        f"admin:{opts.app_label}_{opts.model_name}_change", args=[pk]
    )


def test_an_id_that_is_not_an_integer_is_quoted_as_django_quotes_it():
    name = "admin:crm_lead_change"
    for pk in ("a b", "é/1", "x?y#z", True):
        assert admin_change_url(Lead._meta, pk) == reverse(name, args=[pk])


def test_the_script_prefix_and_the_url_configuration_are_part_of_the_answer(settings):
    before = admin_change_url(Lead._meta, 7)
    set_script_prefix("/crm/")
    try:
        assert (
            admin_change_url(Lead._meta, 7) == "/crm" + before == reverse("admin:crm_lead_change", args=[7])
        )
        assert admin_url("admin:activities_activity_add") == reverse("admin:activities_activity_add")
        assert admin_url("admin:activities_activity_add").startswith("/crm/")
    finally:
        clear_script_prefix()
        set_script_prefix("/")
    assert admin_change_url(Lead._meta, 7) == before
    # Another URL configuration without the admin: no answer kept from the first one.
    settings.ROOT_URLCONF = "tests.admin.urls_without_admin"
    with pytest.raises(NoReverseMatch):
        admin_change_url(Lead._meta, 7)
    with pytest.raises(NoReverseMatch):
        admin_url("admin:activities_activity_add")
