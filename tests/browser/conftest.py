"""Browser tests: Debian's Chromium driven by Playwright against a real Daphne, the test
database and the real Redis. Never `playwright install`: the browser is the system one."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
from django.db import connections

from tests.live import BASE_DIR, LiveProcess, free_port, process_env, wait_for_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = BASE_DIR / "test-artifacts"
T = TypeVar("T")


def off_loop(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run database or channel-layer work in a plain thread. Playwright's sync API keeps an
    event loop marked as running on the test's thread, so Django's ORM (async-unsafe check)
    and async_to_sync refuse to run there."""

    def run() -> T:
        try:
            return fn(*args, **kwargs)
        finally:
            connections.close_all()  # a thread's connection would outlive it and block the DB teardown

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result(timeout=60)


class WebProcess:
    """Daphne on a fixed port that a test can stop and start again, as a deploy or a crash
    would, while the browser keeps the page open."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: LiveProcess | None = None
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        argv = [
            sys.executable, "-m", "daphne", "--bind", "127.0.0.1", "--port", str(self.port),
            "config.asgi:application",
        ]  # fmt: skip
        env = process_env()
        env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        self.proc = LiveProcess("daphne-browser", argv, env)
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            self.proc = None


@pytest.fixture(scope="session")
def collected_static() -> None:
    # Test settings serve static files the production way (WhiteNoise from STATIC_ROOT).
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "--clear", "-v", "0"],
        cwd=BASE_DIR,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test"},
        check=True,
    )


@pytest.fixture
def web(transactional_db: None, collected_static: None) -> Iterator[WebProcess]:
    server = WebProcess()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def page(web: WebProcess, request: pytest.FixtureRequest) -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium package")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(base_url=web.url, viewport={"width": 1280, "height": 900})
        context.set_default_timeout(15_000)
        page = context.new_page()
        console_log: list[str] = []
        page.on("console", lambda msg: console_log.append(f"{msg.type}: {msg.text}"))
        page.on("pageerror", lambda exc: console_log.append(f"pageerror: {exc}"))
        try:
            yield page
        finally:
            if console_log:
                ARTIFACTS.mkdir(exist_ok=True)
                (ARTIFACTS / f"{_slug(request.node.name)}-console.log").write_text("\n".join(console_log))
            context.close()
            browser.close()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")


@pytest.fixture
def shot(page: Any, request: pytest.FixtureRequest) -> Callable[[str], Path]:
    """shot("step") saves test-artifacts/<test>/<nn>-<step>.png."""
    folder = ARTIFACTS / _slug(request.node.name)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    counter = iter(range(1, 100))

    def take(step: str) -> Path:
        path = folder / f"{next(counter):02d}-{_slug(step)}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
