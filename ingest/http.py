"""One HTTP session per source client, with the retry discipline every source needs.

The platforms are outside the district's control: they answer 5xx in bursts, rate-limit with 429 and
``Retry-After``, stall past any sensible timeout and drop connections in the middle of a body. A client
should neither give up on the first hiccup nor hammer a struggling server, so every request goes through
:meth:`HttpClient.send`: connect/read timeouts, exponential backoff with jitter, ``Retry-After`` honoured,
and a bounded number of attempts and total wait, after which :class:`SourceUnavailable` says which source
and page failed, how many times, and why. Refusals that retrying cannot fix (bad credentials, a day not
yet published) are raised at once as :class:`SourceError` so that the DAG's own retry policy decides.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import requests

T = TypeVar("T")

# Transport failures worth another attempt: refused/reset connections, connect and read timeouts (also
# raised while streaming a body), and bodies cut short (urllib3 enforces Content-Length and chunk framing).
TRANSIENT_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


class SourceError(RuntimeError):
    """The source refused the request in a way another attempt will not fix (credentials, signature...)."""


class NotYetPublished(SourceError):
    """The source has not published the requested day yet; the DAG should retry the task later."""


class SourceUnavailable(RuntimeError):
    """Retries exhausted: the source kept failing transiently for one page."""

    def __init__(self, source: str, page: object, attempts: int, last_error: object):
        self.source, self.page, self.attempts, self.last_error = source, page, attempts, last_error
        super().__init__(
            f"{source}: page {page} still failing after {attempts} attempts; last error: {last_error}"
        )


class Retry(Exception):  # noqa: N818 - a signal to the retry loop, not an error shown to anyone
    """Raised by a response handler for a condition another attempt may fix.

    ``after``: seconds the source asked us to wait (``Retry-After``); ``immediate``: retry at once
    because the handler already repaired the cause (a refreshed token, a fresh signing timestamp).
    """

    def __init__(self, reason: str, *, after: float | None = None, immediate: bool = False):
        super().__init__(reason)
        self.after, self.immediate = after, immediate


@dataclass(frozen=True)
class RetryPolicy:
    """Timeouts and retry budget. Defaults suit a nightly batch; tests shrink the backoff."""

    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0
    max_attempts: int = 8
    max_total_wait_s: float = 600.0
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 60.0

    def backoff(self, failures: int) -> float:
        """Exponential backoff with "equal jitter": half fixed, half random, so clients spread out."""
        ceiling = min(self.backoff_cap_s, self.backoff_base_s * 2 ** (failures - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds: either delta-seconds or an HTTP date (RFC 9110 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def describe(resp: requests.Response, limit: int = 200) -> str:
    """Status line and the start of the body, for error messages (error bodies carry codes and
    messages, never records, so no personal data reaches a log through here)."""
    try:
        body = resp.text[:limit]
    except TRANSIENT_ERRORS:
        body = "<body cut short>"
    return f"HTTP {resp.status_code} {resp.reason} from {resp.url.split('?')[0]}: {body!r}"


class HttpClient:
    """A ``requests.Session`` plus the retry loop. One instance per source client (connection reuse)."""

    def __init__(
        self, source: str, policy: RetryPolicy | None = None, session: requests.Session | None = None
    ):
        self.source = source
        self.policy = policy or RetryPolicy()
        self.session = session or requests.Session()
        self.attempts_total = 0

    def close(self) -> None:
        self.session.close()

    def send(
        self,
        method: str,
        url: str,
        *,
        page: object,
        build: Callable[[], dict],
        handle: Callable[[requests.Response], T],
        stream: bool = False,
    ) -> T:
        """Send until ``handle`` returns, retrying transient failures within the policy's budget.

        ``build()`` returns the keyword arguments of ``Session.request`` (``url`` included when the URL
        itself is signed) and is called again on every attempt, so signatures and timestamps are always
        fresh. ``handle(resp)`` reads the response; it raises :class:`Retry` for body-level transient
        conditions and anything else for fatal ones.
        429 and 5xx are retried here; other 4xx reach ``handle``.
        """
        policy = self.policy
        waited = 0.0
        failures = 0
        last_error: object = None
        for attempt in range(1, policy.max_attempts + 1):
            self.attempts_total += 1
            after: float | None = None
            immediate = False
            try:
                kwargs = build()
                resp = self.session.request(
                    method,
                    kwargs.pop("url", url),
                    timeout=(policy.connect_timeout_s, policy.read_timeout_s),
                    stream=stream,
                    **kwargs,
                )
                with resp:
                    if resp.status_code == 429:
                        raise Retry(
                            describe(resp), after=retry_after_seconds(resp.headers.get("Retry-After"))
                        )
                    if resp.status_code >= 500:
                        raise Retry(describe(resp))
                    return handle(resp)
            except Retry as exc:
                last_error, after, immediate = exc, exc.after, exc.immediate
            except TRANSIENT_ERRORS as exc:
                last_error = exc
            if attempt == policy.max_attempts:
                break
            if immediate:
                continue
            failures += 1
            wait = after if after is not None else policy.backoff(failures)
            if waited + wait > policy.max_total_wait_s:
                break
            time.sleep(wait)
            waited += wait
        raise SourceUnavailable(self.source, page, attempt, last_error)
