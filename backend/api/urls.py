from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from backend.dashboard import api as dashboard_api

from . import ops
from .alerts import AlertDetailView, AlertListView, NotificationListView, NotificationReadView
from .performance import PerformanceView
from .portfolios import PortfolioDetailView, PortfolioListView, PositionDetailView, PositionListView
from .prices_refresh import PricesRefreshView
from .tokens import TokenListView, TokenObtainView
from .transactions import TransactionDetailView, TransactionImportView, TransactionListView

# A symbol may hold '/', so the history route is tried first; "refresh" is the forced-refresh
# endpoint's word, never a symbol here.
SYMBOL = r"(?P<symbol>(?!refresh/$)[^?#]{1,40}?)"

urlpatterns = [
    path("auth/token/", TokenObtainView.as_view(), name="api-token"),
    path("auth/tokens/", TokenListView.as_view(), name="api-tokens"),
    path("health/", ops.HealthView.as_view(), name="api-health"),
    path("realtime/status/", ops.RealtimeStatusView.as_view(), name="api-realtime-status"),
    path("realtime/connections/", ops.RealtimeConnectionsView.as_view(), name="api-realtime-connections"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("alerts/", AlertListView.as_view(), name="api-alerts"),
    path("alerts/<int:alert_id>/", AlertDetailView.as_view(), name="api-alert"),
    path("notifications/", NotificationListView.as_view(), name="api-notifications"),
    path("notifications/<int:event_id>/read/", NotificationReadView.as_view(), name="api-notification-read"),
    path("portfolios/", PortfolioListView.as_view(), name="api-portfolios"),
    path("portfolios/<int:portfolio_id>/", PortfolioDetailView.as_view(), name="api-portfolio"),
    path("portfolios/<int:portfolio_id>/positions/", PositionListView.as_view(), name="api-positions"),
    path("portfolios/<int:portfolio_id>/performance/", PerformanceView.as_view(), name="api-performance"),
    path("portfolios/<int:portfolio_id>/transactions/", TransactionListView.as_view(), name="api-transactions"),
    path(
        "portfolios/<int:portfolio_id>/transactions/import/",
        TransactionImportView.as_view(),
        name="api-transactions-import",
    ),
    path(
        "portfolios/<int:portfolio_id>/transactions/<int:transaction_id>/",
        TransactionDetailView.as_view(),
        name="api-transaction",
    ),
    # path: symbols may hold '/', e.g. BRK/B.
    path("portfolios/<int:portfolio_id>/positions/<path:symbol>/", PositionDetailView.as_view(), name="api-position"),
    path("prices/refresh/", PricesRefreshView.as_view(), name="api-prices-refresh"),
    re_path(rf"^prices/{SYMBOL}/history/$", dashboard_api.price_history_list, name="price-history"),
    re_path(rf"^prices/{SYMBOL}/$", dashboard_api.price_detail, name="price-detail"),
]
