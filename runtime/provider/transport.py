"""Runtime provider: the HTTP plumbing under the `openai` client.

What the SDK's transport needs to be safe and cheap here: the client options
(our retries instead of the SDK's, none of its telemetry headers), one shared TLS
context, connection pools, a cap on every response body counted after
decompression (`ResponseTooLarge`), reading a server's Retry-After family of
headers, and telling a lost connection from a timeout in the errors the
transports raise. Nothing here decides whether to retry: that is the client's.
"""

from __future__ import annotations

import asyncio
import functools
import math
import re
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import aclosing
from contextvars import ContextVar
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import openai

try:  # openai 3 ships its own fork of httpx; earlier versions use httpx itself
    import httpx2 as httpx
except ImportError:  # pragma: no cover - depends on the installed openai
    import httpx  # type: ignore[no-redef]

try:
    from aiohttp import ClientConnectionError as _AiohttpConnectionError
    from aiohttp import ClientError as _AiohttpError

    # The SDK's aiohttp transport maps connection errors to httpx's, which the SDK wraps as
    # APIConnectionError, but lets the others through unwrapped: a reply that is not HTTP at all
    # arrives as aiohttp's ClientResponseError.
    UNWRAPPED_TRANSPORT_ERRORS: tuple[type[Exception], ...] = (_AiohttpError,)
except ImportError:  # pragma: no cover - the default httpx transport is used instead
    _AiohttpConnectionError = None  # type: ignore[assignment,misc]
    UNWRAPPED_TRANSPORT_ERRORS = ()

from .answers import squeezed
from .settings import MAX_RESPONSE_BYTES, PLACEHOLDER_API_KEY, ProviderSettings


class ResponseTooLarge(openai.OpenAIError):
    """A response body longer than the limit; an OpenAIError, so the SDK passes it on as it is."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"response larger than {_size_text(limit)}")
        self.limit = limit


def _size_text(size: int) -> str:
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} bytes"


# The SDK describes the machine in every request (OS, architecture, Python and SDK versions, and
# its retry count and read timeout). No endpoint needs any of it, taskc has no reason to send it,
# and building those headers is about a tenth of the client's CPU per call.
_NO_SDK_TELEMETRY: dict[str, Any] = {name: openai.Omit() for name in (
    "X-Stainless-Lang", "X-Stainless-Package-Version", "X-Stainless-OS", "X-Stainless-Arch",
    "X-Stainless-Runtime", "X-Stainless-Runtime-Version", "X-Stainless-Async")}
NO_PER_REQUEST_TELEMETRY: Any = {  # the SDK's RequestOptions
    "headers": {name: openai.Omit() for name in ("X-Stainless-Retry-Count", "X-Stainless-Read-Timeout")}}


def client_options(settings: ProviderSettings) -> dict[str, Any]:
    """Arguments for an `openai` client; retries are ours, so the client's own are off."""
    return {"api_key": settings.api_key or PLACEHOLDER_API_KEY, "base_url": settings.base_url,
            "timeout": settings.timeout, "max_retries": 0, "default_headers": _NO_SDK_TELEMETRY}


def sync_client(settings: ProviderSettings) -> openai.OpenAI:
    """A blocking client for the control plane (files, batches, fine-tuning jobs), which has no
    retry loop of its own here, so the SDK's retries (as many as ours) are on."""
    return openai.OpenAI(**{**client_options(settings), "max_retries": settings.max_retries})




def retry_delay_from_headers(headers: Mapping[str, str] | None, cap: float | None = None) -> float | None:
    """Seconds the server asked us to wait (Retry-After, retry-after-ms, x-ratelimit-reset-*), at most ``cap``.

    A value that is not a finite, non-negative number ("inf", "nan", "-5") is no answer: the next header
    is read instead, and without one the client's own backoff decides."""
    if not headers:
        return None
    seconds = _header_delay(headers)
    return seconds if seconds is None or cap is None else min(seconds, cap)


def _header_delay(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after-ms")
    if value and (millis := _finite(value)) is not None:
        return millis / 1000.0
    value = headers.get("retry-after")
    if value:
        if (seconds := _finite(value)) is not None:
            return seconds
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError, OverflowError):
            pass
    for name in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"):
        value = headers.get(name)
        if value and (seconds := _duration_seconds(value)) is not None and math.isfinite(seconds):
            return seconds
    return None


def _finite(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _duration_seconds(text: str) -> float | None:
    # OpenAI writes resets like "1s", "120ms", "6m0s", "1h2m3.5s".
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        return None
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(number) * scale[unit] for number, unit in parts)



def http_client(connections: int, timeout: float, max_body: int = MAX_RESPONSE_BYTES,
                base_url: str | None = None) -> Any:
    """The HTTP layer under the openai client of ``base_url``: the SDK's aiohttp transport where installed.

    At 32 calls in flight the client's CPU per call decides the throughput, and aiohttp's C
    HTTP parser costs about a quarter less per call than the default httpx transport (which the
    SDK's own README recommends it for). Without aiohttp, the default transport does the same job.
    Either way no response body is read past ``max_body`` bytes (see _body_limit).
    """
    options = {"limits": httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
               "timeout": timeout, "verify": tls_context_for(base_url),
               "event_hooks": {"response": [_body_limit(max_body)]}}
    aiohttp_client = getattr(openai, "DefaultAioHttpClient", None)
    if aiohttp_client is not None:
        try:
            return aiohttp_client(**options)
        except RuntimeError:  # the SDK was installed without its aiohttp extra
            pass
    return openai.DefaultAsyncHttpxClient(**options)


# A request's own limit on its response body, when it differs from the client's (an embeddings request).
REQUEST_BODY_LIMIT: ContextVar[int | None] = ContextVar("taskc_request_body_limit", default=None)


def _body_limit(default: int) -> Callable[[Any], Awaitable[None]]:
    """A response hook that stops reading a body at the request's limit (``default`` unless _send set
    another) with ResponseTooLarge.

    Both transports hand the raw bytes to httpx, which decompresses them in pieces of at most 1 MiB,
    so counting what its `aiter_bytes` yields counts the decompressed body as it arrives: a 1 MB gzip
    bomb is stopped after ``limit`` bytes of it, not after a gigabyte. Every reader of the body goes
    through `aiter_bytes` (the SDK reading an answer or an error body, `aread`, `json`), so the hook
    replaces it on the response; a declared Content-Length over the limit is refused before reading.
    """
    async def hook(response: Any) -> None:
        limit = REQUEST_BODY_LIMIT.get() or default
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise ResponseTooLarge(limit)
        read = response.aiter_bytes

        async def capped(chunk_size: int | None = None) -> AsyncIterator[bytes]:
            size = 0
            async with aclosing(read(chunk_size)) as chunks:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > limit:
                        raise ResponseTooLarge(limit)
                    yield chunk

        response.aiter_bytes = capped
    return hook


def tls_context_for(base_url: str | None) -> Any:
    """The TLS context of an endpoint's clients: the process's shared default one, which a plain-http
    endpoint (a local vLLM, Ollama or llama.cpp server) gets only at its first TLS handshake, that is,
    if it redirects to https, instead of loading the CA bundle before its first call (~45 ms)."""
    if base_url is not None and urlsplit(base_url).scheme.lower() == "http":
        return DefaultTLSOnFirstHandshake()
    return _shared_tls_context()


@functools.cache
def _shared_tls_context() -> Any:
    """One TLS context for every client of the process: the default one (system or certifi CAs,
    honouring SSL_CERT_FILE and SSL_CERT_DIR), which each client would otherwise build again,
    loading the CA bundle each time (~40 ms)."""
    make = getattr(httpx, "create_ssl_context", None)
    return make() if make is not None else True


class DefaultTLSOnFirstHandshake(ssl.SSLContext):
    """A TLS context that is the shared default one (`_shared_tls_context`) from its first handshake on:
    the transports only ever ask a context to wrap a connection, and this one hands that to the default
    context, built then. Until a handshake nothing is loaded, so it verifies exactly as the default does."""

    def __new__(cls) -> DefaultTLSOnFirstHandshake:
        return super().__new__(cls, ssl.PROTOCOL_TLS_CLIENT)

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:  # asyncio's and anyio's TLS
        return _default_tls_context().wrap_bio(*args, **kwargs)

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:  # a blocking transport's
        return _default_tls_context().wrap_socket(*args, **kwargs)


@functools.cache
def _default_tls_context() -> ssl.SSLContext:
    shared = _shared_tls_context()
    return shared if isinstance(shared, ssl.SSLContext) else ssl.create_default_context()



def lost_connection(exc: BaseException) -> BaseException | None:
    """The lost or refused connection behind a failed request, if that (not a timeout) is what failed.

    The SDK's aiohttp transport reports every aiohttp connection error, a refused connection or a
    reset included, as a connect timeout; the aiohttp error it chains tells the two apart.
    """
    link: BaseException | None = exc
    seen = 0
    while link is not None and seen < 10:
        if isinstance(link, (TimeoutError, asyncio.TimeoutError)):  # two classes before Python 3.11
            return None
        if _AiohttpConnectionError is not None and isinstance(link, _AiohttpConnectionError):
            return link
        link, seen = link.__cause__ or link.__context__, seen + 1
    return None


def transport_error(exc: BaseException) -> BaseException:
    """The error the SDK wrapped: its own message ("Connection error.") says less than the
    transport's ("peer closed connection without sending complete message body")."""
    cause = exc.__cause__
    return cause if cause is not None and str(cause).strip() else exc


def error_code(exc: openai.APIStatusError) -> str | None:
    # Bodies vary: {"code": ...}, {"error": {"code": ...}}, {"error": "quota exceeded"}, or no JSON at all.
    body = exc.body if isinstance(exc.body, dict) else {}
    inner = body.get("error")
    code = body.get("code") or (inner.get("code") if isinstance(inner, dict) else None)
    return code if isinstance(code, str) else None


def one_line(exc: BaseException) -> str:
    # Transport errors spread over lines ("400, message:\n  Not enough data ..."); keep all of it.
    if type(exc).__name__ == "ServerDisconnectedError":  # aiohttp's text is a repr of the partial reply
        return "the server closed the connection before a complete reply"
    return squeezed(str(exc)) or type(exc).__name__


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]
