from django.conf import settings
from django.http import HttpRequest


def ops_links(request: HttpRequest) -> dict[str, str]:
    """Links operators need on every admin page."""
    return {"FLOWER_URL": settings.FLOWER_URL}
