"""Keyed hashing of personal data (PIPL): phones, ID numbers and names never reach disk in clear.

The key is the password of the Airflow Connection ``xihu_pii``. The same phone gives the same
``rider_key`` in every source because every source's phone goes through :func:`normalise_phone` first.
"""

from __future__ import annotations

import hashlib
import hmac
import re

_NON_DIGITS = re.compile(r"\D")
# An 11-digit mainland mobile number anywhere in a text (used to scrub lines that are not valid JSON).
PHONE_IN_TEXT = re.compile(r"(?<!\d)(?:\+?86[- ]?)?(1[3-9]\d{9})(?!\d)")


class PiiHasher:
    """HMAC-SHA256 under the district's secret key, truncated to 32 hex characters (128 bits)."""

    def __init__(self, key: str | bytes):
        if not key:
            raise ValueError("the PII key is empty: set the password of Airflow Connection xihu_pii")
        self._key = key.encode() if isinstance(key, str) else key

    def hash(self, value: str | None, kind: str) -> str | None:
        """Hash ``value`` as a ``kind`` ('phone', 'id', 'name'); None and '' stay None."""
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
