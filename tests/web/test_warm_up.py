"""A server's workers get their pages and the newest processes ready before anyone is served, so the
first people to open a page after a restart do not wait behind template compiling and spec parsing."""

from __future__ import annotations

from engine.runtime import Engine
from webui import create_app

EVERYDAY_PAGES = {"auth/sign_in.html", "inbox/index.html", "inbox/task.html", "links/form.html"}


def compiled(app) -> set[str]:
    return {template.name for template in app.jinja_env.cache.values()}


def test_a_server_compiles_its_pages_and_parses_the_newest_processes_before_the_first_request(
    deployed, db, clock, monkeypatch
):
    parsed = []
    monkeypatch.setattr(Engine, "spec", lambda engine, definition: parsed.append(definition.process_id))
    app = create_app(
        {
            "DATABASE_URL": db.url.render_as_string(hide_password=False),
            "CLOCK": clock,
            "SECRET_KEY": "test-secret",
            "WARM_UP": True,
        }
    )
    assert compiled(app) >= EVERYDAY_PAGES
    assert sorted(parsed) == sorted(definition.process_id for definition in deployed.definitions)


def test_a_server_starts_even_before_its_database_is_set_up(tmp_path, clock, caplog):
    app = create_app(
        {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'not-yet.sqlite'}",
            "CLOCK": clock,
            "SECRET_KEY": "test-secret",
            "WARM_UP": True,
        }
    )
    assert compiled(app) >= EVERYDAY_PAGES
    assert "process specs not parsed ahead" in caplog.text


def test_without_the_setting_nothing_is_prepared_ahead(app):  # tests and `pep-web demo` do not pay for it
    assert not compiled(app)
