"""No Docker engine runs on the development machines: the compose file, Dockerfile and nginx
config are checked structurally here."""

from __future__ import annotations

from pathlib import Path

import yaml

BASE_DIR = Path(__file__).resolve().parents[3]


def compose() -> dict:
    return yaml.safe_load((BASE_DIR / "docker-compose.yml").read_text())


def test_compose_runs_every_process_on_postgres_and_redis():
    services = compose()["services"]
    assert {"postgres", "redis", "web", "worker", "beat", "flower", "nginx"} <= set(services)
    for name in ("postgres", "redis", "worker"):
        assert "healthcheck" in services[name], name
    for name in ("web", "worker", "beat", "flower"):
        env = services[name]["environment"]
        assert env["DJANGO_SETTINGS_MODULE"] == "config.settings.production"
        assert env["DATABASE_URL"].startswith("postgres://")
        assert env["REDIS_URL"].startswith("redis://")


def test_compose_starts_app_processes_only_after_healthy_services_and_migrations():
    services = compose()["services"]
    for name in ("web", "worker", "beat", "flower"):
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy", name
        assert depends["redis"]["condition"] == "service_healthy", name
    assert services["web"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["nginx"]["depends_on"]["web"]["condition"] == "service_healthy"


def test_compose_requires_secrets_instead_of_defaulting_them():
    text = (BASE_DIR / "docker-compose.yml").read_text()
    assert "SECRET_KEY: ${SECRET_KEY:?" in text
    assert "FLOWER_BASIC_AUTH: ${FLOWER_BASIC_AUTH:?" in text


def test_dockerfile_is_slim_non_root_with_static_files_and_a_healthcheck():
    text = (BASE_DIR / "docker" / "Dockerfile").read_text()
    assert text.startswith("#") or "FROM python:3.11-slim" in text
    assert "FROM python:3.11-slim" in text
    assert "collectstatic --noinput" in text
    assert "\nUSER " in text
    assert "USER root" not in text
    assert "HEALTHCHECK" in text
    assert "requirements/production.txt" in text


def test_nginx_proxies_websockets_and_flower():
    text = (BASE_DIR / "docker" / "nginx.conf").read_text()
    assert "location /ws/" in text
    assert "proxy_set_header Upgrade $http_upgrade" in text
    assert "location /flower/" in text
