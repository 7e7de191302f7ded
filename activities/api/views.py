"""Viewset for activities. Reads go through activities.selectors, writes through activities.services."""

from drf_spectacular.utils import extend_schema_view

from activities import selectors, services
from activities.api.serializers import ActivitySerializer, ActivityTemplateSerializer
from activities.filters import ActivityFilter, ActivityTemplateFilter
from crm.api.viewsets import HistoryViewSetMixin, ServiceModelViewSet, crud_schema


@extend_schema_view(**crud_schema("activity", ActivitySerializer))
class ActivityViewSet(HistoryViewSetMixin, ServiceModelViewSet):
    """Calls, meetings, tasks, emails and notes, each linked to a lead, opportunity, contact or account."""

    serializer_class = ActivitySerializer
    filterset_class = ActivityFilter
    selector = staticmethod(selectors.activity_list)

    def create_record(self, data):
        return services.activity_create(user=self.request.user, data=data)

    def update_record(self, instance, data):
        return services.activity_update(activity=instance, user=self.request.user, data=data)

    def delete_record(self, instance):
        services.activity_delete(activity=instance, user=self.request.user)


@extend_schema_view(**crud_schema("activity template", ActivityTemplateSerializer))
class ActivityTemplateViewSet(ServiceModelViewSet):
    """Ready-made activities: type, subject, call script or agenda, duration, and the follow-up that
    completing one schedules. Everyone reads them; managers and CRM Admins write them."""

    serializer_class = ActivityTemplateSerializer
    filterset_class = ActivityTemplateFilter
    selector = staticmethod(selectors.activity_template_list)

    def create_record(self, data):
        return services.activity_template_create(user=self.request.user, data=data)

    def update_record(self, instance, data):
        return services.activity_template_update(user=self.request.user, template=instance, data=data)

    def delete_record(self, instance):
        services.activity_template_delete(user=self.request.user, template=instance)
