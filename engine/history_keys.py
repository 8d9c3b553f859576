"""The key ring that signs children's histories: HMAC-SHA256 keys kept outside the database.

Someone who can write to the database but does not hold a key cannot recompute an event's hash, so a
rewritten, forged or removed event shows (engine/history.py), and neither can they sign a checkpoint
(engine/checkpoints.py). Keys come from `PEP_HISTORY_KEY` (one or more secrets, separated by commas or
white space), else from the file `PEP_HISTORY_KEY_FILE` (default `instance/history_key`: one secret a
line, `#` comments), which is made, readable by its owner only, the first time an event is signed.
The first key signs; the others are older keys, kept so that what they signed still verifies. Each
event records the id of the key that signed it (a fingerprint of the key, which says nothing of it).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import stat
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _hashlib import HASH

log = logging.getLogger(__name__)

ENV_KEYS = "PEP_HISTORY_KEY"
ENV_KEY_FILE = "PEP_HISTORY_KEY_FILE"
DEFAULT_KEY_FILE = Path("instance") / "history_key"
_DEFAULT_KEY_FILE = str(DEFAULT_KEY_FILE)
MIN_LENGTH = 32  # characters of a secret: 32 hex digits are 128 bits
_SEPARATORS = re.compile(r"[\s,]+")
RECHECK_SECONDS = 1.0  # how long a process signs with the key file as it last found it
_recent: dict[str, tuple[float, KeyRing]] = {}  # key file → (when it was last looked at, its ring)


class HistoryKeyError(ValueError):
    """A key ring that cannot be used (too short a secret, no key to sign with, a key file to rotate
    when the keys come from the environment)."""


@dataclass(frozen=True)
class HistoryKey:
    """One secret; `mac` is HMAC-SHA256 (RFC 2104) with the key's padded halves hashed once and copied
    per message: less time than a fresh hashlib.sha256 takes, a quarter of hmac.new's."""

    id: str
    _inner: HASH = field(repr=False, compare=False)
    _outer: HASH = field(repr=False, compare=False)

    @classmethod
    def from_secret(cls, secret: str) -> HistoryKey:
        if len(secret) < MIN_LENGTH:
            raise HistoryKeyError(
                f"a history key must be at least {MIN_LENGTH} characters long "
                f"(make one with: python -c 'import secrets; print(secrets.token_hex(32))')"
            )
        raw = secret.encode("utf-8")
        if len(raw) > 64:  # RFC 2104: a key longer than the block is hashed first
            raw = hashlib.sha256(raw).digest()
        raw = raw.ljust(64, b"\0")
        key_id = hashlib.sha256(b"pep history key id\0" + secret.encode("utf-8")).hexdigest()[:16]
        return cls(key_id, hashlib.sha256(bytes(b ^ 0x36 for b in raw)), hashlib.sha256(bytes(b ^ 0x5C for b in raw)))

    def mac(self, message: bytes) -> str:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()


@dataclass(frozen=True)
class KeyRing:
    """Keys by id; `current` signs (None when the ring is empty: it can still verify unkeyed history)."""

    keys: tuple[HistoryKey, ...] = ()
    source: str = "no key"

    @classmethod
    def from_secrets(cls, secrets_: list[str], source: str = "given keys") -> KeyRing:
        keys, seen = [], set()
        for secret in secrets_:
            key = HistoryKey.from_secret(secret)
            if key.id not in seen:
                keys.append(key)
                seen.add(key.id)
        return cls(tuple(keys), source)

    @property
    def current(self) -> HistoryKey | None:
        return self.keys[0] if self.keys else None

    def get(self, key_id: str) -> HistoryKey | None:
        return next((k for k in self.keys if k.id == key_id), None)

    def signing_key(self) -> HistoryKey:
        if self.current is None:
            raise HistoryKeyError(f"no history key to sign with ({self.source})")
        return self.current


def key_file() -> Path:
    return Path(os.environ.get(ENV_KEY_FILE) or DEFAULT_KEY_FILE)


def ring(create: bool = False) -> KeyRing:
    """The installation's key ring: `PEP_HISTORY_KEY`, else the key file. With `create` (signing), a
    missing key file is made with a new random key; without (verifying), a missing one is an empty ring."""
    secrets_text = os.environ.get(ENV_KEYS)
    if secrets_text:
        return _from_environment(secrets_text)
    path = os.environ.get(ENV_KEY_FILE) or _DEFAULT_KEY_FILE  # a string: pathlib would cost a step 30 µs here
    now = time.monotonic()
    recent = _recent.get(path)
    if recent is not None and now - recent[0] < RECHECK_SECONDS:  # a step's append: no system call
        return recent[1]
    try:
        found = os.stat(path)
    except FileNotFoundError:
        if not create:
            return KeyRing(source=f"no key file at {path}")
        _make_key_file(Path(path))
        found = os.stat(path)
    # the file is read again when it changes (a rotation by another process), else the ring comes from memory
    keys = _from_file(path, found.st_dev, found.st_ino, found.st_mtime_ns, found.st_size)
    _recent[path] = (now, keys)
    return keys


def signing_key() -> HistoryKey:
    """The key new events and checkpoints are signed with (made on first use, if it comes from a file)."""
    return ring(create=True).signing_key()


def forget() -> None:
    """Read the keys again on next use (after a rotation in this process; tests)."""
    _recent.clear()
    _from_environment.cache_clear()
    _from_file.cache_clear()


def rotate(path: Path | None = None) -> HistoryKey:
    """Put a new random key first in the key file; the older keys stay after it, to verify what they
    signed. Refused when the keys come from `PEP_HISTORY_KEY`: whoever sets it rotates it."""
    if os.environ.get(ENV_KEYS):
        raise HistoryKeyError(
            f"the history keys come from {ENV_KEYS}: put a new secret first in it and keep the old ones after it"
        )
    path = path or key_file()
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    secret = secrets.token_hex(32)
    new = path.with_name(path.name + ".new")
    new.unlink(missing_ok=True)
    _write_private(new, f"{secret}\n{old}")
    new.replace(path)  # atomically: a reader sees the old ring or the new one
    forget()
    return HistoryKey.from_secret(secret)


@lru_cache(maxsize=8)
def _from_environment(text: str) -> KeyRing:
    return KeyRing.from_secrets([s for s in _SEPARATORS.split(text.strip()) if s], ENV_KEYS)


def _make_key_file(path: Path) -> None:
    """Make the key file whole or not at all: written aside, then linked into place, so that another
    process (a web server's workers all start at once) never reads it half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    aside = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    _write_private(aside, secrets.token_hex(32) + "\n")
    try:
        os.link(aside, path)
        log.warning("made a new history key in %s: keep a copy of it apart from the database and its backups", path)
    except FileExistsError:  # another process made it first: theirs is the key
        pass
    finally:
        aside.unlink()


@lru_cache(maxsize=8)
def _from_file(path: str, _device: int, _inode: int, _mtime_ns: int, _size: int) -> KeyRing:
    file = Path(path)
    if file.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("the history key file %s can be read by others than its owner (chmod 600 it)", file)
    lines = [line.strip() for line in file.read_text(encoding="utf-8").splitlines()]
    return KeyRing.from_secrets([line for line in lines if line and not line.startswith("#")], str(file))


def _write_private(path: Path, text: str) -> None:
    """Write a new file that only its owner can read, from the moment it exists."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
