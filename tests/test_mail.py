"""E-mail of notifications: one bad notification never stops the others."""

from __future__ import annotations

import smtplib

import pytest
from sqlalchemy import select

from engine.mail import deliver_pending
from engine.models import Notification, User


class FakeSMTP:
    """Records what would be sent; refuses one address, as a real server may."""

    sent: list = []

    def __init__(self, *_args, **_kwargs):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *_exc):
        return False

    def send_message(self, message):
        if "refused@" in message["To"]:
            raise smtplib.SMTPRecipientsRefused({message["To"]: (550, b"no such mailbox")})
        FakeSMTP.sent.append(message)


@pytest.fixture
def smtp(monkeypatch):
    FakeSMTP.sent = []
    monkeypatch.setattr(smtplib, "SMTP", FakeSMTP)
    return FakeSMTP


def notify(council, clock, email: str, subject: str) -> None:
    with council.begin() as s:
        user_id = s.scalar(select(User.id).where(User.email == email))
        s.add(
            Notification(
                user_id=user_id, child_id="C001", kind="notice", subject=subject, body="Body", created_at=clock.now()
            )
        )


def test_a_venue_with_line_breaks_cannot_stop_the_mail_and_never_reaches_a_header(council, clock, smtp):
    notify(council, clock, "sw@demo.test", "Meeting at Room 1\r\nBcc: someone@evil.example")
    notify(council, clock, "dt@demo.test", "PEP due")
    settings = {
        "SMTP_HOST": "smtp.council.test",
        "SMTP_PORT": 25,
        "MAIL_FROM": "pep@council.test",
        "BASE_URL": "https://pep.council.test",
    }
    assert deliver_pending(settings, council, clock.now) == 2
    assert [m["Subject"] for m in smtp.sent] == ["Meeting at Room 1 Bcc: someone@evil.example", "PEP due"]
    assert all(m["Bcc"] is None for m in smtp.sent)
    with council() as s:
        assert all(n.sent_at is not None for n in s.scalars(select(Notification)))


def test_an_address_the_server_refuses_does_not_hold_back_the_next_notification(council, clock, smtp):
    with council.begin() as s:
        s.scalars(select(User).where(User.email == "sw@demo.test")).one().email = "refused@demo.test"
    notify(council, clock, "refused@demo.test", "First")
    notify(council, clock, "dt@demo.test", "Second")
    settings = {
        "SMTP_HOST": "smtp.council.test",
        "SMTP_PORT": 25,
        "MAIL_FROM": "pep@council.test",
        "BASE_URL": "https://pep.council.test",
    }
    assert deliver_pending(settings, council, clock.now) == 2
    assert [m["Subject"] for m in smtp.sent] == ["Second"]
    assert deliver_pending(settings, council, clock.now) == 0  # nothing is retried for ever
