"""Beat's schedules (django-celery-beat's admin) for CRM Admins too, not only for superusers.

The periodic tasks (the outbox relay, webhook retries, the jobs' sweep) are the back office's to run:
a CRM Admin sees and edits them as they manage webhooks, without a permission grant per model.
"""

from django.contrib import admin
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)

from crm.webhooks.services import webhooks_manageable_by


class ManagedByCrmAdminsMixin:
    def has_module_permission(self, request):
        return webhooks_manageable_by(request.user) or super().has_module_permission(request)

    def has_view_permission(self, request, obj=None):
        return webhooks_manageable_by(request.user) or super().has_view_permission(request, obj)

    def has_add_permission(self, request):
        return webhooks_manageable_by(request.user) or super().has_add_permission(request)

    def has_change_permission(self, request, obj=None):
        return webhooks_manageable_by(request.user) or super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return webhooks_manageable_by(request.user) or super().has_delete_permission(request, obj)


def register() -> None:
    """Swap beat's registered admins for ones CRM Admins may use (their behaviour otherwise kept)."""
    for model in (PeriodicTask, IntervalSchedule, CrontabSchedule, SolarSchedule, ClockedSchedule):
        current = admin.site._registry.get(model)
        if current is None or isinstance(current, ManagedByCrmAdminsMixin):
            continue
        base = type(current)
        attributes = {"__module__": base.__module__}
        if model is PeriodicTask:
            attributes["form"] = _task_form(base.form)
        admin.site.unregister(model)
        admin.site.register(model, type(base.__name__, (ManagedByCrmAdminsMixin, base), attributes))


def _task_form(form):
    """Beat's periodic task form reads ``cleaned_data["task"]`` in ``clean()``: when the field itself
    was refused (a null character, too long), that was a KeyError and a 500. The field's own error is
    the answer then."""

    class PeriodicTaskForm(form):
        def clean(self):
            if "task" not in self.cleaned_data and not self.cleaned_data.get("regtask"):
                return self.cleaned_data
            return super().clean()

    return PeriodicTaskForm
