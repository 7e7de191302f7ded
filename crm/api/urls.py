"""The crm app's API routes, gathered under /api/v1/crm/ by crm_project.api.build_router()."""

from rest_framework.routers import SimpleRouter

from crm.api import keys, views
from crm.jobs import api as jobs
from crm.notifications import api as notifications
from crm.webhooks import api as webhooks

router = SimpleRouter()
router.register("leads", views.LeadViewSet, basename="lead")
router.register("accounts", views.AccountViewSet, basename="account")
router.register("contacts", views.ContactViewSet, basename="contact")
router.register("pipelines", views.PipelineViewSet, basename="pipeline")
router.register("stages", views.StageViewSet, basename="stage")
router.register("tags", views.TagViewSet, basename="tag")
router.register("lost-reasons", views.LostReasonViewSet, basename="lost-reason")
# Before "webhooks": "webhooks/deliveries/5/" is a delivery, not a subscription's sub-route.
router.register("webhooks/deliveries", webhooks.WebhookDeliveryViewSet, basename="webhook-delivery")
router.register("webhooks", webhooks.WebhookSubscriptionViewSet, basename="webhook")
router.register("jobs", jobs.JobViewSet, basename="job")
router.register("notifications", notifications.NotificationViewSet, basename="notification")
router.register(
    "notification-preferences",
    notifications.NotificationPreferenceViewSet,
    basename="notification-preference",
)
router.register("api-keys", keys.ApiKeyViewSet, basename="api-key")
