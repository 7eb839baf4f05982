"""GET /i/{token} (a job's input image, for the provider) and GET /c/{token} (a delivered
clip, for people). Both answer 404 for anything not genuine, expired, or gone: a forged
token and a purged file look the same from outside."""

from __future__ import annotations

from aiohttp import web

from bot.web.keys import TOKEN, app_of


async def image(request: web.Request) -> web.Response:
    host = app_of(request).image_urls
    stored = await host.fetch(request.match_info["token"]) if host is not None else None
    if stored is None:
        raise web.HTTPNotFound()
    return web.Response(
        body=stored.data,
        headers={"Content-Type": stored.content_type, "Cache-Control": "private, no-store"},
    )


async def clip(request: web.Request) -> web.FileResponse:
    path = app_of(request).clips.path_for(request.match_info["token"])
    if path is None:
        raise web.HTTPNotFound()
    return web.FileResponse(
        path,
        headers={
            "Content-Type": "video/mp4",
            "Content-Disposition": f'inline; filename="{path.name}"',
            "Cache-Control": "private, max-age=3600",
        },
    )


def routes() -> list[web.RouteDef]:
    token = TOKEN
    return [web.get(f"/i/{token}", image), web.get(f"/c/{token}", clip)]
