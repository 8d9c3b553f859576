"""Web fixtures: the app on the test database, signed-in clients for each person of the demo council."""

from __future__ import annotations

import re

import pytest

from engine import clock as clocks
from engine.deploy import Bundle, deploy
from engine.models import User
from webui import create_app
from webui.auth import hash_password

from ..conftest import BASIC_BUNDLE

PASSWORD = "correct horse battery staple"
PASSWORD_HASH = hash_password(PASSWORD)  # Argon2 is slow on purpose: hash once for the whole run


@pytest.fixture
def app(db, clock, council):
    app = create_app({
        "TESTING": True, "DATABASE_URL": db.url.render_as_string(hide_password=False), "CLOCK": clock,
        "SECRET_KEY": "test-secret", "SESSION_COOKIE_SECURE": False, "SERVER_NAME": "localhost",
    })
    with council.begin() as s:
        for user in s.query(User):
            user.password_hash = PASSWORD_HASH
    yield app
    app.extensions["pep"].sessions.kw["bind"].dispose()


@pytest.fixture
def deployed_app(app, council, clock):
    with clocks.using(clock), council.begin() as s:
        deploy(s, Bundle.from_dirs(BASIC_BUNDLE), actor="owner@demo.test")
    return app


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


class Browser:
    """A test client that signs in and posts forms with their CSRF token, like a person would."""

    def __init__(self, app, email: str | None = None):
        self.client = app.test_client()
        self.email = email
        if email:
            self.sign_in(email)

    def sign_in(self, email: str, password: str = PASSWORD):
        page = self.client.get("/sign-in")
        return self.client.post("/sign-in", data={"email": email, "password": password,
                                                  "csrf_token": csrf_token(page.get_data(as_text=True))})

    def get(self, url, **kwargs):
        return self.client.get(url, **kwargs)

    def post(self, url, data=None, page_url=None, **kwargs):
        """Post `data` with the CSRF token of `page_url` (default: the inbox)."""
        page = self.client.get(page_url or "/inbox")
        return self.client.post(url, data={**(data or {}), "csrf_token": csrf_token(page.get_data(as_text=True))},
                                **kwargs)


@pytest.fixture
def browser(app):
    return lambda email=None: Browser(app, email)
