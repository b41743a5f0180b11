"""The dashboard serves the npm package's client file itself (clients/js/src), not a copy."""

from __future__ import annotations

from pathlib import Path

from django.contrib.staticfiles import finders

BASE_DIR = Path(__file__).resolve().parents[2]
PACKAGE_FILE = BASE_DIR / "clients" / "js" / "src" / "tickerflow-client.js"


def test_the_static_client_is_the_package_file():
    found = finders.find("dashboard/tickerflow-client.js")
    assert found is not None
    assert Path(found).is_symlink(), "a copy would drift from the package"
    assert Path(found).resolve() == PACKAGE_FILE.resolve()


def test_the_dashboard_imports_it_by_its_served_name():
    dashboard = (BASE_DIR / "backend" / "dashboard" / "static" / "dashboard" / "dashboard.js").read_text()
    assert 'from "./tickerflow-client.js"' in dashboard
