"""Container HEALTHCHECK: ask this container's Daphne for /api/health/ as a real client would
(with a Host it accepts); healthy and degraded pass, unhealthy or no answer fails."""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    host = os.environ.get("ALLOWED_HOSTS", "localhost").split(",")[0].strip() or "localhost"
    request = urllib.request.Request(
        f"http://127.0.0.1:{os.environ.get('PORT', '8000')}/api/health/",
        headers={"Host": host.lstrip("."), "X-Forwarded-Proto": "https"},
    )
    try:
        with urllib.request.urlopen(request, timeout=8) as response:  # noqa: S310 - fixed loopback URL
            return 0 if response.status < 500 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"healthcheck: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
