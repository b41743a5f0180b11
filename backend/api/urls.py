from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.authtoken.views import obtain_auth_token

from backend.dashboard import api as dashboard_api

from . import ops
from .portfolios import PortfolioDetailView, PortfolioListView, PositionDetailView, PositionListView
from .prices_refresh import PricesRefreshView

# A symbol may hold '/', so the history route is tried first; "refresh" is the forced-refresh
# endpoint's word, never a symbol here.
SYMBOL = r"(?P<symbol>(?!refresh/$)[^?#]{1,40}?)"

urlpatterns = [
    path("auth/token/", obtain_auth_token, name="api-token"),
    path("health/", ops.HealthView.as_view(), name="api-health"),
    path("realtime/status/", ops.RealtimeStatusView.as_view(), name="api-realtime-status"),
    path("realtime/connections/", ops.RealtimeConnectionsView.as_view(), name="api-realtime-connections"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("portfolios/", PortfolioListView.as_view(), name="api-portfolios"),
    path("portfolios/<int:portfolio_id>/", PortfolioDetailView.as_view(), name="api-portfolio"),
    path("portfolios/<int:portfolio_id>/positions/", PositionListView.as_view(), name="api-positions"),
    # path: symbols may hold '/', e.g. BRK/B.
    path("portfolios/<int:portfolio_id>/positions/<path:symbol>/", PositionDetailView.as_view(), name="api-position"),
    path("prices/refresh/", PricesRefreshView.as_view(), name="api-prices-refresh"),
    re_path(rf"^prices/{SYMBOL}/history/$", dashboard_api.price_history_list, name="price-history"),
    re_path(rf"^prices/{SYMBOL}/$", dashboard_api.price_detail, name="price-detail"),
]
