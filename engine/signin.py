"""Slowing down password guessing. Called by the web app's sign-in and change-password pages.

Every check of a password (signing in, or the current password when changing it) is counted against
two keys, each with its own allowance of failures before it is slowed down:

- the account at this address (email and client address): a person who mistypes a few times, or
  someone guessing one person's password, waits longer and longer between tries;
- the address alone, across every account: someone trying one password on many accounts (spraying)
  is slowed down too, without it costing them anything to name a new account each time.

Nothing is locked, and a stranger elsewhere cannot slow down a named person: failures from another
address count against that address, not against the person's sign-in from theirs. The allowances are
counted in the database, so they hold across every worker and thread of the web app.

No race gives more tries than the allowance: a check writes its failure row, and commits it, before
the password is checked, and then counts the rows of its keys other than its own. Of checks made at
the same moment, each sees the rows of those committed before it counts, so the n-th committed sees
at least n-1 others, and a burst passes no more checks than the allowance (at worst a check is
refused for a neighbour's row that then turns out to be a success). A refused check's row is deleted
(it checked nothing); a passed check's row is deleted with its account's other failures from that
address; a failed one stays and counts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from .models import SignInFailure


@dataclass(frozen=True)
class Allowance:
    """`free` failures within `window`, then each further try waits `first_wait`, doubling up to
    `max_wait`, after the latest failure."""

    free: int
    window: timedelta
    first_wait: timedelta
    max_wait: timedelta

    def wait(self, failures: int, latest: datetime | None, now: datetime) -> timedelta | None:
        """How long a try must still wait after `failures` within the window (None: it may go ahead)."""
        if failures < self.free or latest is None:
            return None
        wait = min(self.first_wait * 2 ** min(failures - self.free, 20), self.max_wait)
        remaining = latest + wait - now
        return remaining if remaining > timedelta(0) else None


@dataclass(frozen=True)
class Allowances:
    account_at_address: Allowance
    address: Allowance

    @classmethod
    def from_environment(cls) -> Allowances:
        """The defaults; `PEP_SIGN_IN_FAILURES_PER_ADDRESS` sets the address's free failures (an office
        whose staff all reach the service from one address may need more)."""
        per_address = int(os.environ.get("PEP_SIGN_IN_FAILURES_PER_ADDRESS") or 30)
        return cls(
            account_at_address=Allowance(5, timedelta(hours=1), timedelta(seconds=30), timedelta(minutes=15)),
            address=Allowance(per_address, timedelta(minutes=15), timedelta(seconds=2), timedelta(minutes=1)),
        )


class TooManyFailures(Exception):
    """Too many recent failures: the person must wait `wait` before trying again."""

    def __init__(self, wait: timedelta):
        super().__init__(f"too many failed attempts: wait {wait}")
        self.wait = wait


def begin_check(
    session: Session, email: str, address: str | None, now: datetime, allowances: Allowances | None = None
) -> SignInFailure:
    """Count a check of `email`'s password from `address` before it is made: its row is written and
    committed first; TooManyFailures (the row deleted again) if either key must wait. The row stays as a
    failure unless `passed` is called."""
    allowances = allowances or Allowances.from_environment()
    email, address = email[:254], (address or "")[:64]  # the columns' sizes: no account has a longer email
    oldest = now - max(allowances.account_at_address.window, allowances.address.window)
    session.execute(delete(SignInFailure).where(SignInFailure.at < oldest))
    attempt = SignInFailure(email=email, remote_addr=address, at=now)
    session.add(attempt)
    session.commit()
    for allowance, key in ((allowances.account_at_address, (SignInFailure.email == email,)), (allowances.address, ())):
        count, latest = session.execute(
            select(func.count(SignInFailure.id), func.max(SignInFailure.at)).where(
                SignInFailure.remote_addr == address,
                *key,
                SignInFailure.id != attempt.id,
                SignInFailure.at > now - allowance.window,
            )
        ).one()
        wait = allowance.wait(count, latest, now)
        if wait is not None:
            session.delete(attempt)
            session.commit()
            raise TooManyFailures(wait)
    return attempt


def passed(session: Session, attempt: SignInFailure) -> None:
    """The password was right: forget the account's failures from this address (the caller commits).
    The address's failures for other accounts still count."""
    session.execute(
        delete(SignInFailure).where(
            SignInFailure.email == attempt.email, SignInFailure.remote_addr == attempt.remote_addr
        )
    )
