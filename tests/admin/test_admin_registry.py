"""Issue 14, what to build 1: every registered admin writes through the services or cannot write."""

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.test import RequestFactory

from crm.admin.base import INLINE_SAVERS, ServiceHistoryAdmin, ServiceModelAdmin

# Third-party admins we keep as they are, each with the reason.
KEPT_AS_THEY_ARE = {
    # Users, groups and their permissions are Django's own; no CRM rule governs them, and who may
    # manage them is decided by the auth permissions (a CRM Admin only views users).
    "auth.user": "Django's user admin (passwords, permissions): no CRM service owns users.",
    "auth.group": "Django's group admin: roles are permission sets, no CRM service owns them.",
    # A token is a credential, not CRM data: DRF's admin creates one for a user or deletes it.
    "authtoken.tokenproxy": "DRF's token admin: issuing and revoking a credential has no CRM rule.",
    # Lockout records are written by django-axes itself; its admin is for reading and clearing them.
    "axes.accessattempt": "django-axes lockout records: written by axes, cleared by an admin.",
    "axes.accesslog": "django-axes login log: written by axes.",
    "axes.accessfailurelog": "django-axes failure log: written by axes.",
    # Beat's schedules are the task runner's own configuration (when the outbox relay and the webhook
    # retries run), edited as Celery documents them; no CRM record and no CRM rule is involved.
    "django_celery_beat.clockedschedule": "django-celery-beat's schedules: the task runner's own settings.",
    "django_celery_beat.crontabschedule": "django-celery-beat's schedules: the task runner's own settings.",
    "django_celery_beat.intervalschedule": "django-celery-beat's schedules: the task runner's own settings.",
    "django_celery_beat.periodictask": "django-celery-beat's tasks: the task runner's own settings.",
    "django_celery_beat.solarschedule": "django-celery-beat's schedules: the task runner's own settings.",
}

WRITES = ("save_model", "delete_model", "delete_queryset", "save_formset")
HISTORY = ("history_form_view", "render_history_view")


@pytest.fixture
def superuser_request(db):
    request = RequestFactory().get("/admin/")
    request.user = get_user_model().objects.create_superuser("registry", "r@example.com", "pw-registry-1!")
    return request


def _can_write(model_admin, request) -> bool:
    inline = isinstance(model_admin, admin.options.InlineModelAdmin)
    return any(
        (
            model_admin.has_add_permission(request, None)
            if inline
            else model_admin.has_add_permission(request),
            model_admin.has_change_permission(request),
            model_admin.has_delete_permission(request),
        )
    )


def _registered():
    return sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label_lower)


def test_the_third_party_exceptions_are_still_registered():
    labels = {model._meta.label_lower for model, _ in _registered()}
    assert set(KEPT_AS_THEY_ARE) <= labels


@pytest.mark.django_db
@pytest.mark.parametrize(
    "label",
    [m._meta.label_lower for m, _ in _registered() if m._meta.label_lower not in KEPT_AS_THEY_ARE],
)
def test_every_admin_that_can_write_goes_through_the_services(superuser_request, label):
    model = next(m for m, _ in _registered() if m._meta.label_lower == label)
    model_admin = admin.site._registry[model]
    cls = type(model_admin)
    if not _can_write(model_admin, superuser_request):
        return

    assert isinstance(model_admin, ServiceModelAdmin), f"{cls.__name__} writes without ServiceModelAdmin"
    for name in WRITES:
        assert getattr(cls, name) is getattr(ServiceModelAdmin, name), f"{cls.__name__}.{name} is overridden"
    if hasattr(model, "history"):
        assert isinstance(model_admin, ServiceHistoryAdmin), (
            f"{cls.__name__}'s history pages skip the services"
        )
        for name in HISTORY:
            assert getattr(cls, name) is getattr(ServiceHistoryAdmin, name), f"{cls.__name__}.{name}"
    if model_admin.has_add_permission(superuser_request):
        assert cls.create_record is not ServiceModelAdmin.create_record, (
            f"{cls.__name__} has no create service"
        )
    if model_admin.has_change_permission(superuser_request):
        assert cls.update_record is not ServiceModelAdmin.update_record, (
            f"{cls.__name__} has no update service"
        )
    for inline in model_admin.get_inline_instances(superuser_request, None):
        if _can_write(inline, superuser_request):
            assert inline.model in INLINE_SAVERS, (
                f"{cls.__name__}'s {type(inline).__name__} has no service saver"
            )


@pytest.mark.django_db
def test_a_new_admin_that_saves_around_the_services_is_caught(superuser_request):
    """The check above fails for a plain ModelAdmin (what the registry test is for)."""

    class Plain(admin.ModelAdmin):
        pass

    from crm.models import Tag

    plain = Plain(Tag, admin.site)
    assert _can_write(plain, superuser_request) and not isinstance(plain, ServiceModelAdmin)
