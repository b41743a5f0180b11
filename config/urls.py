from django.contrib import admin
from django.urls import include, path

from backend.api.ops import metrics_view

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/", include("backend.api.urls")),
    path("metrics", metrics_view, name="metrics"),
    path("", include("backend.dashboard.urls")),
]
