from django.urls import path

from . import api, views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("status/", views.status_page, name="status"),
    path("status/data/", api.status_data, name="status-data"),
    path("dashboard/watchlist/", api.watchlist, name="watchlist"),
    # `path` converter: symbols such as BRK/B hold a slash.
    path("dashboard/watchlist/<path:symbol>/", api.watchlist_item, name="watchlist-item"),
    path("dashboard/portfolios/<int:portfolio_id>/values/", api.portfolio_values, name="portfolio-values"),
    path("dashboard/portfolios/<int:portfolio_id>/transactions/", api.portfolio_transactions, name="ledger-recent"),
]
