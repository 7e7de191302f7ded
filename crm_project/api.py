"""The REST API's wiring: one router gathering every app's viewsets, mounted at /api/v1/crm/.

The plumbing the apps share (router class, pagination, errors, base viewset) is in crm.api.
"""

from crm.api.framework import ApiRouter


def build_router() -> ApiRouter:
    from activities.api.urls import router as activities_router
    from crm.api.urls import router as crm_router
    from sales.api.urls import router as sales_router

    router = ApiRouter()
    for app_router in (crm_router, sales_router, activities_router):
        router.registry.extend(app_router.registry)
    return router
