"""The sales app's API routes, gathered under /api/v1/crm/ by crm_project.api.build_router()."""

from rest_framework.routers import SimpleRouter

from sales.api import catalog, commissions, operations, quotes, territories, views

router = SimpleRouter()
router.register("opportunities", views.OpportunityViewSet, basename="opportunity")
router.register("dashboard", views.DashboardViewSet, basename="dashboard")
router.register("products", catalog.ProductViewSet, basename="product")
router.register("price-lists", catalog.PriceListViewSet, basename="price-list")
router.register("price-list-items", catalog.PriceListItemViewSet, basename="price-list-item")
router.register("quotes", quotes.QuoteViewSet, basename="quote")
router.register("exchange-rates", operations.ExchangeRateViewSet, basename="exchange-rate")
router.register("quotas", operations.QuotaViewSet, basename="quota")
router.register("performance", operations.PerformanceViewSet, basename="performance")
router.register("territories", territories.TerritoryViewSet, basename="territory")
router.register("territory-runs", territories.TerritoryRunViewSet, basename="territory-run")
router.register("commission-plans", commissions.CommissionPlanViewSet, basename="commission-plan")
router.register(
    "commission-assignments", commissions.CommissionAssignmentViewSet, basename="commission-assignment"
)
router.register(
    "commission-statements", commissions.CommissionStatementViewSet, basename="commission-statement"
)
