"""Accounts, sessions and sign-in, as the people who use them and as someone who should not get in.

A session can be ended: signing out, changing a password, an administrator's reset or closing the
account ends every session of that person, a copy of the cookie included; a session also ends after
30 minutes without a request and 8 hours after signing in. Guessing is slowed down per account and
address and per address, so that a stranger cannot slow down a named person from elsewhere. A new
password follows the NCSC's advice. After signing in, only a page of this site is followed."""

from __future__ import annotations

import re
import threading
import time

import pytest
from sqlalchemy import select

from engine.models import SignInFailure, User

from .conftest import PASSWORD, Browser, csrf_token

NEW_PASSWORD = "kettle harbour violin meadow"


def from_address(person: Browser, address: str) -> Browser:
    person.client.environ_base["REMOTE_ADDR"] = address
    return person


def stolen_copy(app, person: Browser) -> Browser:
    """Someone else's browser holding a copy of `person`'s session cookie, from another address."""
    thief = from_address(Browser(app), "203.0.113.66")
    thief.client.set_cookie("session", person.client.get_cookie("session").value, domain="localhost")
    return thief


def signed_in(person: Browser) -> bool:
    return person.get("/inbox").status_code == 200


def user_id(council, email: str) -> int:
    with council() as s:
        return s.scalars(select(User.id).where(User.email == email)).one()


# ---- sessions end -----------------------------------------------------------------------------


def test_signing_out_ends_a_copy_of_the_session_too(app, browser):
    sw = browser("sw@demo.test")
    thief = stolen_copy(app, sw)
    assert signed_in(thief)  # a copy works while the session lasts...
    sw.post("/sign-out")
    assert not signed_in(thief) and not signed_in(sw)  # ...and not after signing out


def test_signing_out_ends_every_session_of_that_person_and_no_one_elses(app, browser):
    laptop, phone, colleague = browser("sw@demo.test"), browser("sw@demo.test"), browser("dt@demo.test")
    phone.post("/sign-out")
    assert not signed_in(laptop) and signed_in(colleague)


def test_changing_the_password_ends_every_other_session_and_keeps_this_one(app, browser):
    sw = browser("sw@demo.test")
    thief = stolen_copy(app, sw)
    changed = sw.post(
        "/account/password",
        {"current_password": PASSWORD, "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD},
        page_url="/account/password",
    )
    assert changed.status_code == 302
    assert "You have been signed out everywhere else" in sw.get("/inbox").get_data(as_text=True)
    assert signed_in(sw) and not signed_in(thief)


def test_an_administrators_reset_ends_every_session_of_that_person(app, browser, council):
    sw = browser("sw@demo.test")
    thief = stolen_copy(app, sw)
    browser("admin@demo.test").post(
        f"/admin/users/{user_id(council, 'sw@demo.test')}/password", page_url="/admin/users"
    )
    assert not signed_in(sw) and not signed_in(thief)


def test_a_closed_account_stays_signed_out_when_it_is_opened_again(app, browser, council):
    sw, admin = browser("sw@demo.test"), browser("admin@demo.test")
    sw_id = user_id(council, "sw@demo.test")
    admin.post(f"/admin/users/{sw_id}", {"active": "no"}, page_url="/admin/users")
    assert not signed_in(sw)
    admin.post(f"/admin/users/{sw_id}", {"active": "yes"}, page_url="/admin/users")
    assert not signed_in(sw)
    assert browser().sign_in("sw@demo.test").status_code == 302


def test_a_session_ends_after_30_minutes_without_a_request(app, browser, clock):
    sw = browser("sw@demo.test")
    for _ in range(3):  # an hour and a half of work, a page every 25 minutes
        clock.advance(minutes=25)
        assert signed_in(sw)
    clock.advance(minutes=30)
    response = sw.get("/tasks/1234")
    assert response.status_code == 302 and "/sign-in?next=/tasks/1234" in response.location
    page = sw.get(response.location).get_data(as_text=True)
    assert "We signed you out because you had not done anything for 30 minutes" in page
    assert "Sign in to see this page" not in page


def test_a_session_ends_8_hours_after_signing_in_however_busy(app, browser, clock):
    sw = browser("sw@demo.test")
    for _ in range(31):  # a page every 15 minutes for 7 hours 45 minutes
        clock.advance(minutes=15)
        assert signed_in(sw)
    clock.advance(minutes=15)
    assert not signed_in(sw)
    assert "signed in more than 8 hours ago" in sw.get("/sign-in").get_data(as_text=True)


def test_the_session_cookie_is_secure_http_only_and_same_site_and_https_is_required(app, browser):
    app.config["SESSION_COOKIE_SECURE"] = True  # as in production, over HTTPS
    person = browser()
    page = person.client.get("/sign-in", base_url="https://localhost")
    response = person.client.post(
        "/sign-in",
        base_url="https://localhost",
        data={"email": "sw@demo.test", "password": PASSWORD, "csrf_token": csrf_token(page.get_data(as_text=True))},
    )
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith("session="))
    assert "; Secure" in cookie and "; HttpOnly" in cookie and "; SameSite=Lax" in cookie
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


def test_no_https_header_is_sent_where_the_service_runs_on_plain_http(app, browser):
    assert "Strict-Transport-Security" not in browser().get("/sign-in").headers  # PEP_SECURE_COOKIES=0


def test_the_server_does_not_name_its_software(app):
    from waitress.server import create_server

    from webui.cli import SERVER_OPTIONS

    server = create_server(app, host="127.0.0.1", port=0, **SERVER_OPTIONS)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", server.effective_port, timeout=10)
        conn.request("GET", "/sign-in", headers={"Host": "localhost"})
        response = conn.getresponse()
        response.read()
        assert response.status == 200 and response.getheader("Server") is None
        conn.close()
    finally:
        # closed in the server's own loop, which then ends: closed from here, the loop could be
        # waiting on the socket as it closes (a bad file descriptor in its thread)
        server.trigger.pull_trigger(server.close)
        thread.join(timeout=5)
        server.task_dispatcher.shutdown()
        assert not thread.is_alive()


# ---- slowing down guessing ------------------------------------------------------------------------


def test_a_stranger_elsewhere_cannot_slow_down_a_persons_sign_in(app, browser):
    stranger = from_address(browser(), "203.0.113.9")
    for _ in range(8):
        stranger.sign_in("sw@demo.test", "guess")
    assert stranger.sign_in("sw@demo.test", "guess again").status_code == 429
    assert from_address(browser(), "198.51.100.7").sign_in("sw@demo.test").status_code == 302


def test_behind_the_https_proxy_a_stranger_cannot_slow_down_a_persons_sign_in_either(app):
    from webui import create_app

    proxied = create_app({**app.config, "PROXY_HOPS": 1})  # PEP_PROXY_HOPS=1: every request comes from the proxy
    try:
        stranger, person = Browser(proxied), Browser(proxied)
        stranger.client.environ_base["HTTP_X_FORWARDED_FOR"] = "203.0.113.9"
        person.client.environ_base["HTTP_X_FORWARDED_FOR"] = "198.51.100.7"
        for _ in range(6):
            stranger.sign_in("sw@demo.test", "guess")
        assert stranger.sign_in("sw@demo.test", "guess again").status_code == 429
        assert person.sign_in("sw@demo.test").status_code == 302
    finally:
        proxied.extensions["pep"].sessions.kw["bind"].dispose()


def test_trying_one_password_on_many_accounts_from_one_address_is_slowed_down(app, browser):
    sprayer = from_address(browser(), "203.0.113.9")
    for n in range(30):  # the address's free failures, each on a different account (most unknown)
        assert sprayer.sign_in(f"person{n}@demo.test", "Winter2026!").status_code == 400
    refused = sprayer.sign_in("dt@demo.test", "Winter2026!")
    assert refused.status_code == 429 and "Too many failed attempts" in refused.get_data(as_text=True)
    assert from_address(browser(), "198.51.100.7").sign_in("dt@demo.test").status_code == 302


def test_an_unknown_email_is_slowed_down_like_a_known_one(app, browser):
    answers = {}
    for email in ("sw@demo.test", "nobody@demo.test"):
        person = browser()
        answers[email] = [person.sign_in(email, "guess").status_code for _ in range(6)]
    assert answers["sw@demo.test"] == answers["nobody@demo.test"] == [400] * 5 + [429]


def test_an_email_longer_than_any_account_is_simply_not_right(app, browser):
    response = browser().sign_in("x" * 300 + "@demo.test", "guess")
    assert response.status_code == 400 and "The email address or password is not right" in response.get_data(
        as_text=True
    )


def test_a_slowed_down_person_may_try_again_after_the_wait_and_success_forgives(app, browser, clock):
    sw = browser()
    for _ in range(5):
        sw.sign_in("sw@demo.test", "guess")
    assert sw.sign_in("sw@demo.test").status_code == 429
    clock.advance(seconds=31)
    assert sw.sign_in("sw@demo.test").status_code == 302
    assert browser().sign_in("sw@demo.test", "one more typo").status_code == 400  # counting starts again


def test_guesses_sent_all_at_once_check_no_more_passwords_than_the_allowance(app, council, monkeypatch):
    import webui.auth

    checked, real_check = [], webui.auth.check_password

    def slow_check(user, password):
        checked.append(password)
        time.sleep(0.05)  # room for the other requests to overtake this one
        return real_check(user, password)

    monkeypatch.setattr(webui.auth, "check_password", slow_check)
    guessers = [Browser(app) for _ in range(10)]
    tokens = [csrf_token(g.get("/sign-in").get_data(as_text=True)) for g in guessers]
    start, answers = threading.Barrier(len(guessers)), []

    def guess(person, token, n):
        start.wait()
        answers.append(
            person.client.post(
                "/sign-in", data={"email": "sw@demo.test", "password": f"guess {n}", "csrf_token": token}
            ).status_code
        )

    threads = [
        threading.Thread(target=guess, args=(g, t, n)) for n, (g, t) in enumerate(zip(guessers, tokens, strict=True))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(checked) <= 5 and answers.count(400) == len(checked) and answers.count(429) == 10 - len(checked)
    with council() as s:
        assert len(s.scalars(select(SignInFailure)).all()) == len(checked)


def test_the_change_password_form_is_slowed_down_after_wrong_current_passwords(app, browser, council):
    with council() as s:
        before = s.scalars(select(User.password_hash).where(User.email == "sw@demo.test")).one()
    sw = browser("sw@demo.test")
    for _ in range(5):
        sw.post(
            "/account/password",
            {"current_password": "guess", "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD},
            page_url="/account/password",
        )
    refused = sw.post(
        "/account/password",
        {"current_password": PASSWORD, "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD},
        page_url="/account/password",
    )
    assert refused.status_code == 429 and "Too many failed attempts" in refused.get_data(as_text=True)
    with council() as s:
        assert s.scalars(select(User.password_hash).where(User.email == "sw@demo.test")).one() == before
    assert from_address(browser(), "198.51.100.7").sign_in("sw@demo.test").status_code == 302  # from elsewhere


# ---- new passwords ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("new", "refusal"),
    [
        ("short", "must be at least 12 characters"),
        (" " * 12, "must not be only spaces"),
        ("Password1234", "too easy to guess"),
        ("qwertyuiop123", "too easy to guess"),
        ("aaaaaaaaaaaaaaaa", "too easy to guess"),
        ("sam social-worker 2026", "must not contain your name or email address"),
        ("sw@demo.test 2026!", "must not contain your name or email address"),
        (PASSWORD, "must be different from your current password"),
    ],
)
def test_a_new_password_that_is_easy_to_guess_is_refused(app, browser, new, refusal):
    sw = browser("sw@demo.test")
    response = sw.post(
        "/account/password",
        {"current_password": PASSWORD, "new_password": new, "confirm_password": new},
        page_url="/account/password",
    )
    assert response.status_code == 422 and refusal in response.get_data(as_text=True)
    assert browser().sign_in("sw@demo.test", new).status_code == 400 or new == PASSWORD


def test_a_few_unrelated_words_make_a_good_password(app, browser):
    sw = browser("sw@demo.test")
    changed = sw.post(
        "/account/password",
        {"current_password": PASSWORD, "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD},
        page_url="/account/password",
    )
    assert changed.status_code == 302
    assert browser().sign_in("sw@demo.test", NEW_PASSWORD).status_code == 302


# ---- where signing in leads ---------------------------------------------------------------------------


def sign_in_with_next(app, query: str):
    person = Browser(app)
    page = person.client.get("/sign-in?" + query)
    return person.client.post(
        "/sign-in?" + query,
        data={"email": "sw@demo.test", "password": PASSWORD, "csrf_token": csrf_token(page.get_data(as_text=True))},
    )


@pytest.mark.parametrize(
    "query",
    [
        "next=%2F%09%2Fevil.example",  # a slash, a tab, /evil.example: browsers drop the tab
        "next=%2F%0A%2Fevil.example",  # a newline
        "next=%2F%0D%0ASet-Cookie:%20x=1",
        "next=//evil.example",
        "next=/%5Cevil.example",  # a backslash, which browsers read as a slash
        "next=%5C%5Cevil.example",
        "next=https://evil.example/inbox",
        "next=javascript:alert(1)",
        "next=%20//evil.example",
    ],
)
def test_signing_in_never_leads_to_another_site_nor_fails(app, query):
    response = sign_in_with_next(app, query)
    assert response.status_code == 302 and response.location == "/inbox"


def test_a_next_page_holding_a_nul_is_refused_before_anything_reads_it(app):
    assert app.test_client().get("/sign-in?next=/%00/evil.example").status_code == 400


def test_signing_in_leads_back_to_the_page_asked_for(app, browser):
    asked = browser().get("/children?school=Oak+Primary")
    assert re.search(r"/sign-in\?next=", asked.location)
    response = sign_in_with_next(app, asked.location.split("?", 1)[1])
    assert response.status_code == 302 and response.location == "/children?school=Oak+Primary"
