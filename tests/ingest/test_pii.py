"""ingest.pii: the keys PiiHasher refuses, and the hashes it gives for the keys it accepts."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import subprocess
import sys

import pytest

from ingest.pii import DEMO_PII_KEY, MIN_KEY_BYTES, SANDBOX_ENV, PiiHasher
from ops.localenv import sandbox_connections

KEY = "pii-test-key-of-at-least-32-bytes-long"


@pytest.fixture(autouse=True)
def not_in_sandbox(monkeypatch):
    monkeypatch.delenv(SANDBOX_ENV, raising=False)


def _says_what_to_do(message: str) -> None:
    assert "Airflow Connection xihu_pii" in message
    assert f"at least {MIN_KEY_BYTES} bytes" in message
    assert "python -c 'import secrets; print(secrets.token_urlsafe(32))'" in message


@pytest.mark.parametrize("key", ["", b"", None])
def test_empty_key_is_refused(key):
    with pytest.raises(ValueError, match="the PII key is empty") as refused:
        PiiHasher(key)
    _says_what_to_do(str(refused.value))


@pytest.mark.parametrize("key", ["demo-pii-key-not-for-production", "x" * 31, b"\x00" * 31, "短" * 10])
def test_key_shorter_than_32_bytes_is_refused(key):
    """Counted in bytes, not characters: ten Chinese characters are 30 bytes of UTF-8."""
    with pytest.raises(ValueError, match="shorter than 32") as refused:
        PiiHasher(key)
    _says_what_to_do(str(refused.value))


def test_32_bytes_is_enough():
    assert PiiHasher("x" * 32).phone("13800138000")
    assert PiiHasher("短" * 11).phone("13800138000")  # 33 bytes


def test_the_generated_key_of_the_message_is_accepted():
    """The one-liner the refusal recommends produces a key the hasher takes."""
    out = subprocess.run(
        [sys.executable, "-c", "import secrets; print(secrets.token_urlsafe(32))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert len(out.encode()) >= MIN_KEY_BYTES
    PiiHasher(out)


def test_demo_key_is_refused_outside_the_sandbox():
    assert len(DEMO_PII_KEY.encode()) >= MIN_KEY_BYTES  # refused for being public, not for its length
    with pytest.raises(ValueError, match="public demo key") as refused:
        PiiHasher(DEMO_PII_KEY)
    assert f"{SANDBOX_ENV}=1" in str(refused.value)
    _says_what_to_do(str(refused.value))
    with pytest.raises(ValueError, match="public demo key"):
        PiiHasher(DEMO_PII_KEY.encode())


@pytest.mark.parametrize("value", ["0", "true", "yes", ""])
def test_only_an_explicit_sandbox_flag_lets_the_demo_key_in(monkeypatch, value):
    monkeypatch.setenv(SANDBOX_ENV, value)
    with pytest.raises(ValueError, match="public demo key"):
        PiiHasher(DEMO_PII_KEY)


def test_demo_key_is_accepted_against_the_sandbox(monkeypatch):
    monkeypatch.setenv(SANDBOX_ENV, "1")
    assert re.fullmatch(r"[0-9a-f]{32}", PiiHasher(DEMO_PII_KEY).phone("13800138000"))


def test_sandbox_environment_sets_the_flag_and_the_demo_key():
    """ops.localenv is where the flag comes from: the embedded Airflow (`make demo`, the tests) and the
    scheduler harness get the sandbox connections, the demo key and XIHU_SANDBOX=1 together."""
    env = sandbox_connections("http://127.0.0.1:9")
    assert env[SANDBOX_ENV] == "1"
    assert DEMO_PII_KEY in env["AIRFLOW_CONN_XIHU_PII"]


def test_a_random_key_needs_no_sandbox():
    key = secrets.token_urlsafe(32)
    assert PiiHasher(key).phone("13800138000") == PiiHasher(key.encode()).phone("13800138000")


def test_hash_is_truncated_hmac_sha256_of_kind_and_normalised_value():
    expected = hmac.new(KEY.encode(), b"phone:13800138000", hashlib.sha256).hexdigest()[:32]
    hasher = PiiHasher(KEY)
    assert hasher.phone("13800138000") == expected
    assert hasher.phone("+86 138-0013-8000") == expected
    assert hasher.phone("8613800138000") == expected
    assert hasher.hash("13800138000", "name") != expected  # the kind is part of the message
    assert hasher.hash("330106199001011234x", "id") == hasher.hash("330106199001011234X", "id")
    assert hasher.phone(None) is None and hasher.phone("  ") is None


def test_different_keys_give_different_hashes():
    assert PiiHasher(KEY).phone("13800138000") != PiiHasher(KEY + "!").phone("13800138000")


def test_scrub_text_replaces_every_phone():
    hasher = PiiHasher(KEY)
    text = '{"mobile": "13800138000", "note": "call +86 13900139000", "order": "20261128137001370009"}'
    scrubbed = hasher.scrub_text(text)
    assert "13800138000" not in scrubbed and "13900139000" not in scrubbed
    assert hasher.phone("13800138000") in scrubbed and hasher.phone("13900139000") in scrubbed
    assert "20261128137001370009" in scrubbed  # digits inside a longer number are not a phone
