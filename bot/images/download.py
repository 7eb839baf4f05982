"""Downloading a user's image link without letting the link reach anything it should not.

See the package docstring for the rules (schemes, redirects, private addresses, DNS
rebinding, tokens only to the original origin, byte cap, deadline).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import AsyncIterator, Mapping

import httpx

from bot.images.limits import (
    ASK,
    ImageDownloadFailed,
    ImageLimits,
    ImageRejected,
    human_size,
    too_big,
)

MAX_REDIRECTS = 3
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


# --------------------------------------------------------------------------- download


def address_allowed(address: str, *, allow_private: bool = False) -> bool:
    """May we connect to this IP address on a user's behalf?

    IPv6 forms that embed an IPv4 address (mapped, 6to4, Teredo, NAT64) are judged by the
    embedded address, so ::ffff:127.0.0.1 is loopback.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return address_allowed(str(embedded), allow_private=allow_private)
    if ip.is_multicast or ip.is_unspecified:
        return False
    if allow_private:
        return True
    return ip.is_global and not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved
    )


def _parse_url(raw: str, *, redirected: bool) -> httpx.URL:
    where = "The image link redirected to" if redirected else "The image link is"
    try:
        url = httpx.URL(raw)
    except (httpx.InvalidURL, TypeError, ValueError):
        raise ImageRejected(f"{where} not a valid web address; {ASK}.") from None
    if url.scheme not in ("http", "https"):
        scheme = f"a {url.scheme}: link" if url.scheme else "a link without http(s)"
        raise ImageRejected(f"{where} {scheme}; only http and https links are accepted.")
    if not url.host:
        raise ImageRejected(f"{where} a web address without a host; {ASK}.")
    if url.userinfo:
        raise ImageRejected(f"{where} a web address with a user name or password; {ASK}.")
    return url


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.raw_host.decode("ascii").lower().rstrip("."), url.port


async def _resolve(url: httpx.URL, limits: ImageLimits) -> list[str]:
    host = url.raw_host.decode("ascii")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise ImageDownloadFailed(f"The image host {host} could not be found.") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses or not all(
        address_allowed(a, allow_private=limits.allow_private) for a in addresses
    ):
        raise ImageRejected(
            f"The image link points to a private or reserved network address ({host}); "
            "only public web addresses are allowed."
        )
    return addresses


@contextlib.asynccontextmanager
async def _get(
    http: httpx.AsyncClient, url: httpx.URL, headers: Mapping[str, str], limits: ImageLimits
) -> AsyncIterator[httpx.Response]:
    """GET pinned to a vetted address: the check and the connection see the same IP."""
    host = url.raw_host.decode("ascii")
    last_error: Exception | None = None
    for address in await _resolve(url, limits):
        request = http.build_request(
            "GET",
            url.copy_with(host=address),
            headers={
                **headers,
                "Host": url.netloc.decode("ascii"),
                "Accept": "image/*",
                # A pooled connection pinned to one host's IP must not serve another host.
                "Connection": "close",
            },
            extensions={"sni_hostname": host} if url.scheme == "https" else {},
            timeout=limits.timeout_s,
        )
        try:
            response = await http.send(request, stream=True, follow_redirects=False)
        except httpx.ConnectError as exc:
            last_error = exc
            continue
        try:
            yield response
        finally:
            await response.aclose()
        return
    raise ImageDownloadFailed(f"Could not connect to the image host {host}; try again.") from (
        last_error
    )


def _check_status(response: httpx.Response, host: str) -> None:
    code = response.status_code
    if code == 200:
        return
    if code in (401, 403):
        raise ImageDownloadFailed(
            f"The image host {host} refused access (HTTP {code}); send the image itself."
        )
    if code in (404, 410):
        raise ImageDownloadFailed(
            f"The image link no longer works (HTTP {code}); upload the image again."
        )
    raise ImageDownloadFailed(f"The image host {host} answered HTTP {code} instead of the image.")


async def _read_capped(response: httpx.Response, limits: ImageLimits) -> bytes:
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > limits.max_bytes:
        raise ImageRejected(too_big(int(length), limits))
    chunks: list[bytes] = []
    total = 0
    async for chunk in response.aiter_bytes():
        total += len(chunk)
        if total > limits.max_bytes:
            raise ImageRejected(
                f"The image is larger than {human_size(limits.max_bytes)}, the limit."
            )
        chunks.append(chunk)
    return b"".join(chunks)


async def _fetch(
    url: str, limits: ImageLimits, headers: Mapping[str, str], http: httpx.AsyncClient
) -> bytes:
    origin = _parse_url(url, redirected=False)
    current = origin
    for _hop in range(MAX_REDIRECTS + 1):
        same_origin = _origin(current) == _origin(origin)
        host = current.raw_host.decode("ascii")
        try:
            async with _get(http, current, headers if same_origin else {}, limits) as response:
                if response.status_code in _REDIRECTS:
                    location = response.headers.get("location")
                    if not location:
                        raise ImageDownloadFailed(
                            f"The image host {host} sent a redirect without a target."
                        )
                    current = _parse_url(str(current.join(location)), redirected=True)
                    continue
                _check_status(response, host)
                media_type = response.headers.get("content-type", "").split(";")[0].strip()
                if media_type.lower() == "text/html":
                    raise ImageRejected(
                        "The image link returned a web page, not an image (a login page or an "
                        f"expired link); {ASK}."
                    )
                return await _read_capped(response, limits)
        except httpx.TimeoutException:
            raise  # handled with the overall deadline in fetch_image
        except httpx.HTTPError as exc:
            raise ImageDownloadFailed(
                f"The download from {host} failed ({type(exc).__name__}); try again."
            ) from exc
    raise ImageRejected(
        f"The image link redirected more than {MAX_REDIRECTS} times; send the image itself."
    )


async def fetch_image(
    url: str,
    *,
    limits: ImageLimits,
    headers: Mapping[str, str] | None = None,
    http: httpx.AsyncClient | None = None,
) -> bytes:
    """Download a user's image link safely (see the module docstring); raises ImageRejected."""
    if http is None:
        async with httpx.AsyncClient(trust_env=False, timeout=limits.timeout_s) as client:
            return await fetch_image(url, limits=limits, headers=headers, http=client)
    try:
        async with asyncio.timeout(limits.timeout_s):
            return await _fetch(url, limits, headers or {}, http)
    except (TimeoutError, httpx.TimeoutException):
        raise ImageDownloadFailed(
            f"The image download did not finish within {limits.timeout_s:g} seconds; try again."
        ) from None
