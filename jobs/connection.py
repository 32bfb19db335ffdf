"""Where Redis is: the one reading of ``REDIS_URL`` that every client of the service goes through.

Two forms are accepted. A plain Redis URL (``redis://``, ``rediss://``, ``unix://``: redis-py's
own) names one server. A Sentinel URL names the sentinels that watch a primary and its replicas,
and the name they know the primary by::

    redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/<primary name>[/<db>][?sentinel_password=...]

(the same form as the ``limits`` package's). The password is the primary's (and its replicas');
sentinels that need one of their own take ``sentinel_password``. Clients built from it ask the
sentinels where the primary is before each new connection, so after a failover they reconnect to
the new one by themselves; Celery gets the same sentinels through kombu's ``sentinel://``
transport (:func:`celery_broker`).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, quote, unquote, urlsplit, urlunsplit

import redis
from redis.sentinel import Sentinel

SENTINEL_SCHEME = "redis+sentinel"
SENTINEL_PORT = 26379
SENTINEL_FORM = "redis+sentinel://[:password@]host:port[,host:port...]/<primary name>[/<db>]"


class RedisUrlError(ValueError):
    """``REDIS_URL`` cannot be used; the message says what is wrong (never showing a password)."""


@dataclass(frozen=True)
class SentinelUrl:
    """A Sentinel URL, read: where the sentinels are, the primary's name and database, and credentials."""

    sentinels: tuple[tuple[str, int], ...]
    primary: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None


def is_sentinel(url: str) -> bool:
    return url.startswith(f"{SENTINEL_SCHEME}://")


def parse_sentinel_url(url: str) -> SentinelUrl:
    """Read a ``redis+sentinel://`` URL; raises :class:`RedisUrlError` saying what is malformed."""

    def malformed(why: str) -> RedisUrlError:
        return RedisUrlError(f"REDIS_URL {redacted(url)!r}: {why}; expected {SENTINEL_FORM}")

    if not is_sentinel(url):
        raise malformed(f"not a {SENTINEL_SCHEME}:// URL")
    rest = url[len(SENTINEL_SCHEME) + 3 :]
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username, password = unquote(user) or None, unquote(secret) if colon else None
    sentinels = tuple(_host_port(part, malformed) for part in hosts.split(","))
    primary, _, db_text = path.partition("/")
    if not primary:
        raise malformed("no primary name (the name the sentinels monitor it by)")
    if db_text.endswith("/"):
        db_text = db_text[:-1]
    if db_text and not (db_text.isascii() and db_text.isdigit()):
        raise malformed(f"the database must be a number, not {db_text!r}")
    options = parse_qs(query, keep_blank_values=True)
    unknown = set(options) - {"sentinel_password"}
    if unknown:
        raise malformed(f"unknown option {sorted(unknown)[0]!r} (only sentinel_password is known)")
    sentinel_password = options.get("sentinel_password", [None])[-1]
    return SentinelUrl(sentinels, unquote(primary), int(db_text or 0), username, password, sentinel_password)


def _host_port(text: str, malformed) -> tuple[str, int]:
    if text.startswith("["):  # an IPv6 address
        host, bracket, port_text = text[1:].partition("]")
        if not bracket or (port_text and not port_text.startswith(":")):
            raise malformed(f"{text!r} is not [address]:port")
        port_text = port_text[1:]
    else:
        host, _, port_text = text.partition(":")
    if not host:
        raise malformed("a sentinel host is missing")
    if not port_text:
        return host, SENTINEL_PORT
    if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
        raise malformed(f"{port_text!r} is not a port number")
    return host, int(port_text)


def client(url: str, **options) -> redis.Redis:
    """A redis-py client for ``url`` with ``options`` (socket timeouts and the like): for a
    Sentinel URL, one whose connections go to whichever server the sentinels call the primary."""
    if not is_sentinel(url):
        return redis.Redis.from_url(url, **options)
    target = parse_sentinel_url(url)
    # The sentinels are asked with the same socket timeouts: an unreachable one must fail as fast.
    sentinel_options = {key: value for key, value in options.items() if key.startswith("socket_")}
    if target.sentinel_password:
        sentinel_options["password"] = target.sentinel_password
    sentinel = Sentinel(list(target.sentinels), sentinel_kwargs=sentinel_options)
    return sentinel.master_for(
        target.primary, db=target.db, username=target.username, password=target.password, **options
    )


def celery_broker(url: str) -> tuple[str, dict]:
    """The broker URL kombu understands for ``url``, and the transport options it needs beside it
    (for a Sentinel URL: kombu's ``sentinel://`` URLs, one per sentinel, and the primary's name)."""
    if not is_sentinel(url):
        return url, {}
    target = parse_sentinel_url(url)
    auth = ""
    if target.password is not None:
        auth = f"{quote(target.username or '', safe='')}:{quote(target.password, safe='')}@"
    broker = ";".join(
        f"sentinel://{auth}{f'[{host}]' if ':' in host else host}:{port}/{target.db}" for host, port in target.sentinels
    )
    options: dict = {"master_name": target.primary}
    if target.sentinel_password:
        options["sentinel_kwargs"] = {"password": target.sentinel_password}
    return broker, options


def redacted(url: str) -> str:
    """``url`` with any password in it (and a ``sentinel_password``) replaced by ``***``, for printing."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        return url
    netloc, slash, tail = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.partition(':')[0]}:***@{hosts}"
    shown = f"{scheme}://{netloc}{slash}{tail}"
    if "sentinel_password=" in shown:
        parts = urlsplit(shown)
        pairs = ["sentinel_password=***" if p.startswith("sentinel_password=") else p for p in parts.query.split("&")]
        shown = urlunsplit(parts._replace(query="&".join(pairs)))
    return shown
