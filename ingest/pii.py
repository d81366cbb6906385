"""Keyed hashing of personal data (PIPL): phones, ID numbers, names and union member numbers never reach
disk in clear.

The key is the password of the Airflow Connection ``xihu_pii``. The same phone gives the same
``rider_key`` in every source because every source's phone goes through :func:`normalise_phone` first.

Whoever holds the key can re-identify riders (hash every mainland mobile number and compare), so the
hasher refuses a key an attacker could guess: one shorter than 32 bytes (SHA-256's output, RFC 2104's
minimum for HMAC), and the public demo key of this repository unless the process runs against the
sandbox (``XIHU_SANDBOX=1``, set by ops/localenv.py for `make demo` and the tests). A refusal fails the
fetch before anything is landed.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re

# Published in the repository and its docs: it protects nothing, so only sandbox data may be hashed with it.
DEMO_PII_KEY = "demo-pii-key-not-for-production-sandbox-only"
SANDBOX_ENV = "XIHU_SANDBOX"
MIN_KEY_BYTES = 32
KEY_HOWTO = (
    f"set the password of Airflow Connection xihu_pii to a random key of at least {MIN_KEY_BYTES} bytes, "
    "e.g. the output of: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
)

_NON_DIGITS = re.compile(r"\D")
# An 11-digit mainland mobile number anywhere in a text (used to scrub lines that are not valid JSON).
PHONE_IN_TEXT = re.compile(r"(?<!\d)(?:\+?86[- ]?)?(1[3-9]\d{9})(?!\d)")


def in_sandbox() -> bool:
    """True when the process runs against the sandbox feeds (``XIHU_SANDBOX=1``), never in production."""
    return os.environ.get(SANDBOX_ENV) == "1"


class PiiHasher:
    """HMAC-SHA256 under the district's secret key, truncated to 32 hex characters (128 bits)."""

    def __init__(self, key: str | bytes):
        if not key:
            raise ValueError(f"the PII key is empty: {KEY_HOWTO}")
        self._key = key.encode() if isinstance(key, str) else key
        if len(self._key) < MIN_KEY_BYTES:
            raise ValueError(f"the PII key is {len(self._key)} bytes, shorter than {MIN_KEY_BYTES}: {KEY_HOWTO}")
        if self._key == DEMO_PII_KEY.encode() and not in_sandbox():
            raise ValueError(
                f"the PII key is the public demo key of this repository, accepted only against "
                f"the sandbox ({SANDBOX_ENV}=1): {KEY_HOWTO}"
            )

    def hash(self, value: str | None, kind: str) -> str | None:
        """Hash ``value`` as a ``kind`` ('phone', 'id', 'name', 'member' for a union member number);
        None and '' stay None."""
        if value is None:
            return None
        text = str(value).strip()
        if kind == "phone":
            text = normalise_phone(text)
        elif kind == "id":
            text = text.upper()
        if not text:
            return None
        digest = hmac.new(self._key, f"{kind}:{text}".encode(), hashlib.sha256).hexdigest()
        return digest[:32]

    def phone(self, value: str | None) -> str | None:
        return self.hash(value, "phone")

    def scrub_text(self, text: str) -> str:
        """Replace every phone-looking number in free text (e.g. a truncated JSON line) by its hash."""
        return PHONE_IN_TEXT.sub(lambda m: self.phone(m.group(1)) or "", text)


def normalise_phone(value: str) -> str:
    digits = _NON_DIGITS.sub("", value)
    if len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]
    return digits
