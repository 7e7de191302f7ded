"""Who sees which job: everyone their own; CRM Admins and superusers all of them."""

from django.db.models import QuerySet

from crm.actors import Actor, is_system
from crm.models import Job
from crm.selectors import user_sees_everything


def job_visible_to(user: Actor) -> QuerySet[Job]:
    if is_system(user) or user_sees_everything(user):
        return Job.objects.all()
    if not user.is_authenticated or not user.is_active:
        return Job.objects.none()
    return Job.objects.filter(created_by=user)


def job_list(*, user: Actor, filters=None) -> QuerySet[Job]:
    """The jobs ``user`` sees, newest first, with who started them (one query a page)."""
    return job_visible_to(user).select_related("created_by").order_by("-id")
