"""The list of apps in the admin's sidebar and on the dashboard, written by crm.admin.app_list, is
Django's ``admin/app_list.html``, whoever looks and wherever they are (issue 24: admin pages at the
cost of what they show)."""

from pathlib import Path

import django.contrib.admin
import pytest
from django.contrib import admin
from django.contrib.auth.models import AnonymousUser
from django.template import Context, Template
from django.test import RequestFactory
from django.utils import translation

from crm.admin.app_list import app_list_html
from tests.factories import UserFactory

DJANGOS_TEMPLATE = Path(django.contrib.admin.__file__).parent / "templates" / "admin" / "app_list.html"


def djangos_html(app_list, *, show_changelinks: bool, request) -> str:
    template = Template(DJANGOS_TEMPLATE.read_text())
    return template.render(
        Context({"app_list": app_list, "show_changelinks": show_changelinks, "request": request})
    )


PATHS = [
    "/admin/",
    "/admin/crm/",
    "/admin/crm/lead/",
    "/admin/crm/lead/12/change/",
    "/admin/sales/opportunity/board/",
    "/admin/crm/lead/?q=x&o=1",
    "/admin/crm/lead/ä <b>/",
]


@pytest.mark.django_db
@pytest.mark.parametrize("persona", ["superuser", "owner", "manager", "crm_admin", "outsider", "nobody"])
def test_the_app_list_is_djangos_for_every_user_and_page(people, persona):
    # "nobody": staff, in no role (the pages every staff user has: notifications, saved views).
    user = people.users.get(persona) or UserFactory(username="no-rights", is_staff=True)
    factory = RequestFactory()
    compared = 0
    for path in PATHS:
        request = factory.get(path)
        request.user = user
        app_list = admin.site.get_app_list(request)
        for show_changelinks in (True, False):
            ours = app_list_html(app_list, show_changelinks=show_changelinks, path=request.path)
            django_s = djangos_html(app_list, show_changelinks=show_changelinks, request=request)
            assert_html_equal(ours, django_s)
            compared += 1
    assert compared == 2 * len(PATHS)


@pytest.mark.django_db
def test_the_app_list_marks_the_page_and_its_app_and_is_translated(admin_client, admin_user):
    page = admin_client.get("/admin/crm/lead/").content.decode()
    assert '<tr class="model-lead current-model">' in page
    assert '<a href="/admin/crm/lead/" aria-current="page">Leads</a>' in page
    assert 'class="app-crm module current-app"' in page
    assert 'class="app-sales module"' in page  # another app is not current
    request = RequestFactory().get("/admin/")
    request.user = admin_user
    with translation.override("fr"):
        app_list = admin.site.get_app_list(request)
        ours = app_list_html(app_list, show_changelinks=True, path="/admin/")
        assert_html_equal(ours, djangos_html(app_list, show_changelinks=True, request=request))
        assert "Ajouter" in ours


def test_a_user_who_may_see_nothing_is_told_so():
    request = RequestFactory().get("/admin/")
    request.user = AnonymousUser()
    assert_html_equal(
        app_list_html([], show_changelinks=True, path="/admin/"),
        djangos_html([], show_changelinks=True, request=request),
    )


def test_names_and_urls_are_escaped():
    app_list = [
        {
            "name": 'Tools <b>"x"</b>',
            "app_label": "tools",
            "app_url": "/admin/tools/?a=1&b=2",
            "models": [
                {
                    "name": "<script>alert(1)</script>",
                    "object_name": "Widget",
                    "admin_url": "/admin/tools/widget/?x=<y>",
                    "add_url": None,
                    "view_only": True,
                },
                {
                    "name": "Hidden",
                    "object_name": "Hidden",
                    "admin_url": None,
                    "add_url": "/admin/tools/hidden/add/",
                },
            ],
        }
    ]
    request = RequestFactory().get("/admin/tools/widget/")
    for show_changelinks in (True, False):
        ours = str(app_list_html(app_list, show_changelinks=show_changelinks, path=request.path))
        assert "<script>" not in ours and "<b>" not in ours
        assert_html_equal(ours, djangos_html(app_list, show_changelinks=show_changelinks, request=request))


def assert_html_equal(ours, djangos) -> None:
    from django.test.html import parse_html

    assert parse_html(str(ours)) == parse_html(str(djangos))


@pytest.mark.django_db
@pytest.mark.parametrize("persona", ["superuser", "owner", "manager", "crm_admin", "outsider", "nobody"])
def test_the_sites_app_dict_is_djangos_for_every_user(people, persona):
    """CRMAdminSite builds the list with the URLs reversed once (crm_project.admin_site): the same
    models, permissions and URLs as Django's own ``_build_app_dict``, for the whole site and one app,
    and again under another script prefix."""
    from django.urls import set_script_prefix

    user = people.users.get(persona) or UserFactory(username="no-rights", is_staff=True)
    request = RequestFactory().get("/admin/")
    request.user = user
    for prefix in ("/", "/crm/"):
        set_script_prefix(prefix)
        try:
            for label in (None, "crm", "sales"):
                ours = admin.site._build_app_dict(request, label)
                assert ours == admin.AdminSite._build_app_dict(admin.site, request, label)
                if persona == "superuser":
                    assert ours and all(
                        model["admin_url"].startswith(f"{prefix}admin/")
                        for app in ours.values()
                        for model in app["models"]
                    )
        finally:
            set_script_prefix("/")
