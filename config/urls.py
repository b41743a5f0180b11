from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from backend.api.logins import login_throttled
from backend.api.ops import metrics_view

urlpatterns = [
    # Both login pages are throttled against password guessing (backend/api/logins.py); each
    # shadows the route of the same path in the include that follows it.
    path("admin/login/", login_throttled(admin.site.login), name="admin-login-throttled"),
    path("admin/", admin.site.urls),
    path(
        "accounts/login/",
        login_throttled(auth_views.LoginView.as_view(), template="registration/login.html"),
        name="login",
    ),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/", include("backend.api.urls")),
    path("metrics", metrics_view, name="metrics"),
    path("", include("backend.dashboard.urls")),
]
