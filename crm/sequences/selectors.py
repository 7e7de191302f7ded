"""Reads of sequences and enrollments, with record visibility applied."""

from django.db.models import Count, Q, QuerySet

from crm.actors import Actor
from crm.models import EnrollmentStatus, Sequence, SequenceEnrollment


def sequence_list(*, user: Actor, filters=None) -> QuerySet[Sequence]:
    return (
        Sequence.objects.annotate(
            step_count=Count("steps", distinct=True),
            active_enrollments=Count(
                "enrollments", filter=Q(enrollments__status=EnrollmentStatus.ACTIVE), distinct=True
            ),
        )
        .prefetch_related("steps")
        .order_by("name", "id")
    )


def enrollment_list(*, user: Actor, filters=None) -> QuerySet[SequenceEnrollment]:
    """Enrollments of the leads the user sees, and of contacts (every member of staff sees them)."""
    from crm.selectors import lead_visible_to, user_sees_everything

    enrollments = SequenceEnrollment.objects.select_related("sequence", "lead", "contact").order_by("-id")
    if getattr(user, "is_system", False) or user_sees_everything(user):
        return enrollments
    return enrollments.filter(Q(lead__isnull=True) | Q(lead__in=lead_visible_to(user)))
