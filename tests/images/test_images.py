"""Image intake: sniffing, limits, conversion, and safe downloads over real loopback HTTP."""

from __future__ import annotations

import asyncio
import io
import struct
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from PIL import ExifTags, Image, ImageDraw
from PIL.PngImagePlugin import PngInfo

from bot.images import (
    ImageDownloadFailed,
    ImageLimits,
    ImageRejected,
    address_allowed,
    fetch_image,
    load_image,
    prepare_image,
)

LIMITS = ImageLimits()
ASSETS = Path(__file__).resolve().parents[2] / "bot" / "assets"


# --------------------------------------------------------------------------- samples


def encode(img: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def halves(
    size: tuple[int, int] = (300, 200), left: str = "red", right: str = "blue"
) -> Image.Image:
    """Left half one color, right half another: orientation and flattening become visible."""
    img = Image.new("RGB", size, right)
    ImageDraw.Draw(img).rectangle([0, 0, size[0] // 2 - 1, size[1]], fill=left)
    return img


def noise(size: tuple[int, int]) -> Image.Image:
    count = size[0] * size[1] * 3
    return Image.frombytes("RGB", size, bytes((i * 7919) % 251 for i in range(count)))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims any size without holding the pixels (a decompression-bomb shape)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def jpeg_with_orientation_and_gps() -> bytes:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # stored sideways: rotate 90° clockwise to display
    exif[ExifTags.Base.Make] = "PhoneCo"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (48.0, 51.0, 29.0)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (2.0, 17.0, 40.0)
    return encode(halves(), "JPEG", exif=exif, quality=95)


def close_to(pixel: tuple[int, ...], want: tuple[int, int, int], tolerance: int = 40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel[:3], want, strict=True))


def decoded(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


# --------------------------------------------------------------------------- prepare_image


def test_plain_png_passes_through_unchanged() -> None:
    data = encode(halves(), "PNG")
    out = prepare_image(data, limits=LIMITS)
    assert out.data == data
    assert (out.content_type, out.filename, out.source_format) == ("image/png", "input.png", "PNG")
    assert (out.width, out.height, out.converted) == (300, 200, False)


def test_plain_jpeg_passes_through_unchanged() -> None:
    data = encode(halves(), "JPEG")
    out = prepare_image(data, limits=LIMITS)
    assert out.data == data
    assert (out.content_type, out.filename, out.converted) == ("image/jpeg", "input.jpg", False)


def test_sample_asset_is_a_usable_landscape() -> None:
    data = (ASSETS / "sample.png").read_bytes()
    out = prepare_image(data, limits=LIMITS)
    assert (out.width, out.height, out.converted) == (768, 512, False)


def test_jpeg_exif_orientation_applied_and_gps_stripped() -> None:
    data = jpeg_with_orientation_and_gps()
    # the sample really carries GPS
    assert Image.open(io.BytesIO(data)).getexif().get_ifd(ExifTags.IFD.GPSInfo)
    out = prepare_image(data, limits=LIMITS)
    assert out.converted and out.content_type == "image/jpeg" and out.source_format == "JPEG"
    assert (out.width, out.height) == (200, 300)  # turned upright
    img = decoded(out.data)
    assert img.size == (200, 300)
    assert close_to(img.getpixel((100, 40)), (255, 0, 0))  # the left half is now on top
    assert close_to(img.getpixel((100, 260)), (0, 0, 255))
    assert len(img.getexif()) == 0
    assert b"PhoneCo" not in out.data and b"GPS" not in out.data


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF"])
def test_orientation_survives_downscaling(fmt: str) -> None:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    out = prepare_image(
        encode(halves(), fmt, exif=exif), limits=ImageLimits(min_side=64, max_output_side=150)
    )
    img = decoded(out.data)
    assert (out.width, out.height) == img.size == (100, 150)
    assert close_to(img.convert("RGB").getpixel((50, 20)), (255, 0, 0))
    assert close_to(img.convert("RGB").getpixel((50, 130)), (0, 0, 255))


def test_jpeg_comment_is_stripped() -> None:
    data = encode(halves(), "JPEG", comment=b"shot at 12 Home Street")
    out = prepare_image(data, limits=LIMITS)
    assert out.converted and b"Home Street" not in out.data


def test_png_text_chunks_are_stripped() -> None:
    info = PngInfo()
    info.add_text("Comment", "home address: 12 Home Street")
    data = encode(halves(), "PNG", pnginfo=info)
    out = prepare_image(data, limits=LIMITS)
    assert out.converted and out.content_type == "image/png"
    assert b"Home Street" not in out.data
    assert decoded(out.data).tobytes() == halves().tobytes()  # lossless


def test_webp_becomes_png() -> None:
    out = prepare_image(encode(halves(), "WEBP", lossless=True), limits=LIMITS)
    assert (out.content_type, out.filename, out.source_format) == ("image/png", "input.png", "WEBP")
    assert out.converted and out.data.startswith(b"\x89PNG")
    assert decoded(out.data).tobytes() == halves().tobytes()


def test_animated_gif_uses_first_frame() -> None:
    frames = [Image.new("RGB", (160, 160), color) for color in ("lime", "red", "blue")]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    assert Image.open(io.BytesIO(data)).n_frames == 3
    out = prepare_image(data, limits=LIMITS)
    assert out.source_format == "GIF" and out.content_type == "image/png"
    img = decoded(out.data)
    assert getattr(img, "n_frames", 1) == 1
    assert close_to(img.convert("RGB").getpixel((80, 80)), (0, 255, 0), tolerance=5)


@pytest.mark.parametrize("fmt", ["BMP", "TIFF"])
def test_bmp_and_tiff_become_png(fmt: str) -> None:
    out = prepare_image(encode(halves(), fmt), limits=LIMITS)
    assert out.source_format == fmt and out.content_type == "image/png" and out.converted
    assert decoded(out.data).tobytes() == halves().tobytes()


def test_transparency_is_flattened_on_white() -> None:
    img = Image.new("RGBA", (200, 200), (0, 0, 0, 0))  # fully transparent black
    ImageDraw.Draw(img).rectangle([0, 0, 99, 199], fill=(255, 0, 0, 255))
    out = prepare_image(encode(img, "PNG"), limits=LIMITS)
    flat = decoded(out.data)
    assert out.converted and flat.mode == "RGB"
    assert flat.getpixel((50, 100)) == (255, 0, 0)
    assert flat.getpixel((150, 100)) == (255, 255, 255)


def test_sixteen_bit_gray_is_scaled_not_clipped() -> None:
    img = Image.new("I;16", (200, 200), 32768)  # mid gray
    out = prepare_image(encode(img, "PNG"), limits=LIMITS)
    assert close_to(decoded(out.data).convert("RGB").getpixel((10, 10)), (128, 128, 128), 2)


def test_cmyk_jpeg_becomes_rgb_jpeg() -> None:
    out = prepare_image(encode(halves().convert("CMYK"), "JPEG"), limits=LIMITS)
    img = decoded(out.data)
    assert out.converted and out.content_type == "image/jpeg" and img.mode == "RGB"
    assert close_to(img.getpixel((20, 100)), (255, 0, 0), 60)


def test_large_images_are_downscaled() -> None:
    limits = ImageLimits(max_output_side=256)
    for fmt in ("PNG", "JPEG"):
        out = prepare_image(encode(noise((900, 600)), fmt), limits=limits)
        assert (out.width, out.height) == (256, 171), fmt
        assert decoded(out.data).size == (256, 171)
        assert out.content_type == f"image/{fmt.lower()}"


def test_png_too_heavy_after_conversion_falls_back_to_jpeg() -> None:
    data = encode(noise((400, 400)), "WEBP", lossless=True)
    limits = ImageLimits(max_bytes=len(data) + 1000)  # the PNG of noise is far larger
    out = prepare_image(data, limits=limits)
    assert out.content_type == "image/jpeg" and out.filename == "input.jpg"


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n" * 4, "That file is a PDF"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64, "HEIC photo"),
        (b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + b"\x00" * 64, "a video"),
        (b"<!DOCTYPE html><html><body>Sign in to Slack</body></html>", "web page"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", "SVG"),
        (b"PK\x03\x04" + b"\x00" * 100, "ZIP"),
        (bytes((i * 131 + 7) % 256 for i in range(4096)), "not an image we can read"),
    ],
)
def test_non_images_are_named_and_refused(data: bytes, needle: str) -> None:
    with pytest.raises(ImageRejected) as info:
        prepare_image(data, limits=LIMITS)
    assert needle in str(info.value)
    assert "PNG, JPEG or WEBP" in str(info.value)


def test_truncated_png_is_refused_as_damaged() -> None:
    data = encode(noise((300, 300)), "PNG")
    with pytest.raises(ImageRejected, match="PNG file is damaged or incomplete"):
        prepare_image(data[: len(data) // 2], limits=LIMITS)


def test_truncated_header_is_refused_as_damaged() -> None:
    with pytest.raises(ImageRejected, match="JPEG file is damaged"):
        prepare_image(b"\xff\xd8\xff\xe0\x00\x10JF", limits=LIMITS)


def test_empty_file() -> None:
    with pytest.raises(ImageRejected, match="The file is empty"):
        prepare_image(b"", limits=LIMITS)


def test_too_many_bytes_quotes_size_and_limit() -> None:
    data = png_header_only(300, 300) + b"\x00" * 13_002_342
    with pytest.raises(ImageRejected) as info:
        prepare_image(data, limits=LIMITS)
    assert str(info.value) == "The image is 12.4 MB; the limit is 10 MB."


def test_tiny_image() -> None:
    with pytest.raises(ImageRejected, match="16x16 pixels; each side must be at least 128"):
        prepare_image(encode(Image.new("RGB", (16, 16)), "PNG"), limits=LIMITS)


@pytest.mark.parametrize(
    ("width", "height", "needle"),
    [
        (100_000, 100_000, "each side may be at most 8192 pixels"),  # Pillow's bomb error
        (10_000, 9_000, "each side may be at most 8192 pixels"),  # Pillow's bomb warning
        (9_000, 3_000, "9000x3000 pixels; each side may be at most 8192"),
        (8_000, 7_000, "56.0 megapixels; the limit is 50 megapixels"),
    ],
)
def test_huge_dimensions_refused_before_decoding(width: int, height: int, needle: str) -> None:
    with pytest.raises(ImageRejected, match=needle):
        prepare_image(png_header_only(width, height), limits=LIMITS)


def test_extreme_aspect_ratio() -> None:
    with pytest.raises(ImageRejected, match=r"5\.0 times as wide as it is tall; at most 4 to 1"):
        prepare_image(encode(Image.new("RGB", (1000, 200)), "PNG"), limits=LIMITS)


def test_limits_validate_themselves() -> None:
    with pytest.raises(ValueError, match="min_side"):
        ImageLimits(min_side=500, max_output_side=256)


# --------------------------------------------------------------------------- addresses


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("127.0.0.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),  # noqa: S104
        ("224.0.0.1", False),
        ("240.0.0.1", False),  # reserved
        ("255.255.255.255", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped loopback
        ("::ffff:93.184.216.34", True),
        ("2002:7f00:1::", False),  # 6to4 wrapping 127.0.0.1
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 wrapping 169.254.169.254
        ("not-an-ip", False),
    ],
)
def test_address_allowed(address: str, public: bool) -> None:
    assert address_allowed(address) is public


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("127.0.0.1", True),
        ("10.0.0.1", True),
        ("::1", True),
        ("0.0.0.0", False),  # noqa: S104
        ("224.0.0.1", False),
    ],
)
def test_allow_private_still_refuses_unspecified_and_multicast(address: str, allowed: bool) -> None:
    assert address_allowed(address, allow_private=True) is allowed


# --------------------------------------------------------------------------- downloads

PNG = encode(halves(), "PNG")
TOKEN = "xoxb-secret-token-123"


@dataclass
class Server:
    base: str  # http://127.0.0.1:PORT
    port: int
    release: asyncio.Event
    seen: list[tuple[str, str, str | None]] = field(default_factory=list)  # (host, path, auth)

    def other_host(self, path: str) -> str:
        return f"http://localhost:{self.port}{path}"


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    release = asyncio.Event()
    state: dict[str, Server] = {}

    @web.middleware
    async def record(request: web.Request, handler: object) -> web.StreamResponse:
        state["s"].seen.append(
            (request.host.split(":")[0], request.path, request.headers.get("Authorization"))
        )
        return await handler(request)  # type: ignore[operator]

    async def image(request: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="image/png")

    async def redirect(request: web.Request) -> web.Response:
        hops = int(request.match_info["n"])
        target = "/img.png" if hops == 0 else f"/r/{hops - 1}"
        # alternate absolute and relative targets: both must be resolved and checked
        location = f"{state['s'].base}{target}" if hops % 2 else target
        raise web.HTTPFound(location)

    async def redirect_to(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["url"])

    async def slack(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.Response(text="<html>Sign in</html>", content_type="text/html")
        raise web.HTTPFound(request.query.get("to", "/img.png"))

    async def hang(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(body=PNG, content_type="image/png")

    async def huge_length(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "image/png"})
        resp.content_length = 1_000_000_000
        await resp.prepare(request)
        await release.wait()  # never sends the body: reading it would hang, not fail on size
        return resp

    async def endless(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "image/png"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        try:
            for _ in range(200):
                await resp.write(b"\x00" * 65536)
        except (ConnectionResetError, ConnectionError):
            pass
        return resp

    async def status(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), text="no")

    async def html(request: web.Request) -> web.Response:
        return web.Response(text="<!doctype html><p>login</p>", content_type="text/html")

    app = web.Application(middlewares=[record])
    app.router.add_get("/img.png", image)
    app.router.add_get("/r/{n}", redirect)
    app.router.add_get("/redirect", redirect_to)
    app.router.add_get("/slack", slack)
    app.router.add_get("/hang", hang)
    app.router.add_get("/huge-length", huge_length)
    app.router.add_get("/endless", endless)
    app.router.add_get("/status/{code}", status)
    app.router.add_get("/html", html)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    state["s"] = Server(base=f"http://127.0.0.1:{port}", port=port, release=release)
    try:
        yield state["s"]
    finally:
        release.set()
        await runner.cleanup()


LOOPBACK = ImageLimits(allow_private=True)


async def test_download_success(server: Server) -> None:
    assert await fetch_image(f"{server.base}/img.png", limits=LOOPBACK) == PNG


async def test_download_with_a_shared_client(server: Server) -> None:
    async with httpx.AsyncClient(follow_redirects=True) as http:
        data = await fetch_image(f"{server.base}/r/1", limits=LOOPBACK, http=http)
    assert data == PNG
    assert [path for _, path, _ in server.seen] == ["/r/1", "/r/0", "/img.png"]


async def test_content_length_over_the_cap_is_refused_up_front(server: Server) -> None:
    limits = ImageLimits(allow_private=True, timeout_s=5)  # if it read the body: a timeout
    with pytest.raises(ImageRejected) as info:
        await fetch_image(f"{server.base}/huge-length", limits=limits)
    assert str(info.value) == "The image is 953.7 MB; the limit is 10 MB."


async def test_streaming_past_the_cap_stops(server: Server) -> None:
    limits = ImageLimits(allow_private=True, max_bytes=200_000)
    with pytest.raises(ImageRejected, match="larger than 195 KB, the limit"):
        await fetch_image(f"{server.base}/endless", limits=limits)


async def test_redirect_chain_of_three_is_followed(server: Server) -> None:
    assert await fetch_image(f"{server.base}/r/2", limits=LOOPBACK) == PNG
    assert [path for _, path, _ in server.seen] == ["/r/2", "/r/1", "/r/0", "/img.png"]


async def test_more_than_three_redirects_refused(server: Server) -> None:
    with pytest.raises(ImageRejected, match="redirected more than 3 times"):
        await fetch_image(f"{server.base}/r/3", limits=LOOPBACK)
    assert "/img.png" not in [path for _, path, _ in server.seen]


@pytest.mark.parametrize(
    ("target", "needle"),
    [
        ("http://0.0.0.0/x", "private or reserved network address"),
        ("http://224.0.0.1/x", "private or reserved network address"),
        ("file:///etc/passwd", "a file: link; only http and https"),
        ("ftp://example.com/a.png", "a ftp: link; only http and https"),
        ("http://user:pw@127.0.0.1/a.png", "user name or password"),
    ],
)
async def test_every_redirect_hop_is_checked(server: Server, target: str, needle: str) -> None:
    url = str(httpx.URL(f"{server.base}/redirect", params={"url": target}))
    with pytest.raises(ImageRejected, match=needle) as info:
        await fetch_image(url, limits=LOOPBACK)
    assert "redirected to" in str(info.value) or "network address" in str(info.value)


async def test_private_addresses_refused_without_allow_private(server: Server) -> None:
    for url in (
        f"{server.base}/img.png",
        server.other_host("/img.png"),  # a name that resolves to loopback
        "http://[::1]/img.png",
        "http://10.0.0.1/img.png",
        "http://192.168.1.20/img.png",
        "http://169.254.169.254/latest/meta-data/",
    ):
        with pytest.raises(ImageRejected, match="private or reserved network address"):
            await fetch_image(url, limits=LIMITS)
    assert server.seen == []  # refused before connecting


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://example.com/a.png",
        "data:image/png;base64,AAAA",
        "javascript:alert(1)",
    ],
)
async def test_non_http_schemes_refused(url: str) -> None:
    with pytest.raises(ImageRejected, match="only http and https links are accepted"):
        await fetch_image(url, limits=LOOPBACK)


async def test_connection_goes_to_the_vetted_address(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: a second lookup of the same name must not decide where we connect."""
    loop = asyncio.get_running_loop()
    real = loop.getaddrinfo
    answers = iter(["127.0.0.1"])

    async def rebinding(host: str, port: int, **kwargs: object) -> list[tuple]:
        if host == "rebind.test":  # first answer passes the check; later ones point elsewhere
            return await real(next(answers, "127.0.0.2"), port, **kwargs)
        return await real(host, port, **kwargs)

    monkeypatch.setattr(loop, "getaddrinfo", rebinding)
    url = f"http://rebind.test:{server.port}/img.png"
    assert await fetch_image(url, limits=LOOPBACK) == PNG
    assert server.seen == [("rebind.test", "/img.png", None)]


async def test_timeout_when_the_server_never_answers(server: Server) -> None:
    limits = ImageLimits(allow_private=True, timeout_s=0.2)
    with pytest.raises(ImageDownloadFailed, match=r"did not finish within 0\.2 seconds"):
        await fetch_image(f"{server.base}/hang", limits=limits)


async def test_headers_kept_on_same_origin_redirect(server: Server) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    assert await fetch_image(f"{server.base}/slack", limits=LOOPBACK, headers=headers) == PNG
    assert server.seen[-1] == ("127.0.0.1", "/img.png", f"Bearer {TOKEN}")


async def test_headers_not_forwarded_to_another_host(server: Server) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    url = str(httpx.URL(f"{server.base}/slack", params={"to": server.other_host("/img.png")}))
    assert await fetch_image(url, limits=LOOPBACK, headers=headers) == PNG
    assert server.seen[0] == ("127.0.0.1", "/slack", f"Bearer {TOKEN}")
    assert server.seen[1] == ("localhost", "/img.png", None)


async def test_login_page_refused_and_token_never_in_message(server: Server) -> None:
    for path in ("/html", "/slack"):
        with pytest.raises(ImageRejected, match="returned a web page") as info:
            await fetch_image(
                f"{server.base}{path}",
                limits=LOOPBACK,
                headers={"Authorization": "Bearer wrong-token-456"},
            )
        assert "wrong-token" not in str(info.value)


@pytest.mark.parametrize(
    ("code", "needle"),
    [(404, "no longer works"), (403, "refused access"), (503, "answered HTTP 503")],
)
async def test_http_errors(server: Server, code: int, needle: str) -> None:
    with pytest.raises(ImageDownloadFailed, match=needle) as info:
        await fetch_image(
            f"{server.base}/status/{code}",
            limits=LOOPBACK,
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
    assert TOKEN not in str(info.value) and "/status" not in str(info.value)


async def test_connection_refused_is_a_download_failure() -> None:
    with pytest.raises(ImageDownloadFailed, match="Could not connect"):
        await fetch_image("http://127.0.0.1:1/img.png", limits=LOOPBACK)


# --------------------------------------------------------------------------- load_image


async def test_load_image_from_url_bytes_and_paths(server: Server, tmp_path: Path) -> None:
    webp = encode(halves(), "WEBP", lossless=True)
    path = tmp_path / "photo.webp"
    path.write_bytes(webp)
    from_url = await load_image(f"{server.base}/img.png", limits=LOOPBACK)
    assert from_url.data == PNG and not from_url.converted
    for source in (webp, path, str(path)):
        out = await load_image(source, limits=LIMITS)
        assert out.source_format == "WEBP" and out.content_type == "image/png"


async def test_load_image_refuses_missing_files_and_file_links(tmp_path: Path) -> None:
    with pytest.raises(ImageRejected, match="There is no image file at"):
        await load_image(tmp_path / "nope.png", limits=LIMITS)
    with pytest.raises(ImageRejected, match="only http and https"):
        await load_image(f"file://{tmp_path}/nope.png", limits=LIMITS)


async def test_load_image_caps_local_file_size(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    path.write_bytes(b"\x89PNG" + b"\x00" * 2_000_000)
    with pytest.raises(ImageRejected, match=r"The image is 1\.9 MB; the limit is 1 MB"):
        await load_image(path, limits=ImageLimits(max_bytes=1_048_576))
