"""Start Flower with basic auth. Flower has no authentication by default and its HTTP API can
run tasks and shut workers down, so we refuse to start it without FLOWER_BASIC_AUTH."""

from __future__ import annotations

import os


def flower_argv(environ: dict[str, str]) -> list[str]:
    auth = environ.get("FLOWER_BASIC_AUTH", "")
    if ":" not in auth or auth.startswith(":") or auth.endswith(":"):
        raise SystemExit("FLOWER_BASIC_AUTH must be set to user:password (Flower would be open to anyone).")
    argv = ["celery", "--app", "config", "flower", f"--port={environ.get('FLOWER_PORT', '5555')}"]
    argv.append(f"--basic-auth={auth}")
    if environ.get("FLOWER_URL_PREFIX"):
        argv.append(f"--url-prefix={environ['FLOWER_URL_PREFIX']}")
    return argv


def main() -> None:
    argv = flower_argv(dict(os.environ))
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main()
