"""The activities app's API routes, gathered under /api/v1/crm/ by crm_project.api.build_router()."""

from rest_framework.routers import SimpleRouter

from activities.api import views

router = SimpleRouter()
router.register("activities", views.ActivityViewSet, basename="activity")
