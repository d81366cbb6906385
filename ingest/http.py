"""One HTTP session per source client, with the retry discipline every source needs.

The platforms are outside the district's control: they answer 5xx in bursts, rate-limit with 429 and
``Retry-After``, stall past any sensible timeout and drop connections in the middle of a body. A client
should neither give up on the first hiccup nor hammer a struggling server, so every request goes through
:meth:`HttpClient.send`: connect/read timeouts, exponential backoff with jitter, ``Retry-After`` honoured,
and a bounded number of attempts and total wait, after which :class:`SourceUnavailable` says which source
and page failed, how many times, and why. Refusals that retrying cannot fix (bad credentials, a day not
yet published) are raised at once as :class:`SourceError` so that the DAG's own retry policy decides.

Every retry is logged at WARNING on the standard logger ``ingest.http`` (Airflow captures it into the
task log) with its cause and wait: ``meituan 2026-11-20 page 7: HTTP 503, retry 2/7 in 1.6 s``.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import requests
import urllib3

T = TypeVar("T")
log = logging.getLogger(__name__)

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
        super().__init__(f"{source}: page {page} still failing after {attempts} attempts; last error: {last_error}")


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


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception it wraps (requests and urllib3 nest the real cause in args, ``reason``,
    ``__cause__`` and ``__context__``)."""
    seen, todo = set(), [exc]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        nested = [*e.args, getattr(e, "reason", None), e.__cause__, e.__context__]
        todo += [n for n in nested if isinstance(n, BaseException)]


class HttpClient:
    """A ``requests.Session`` plus the retry loop. One instance per source client (connection reuse).

    ``label`` names the fetch in log lines (``fetch`` passes ``"<source> <date>"``; default the source).
    """

    def __init__(
        self,
        source: str,
        policy: RetryPolicy | None = None,
        session: requests.Session | None = None,
        label: str | None = None,
    ):
        self.source = source
        self.label = label or source
        self.policy = policy or RetryPolicy()
        self.session = session or requests.Session()
        self.attempts_total = 0
        self.retries_total = 0

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
        where = f"{self.label} page {page}" if isinstance(page, int) else f"{self.label} {page}"
        retries = policy.max_attempts - 1
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
                    if resp.status_code != 429 and resp.status_code < 500:
                        return handle(resp)
                    cause, last_error = f"HTTP {resp.status_code}", describe(resp)
                    if resp.status_code == 429:
                        after = retry_after_seconds(resp.headers.get("Retry-After"))
                        if after is not None:
                            cause += f", Retry-After {round(after, 1):g} s"
            except Retry as exc:
                cause, last_error, after, immediate = str(exc), exc, exc.after, exc.immediate
            except TRANSIENT_ERRORS as exc:
                cause, last_error = self._transport_cause(exc), exc
            if attempt == policy.max_attempts:
                log.warning("%s: %s; giving up after %d attempts", where, cause, attempt)
                break
            if immediate:
                self.retries_total += 1
                log.warning("%s: %s, retry %d/%d now", where, cause, attempt, retries)
                continue
            failures += 1
            wait = after if after is not None else policy.backoff(failures)
            if waited + wait > policy.max_total_wait_s:
                log.warning(
                    "%s: %s; giving up: waiting %.1f s more would pass the %g s retry budget",
                    where,
                    cause,
                    wait,
                    policy.max_total_wait_s,
                )
                break
            self.retries_total += 1
            log.warning("%s: %s, retry %d/%d in %.1f s", where, cause, attempt, retries, wait)
            time.sleep(wait)
            waited += wait
        raise SourceUnavailable(self.source, page, attempt, last_error)

    def _transport_cause(self, exc: BaseException) -> str:
        """A transport failure in a few words: what an operator reading the log needs to tell them apart."""
        chain = list(_chain(exc))

        def found(*kinds: type[BaseException]) -> bool:
            return any(isinstance(e, kinds) for e in chain)

        if found(requests.ConnectTimeout, urllib3.exceptions.ConnectTimeoutError):
            return f"connect timeout after {self.policy.connect_timeout_s:g} s"
        if found(requests.Timeout, urllib3.exceptions.ReadTimeoutError):
            return f"timeout after {self.policy.read_timeout_s:g} s"
        if found(ConnectionResetError):
            return "connection reset"
        if found(ConnectionRefusedError):
            return "connection refused"
        if found(requests.exceptions.ChunkedEncodingError, urllib3.exceptions.ProtocolError):
            return "body cut short"
        return f"{type(exc).__name__}: {str(exc)[:200]}"
