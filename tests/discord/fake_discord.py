"""A stand-in for Discord on loopback: the REST API, the attachment CDN and a minimal gateway.

discord.py talks to it unchanged: `Route.BASE` points its REST calls here (bot-token calls,
interaction callbacks and webhook follow-ups alike), attachment URLs in the payloads point at
`/cdn/...`, and `GET /gateway/bot` names the websocket below. The fake keeps what a test needs
to check what a person would see: every call, every message (with its files, components and
visibility), threads and channels. It follows Discord's rules where the bot could get them
wrong:

- one answer per interaction (40060 on a second); the first follow-up to a deferred answer
  replaces it with the deferral's visibility; interaction tokens die 15 minutes after the
  interaction (401, 50027) on the fake's clock, which a test moves (`later`);
- a message `nonce` with `enforce_nonce` returns the earlier message instead of a second;
- a file over `upload_limit` gets 413 / 40005; a deleted channel 404 / 10003, a deleted
  message 404 / 10008; DMs to `dm_closed` users 403 / 50007;
- injected faults (`fail_next`): 429 with `Via` and `retry_after` as Discord sends them, 5xx.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

DISCORD_EPOCH_MS = 1_420_070_400_000
TOKEN = "fake-bot-token.secret-part"
EPHEMERAL = 64
TOKEN_LIFE_S = 15 * 60
ALL_PERMISSIONS = (1 << 50) - 1
THREAD_TYPES = {10, 11, 12}


def snowflake_at(ts: float, counter: int = 0) -> int:
    return ((int(ts * 1000) - DISCORD_EPOCH_MS) << 22) + (counter % 4096)


def snowflake_time(sf: int) -> float:
    return ((sf >> 22) + DISCORD_EPOCH_MS) / 1000


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    files: list[tuple[str, bytes]]
    bot_auth: bool
    at: float
    status: int = 0


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    status: int
    body: dict[str, Any]
    headers: dict[str, str]
    times: int


@dataclass
class Message:
    id: int
    channel_id: int
    content: str
    author: dict[str, Any]
    components: list[Any] = field(default_factory=list)
    files: list[tuple[str, bytes]] = field(default_factory=list)
    nonce: str | None = None
    ephemeral: bool = False
    loading: bool = False
    deleted: bool = False
    via_token: str | None = None  # the interaction token it was sent with, if any
    allowed_mentions: dict[str, Any] | None = None
    edits: int = 0

    def custom_ids(self) -> list[str]:
        out: list[str] = []
        for row in self.components:
            for comp in row.get("components", []):
                if "custom_id" in comp:
                    out.append(comp["custom_id"])
        return out


@dataclass
class Interaction:
    id: int
    token: str
    type: int
    created_at: float
    responded: bool = False
    ephemeral: bool = False
    channel_id: int = 0
    original: int | None = None  # message id of the answer
    callback: dict[str, Any] | None = None


class FakeDiscord:
    def __init__(self, *, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self.offset = 0.0  # added to the clock that decides token expiry
        self._ids = itertools.count(1)
        self.calls: list[Call] = []
        self.messages: dict[int, Message] = {}
        self.channels: dict[int, dict[str, Any]] = {}
        self.interactions: dict[str, Interaction] = {}
        self.cdn: dict[str, tuple[bytes, str]] = {}
        self.faults: list[Fault] = []
        self.synced: dict[str, list[dict[str, Any]]] = {}
        self.upload_limit: int | None = None
        self.dm_closed: set[str] = set()
        self.honour_nonces = True  # False: as after Discord's nonce window has passed
        # True: a token seen for the first time is taken as a new interaction (benchmarks
        # send interactions the fake was not told about).
        self.accept_any_token = False
        self.app_id = self.snowflake()
        self.bot_user = {
            "id": str(self.snowflake()), "username": "animatebot", "discriminator": "0",
            "global_name": "animatebot", "avatar": None, "bot": True, "flags": 0,
        }  # fmt: skip
        self.guild_id = self.snowflake()
        self.channel_id = self.add_channel(name="art")["id"]
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.sockets: list[web.WebSocketResponse] = []
        self.identified = asyncio.Event()
        self.identify: dict[str, Any] | None = None
        self.identifies: list[dict[str, Any]] = []

    # --- ids, time ---

    def now(self) -> float:
        return time.time() + self.offset

    def later(self, seconds: float) -> None:
        """Move the fake's clock (token expiry) forward without waiting."""
        self.offset += seconds

    def snowflake(self, at: float | None = None) -> int:
        return snowflake_at(time.time() if at is None else at, next(self._ids))

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://{self.host}:{self.port}/gateway"

    # --- lifetime ---

    async def __aenter__(self) -> FakeDiscord:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._handle)
        app.router.add_get("/cdn/{name}", self._cdn)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_post("/_control/file", self._control_file)
        app.router.add_get("/_control/calls", self._control_calls)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for ws in list(self.sockets):
            with contextlib.suppress(Exception):
                await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # --- setting the scene ---

    def add_channel(
        self,
        *,
        name: str = "chat",
        type: int = 0,
        nsfw: bool = False,
        parent_id: int | str | None = None,
    ) -> dict[str, Any]:
        cid = self.snowflake()
        channel: dict[str, Any] = {
            "id": str(cid), "type": type, "guild_id": str(self.guild_id), "name": name,
            "nsfw": nsfw, "position": 0, "permission_overwrites": [],
            "parent_id": str(parent_id) if parent_id else None,
        }  # fmt: skip
        if type in THREAD_TYPES:
            channel["thread_metadata"] = {
                "archived": False, "auto_archive_duration": 1440, "locked": False,
                "archive_timestamp": "2026-11-30T00:00:00+00:00",
            }  # fmt: skip
            channel["owner_id"] = self.bot_user["id"]
            channel["member_count"] = 1
            channel["message_count"] = 0
        self.channels[cid] = channel
        return channel

    def delete_channel(self, channel_id: int | str) -> None:
        self.channels[int(channel_id)]["deleted"] = True

    def serve_file(self, data: bytes, *, name: str = "photo.png", kind: str = "image/png") -> str:
        key = f"{self.snowflake()}-{name}"
        self.cdn[key] = (data, kind)
        return f"http://{self.host}:{self.port}/cdn/{key}"

    def fail_next(
        self,
        method: str,
        path: str,
        status: int,
        *,
        code: int = 0,
        retry_after: float = 0.01,
        times: int = 1,
    ) -> None:
        """The next `times` calls matching `method` and the `path` regex fail."""
        body: dict[str, Any] = {"message": f"injected {status}", "code": code}
        headers: dict[str, str] = {}
        if status == 429:
            body = {"message": "You are being rate limited.", "retry_after": retry_after,
                    "global": False}  # fmt: skip
            headers = {"Via": "1.1 google", "Retry-After": str(retry_after)}
        self.faults.append(Fault(method, re.compile(path), status, body, headers, times))

    # --- what tests look at ---

    def channel_messages(self, channel_id: int | str, *, deleted: bool = False) -> list[Message]:
        cid = int(channel_id)
        return [
            m for m in self.messages.values()
            if m.channel_id == cid and (deleted or not m.deleted)
        ]  # fmt: skip

    def clips(self) -> list[Message]:
        """The bot's messages that carry a file."""
        return [
            m for m in self.messages.values()
            if m.files and not m.deleted and m.author is self.bot_user
        ]  # fmt: skip

    def calls_to(self, method: str, pattern: str) -> list[Call]:
        rx = re.compile(pattern)
        return [c for c in self.calls if c.method == method and rx.search(c.path)]

    def threads(self) -> list[dict[str, Any]]:
        return [c for c in self.channels.values() if c["type"] in THREAD_TYPES]

    def ephemeral_texts(self, interaction_id: int) -> list[str]:
        token = self._token_of(interaction_id)
        return [
            m.content for m in self.messages.values()
            if m.via_token == token and m.ephemeral and not m.deleted and not m.loading
        ]  # fmt: skip

    def public_answer(self, interaction_id: int) -> Message | None:
        token = self._token_of(interaction_id)
        for m in self.messages.values():
            if m.via_token == token and not m.ephemeral and not m.deleted and not m.loading:
                return m
        return None

    def _token_of(self, interaction_id: int) -> str:
        for token, it in self.interactions.items():
            if it.id == interaction_id:
                return token
        raise KeyError(f"no interaction {interaction_id}")

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 30.0) -> Any:
        """Until `predicate()` is truthy (re-checked after every request); returns it."""

        async def check() -> Any:
            async with self._changed:
                while not (found := predicate()):
                    await self._changed.wait()
                return found

        return await asyncio.wait_for(check(), timeout)

    async def poke(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # --- interactions (payloads built by tests/discord/payloads.py) ---

    def expect_interaction(
        self, interaction_id: int, token: str, type: int, channel_id: int | str
    ) -> None:
        self.interactions[token] = Interaction(
            interaction_id, token, type, snowflake_time(interaction_id), channel_id=int(channel_id)
        )

    async def send_event(self, event: str, data: dict[str, Any]) -> None:
        """Dispatch an event to every connected gateway client."""
        payload = {"op": 0, "t": event, "s": next(self._ids), "d": data}
        for ws in list(self.sockets):
            await ws.send_str(json.dumps(payload))

    # --- control (for a fake running in its own process: benchmarks) ---

    async def _control_file(self, request: web.Request) -> web.Response:
        return _json({"url": self.serve_file(await request.read())})

    async def _control_calls(self, request: web.Request) -> web.Response:
        calls = [{"method": c.method, "path": c.path, "at": c.at, "status": c.status}
                 for c in self.calls]  # fmt: skip
        return _json(calls)

    # --- HTTP ---

    async def _cdn(self, request: web.Request) -> web.StreamResponse:
        found = self.cdn.get(request.match_info["name"])
        if found is None:
            return web.Response(status=404, text="This content is no longer available.")
        data, kind = found
        return web.Response(body=data, content_type=kind)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        body, files = await _read_body(request)
        auth = request.headers.get("Authorization", "")
        call = Call(request.method, path, dict(request.query), body, files,
                    auth == f"Bot {TOKEN}", time.monotonic())  # fmt: skip
        self.calls.append(call)
        try:
            response = await self._respond(request.method, path, request.query, body, files, auth)
            call.status = response.status
            return response
        finally:
            await self.poke()

    async def _respond(
        self, method: str, path: str, query: Any, body: Any, files: list[tuple[str, bytes]],
        auth: str,
    ) -> web.Response:  # fmt: skip
        for fault in self.faults:
            if fault.times > 0 and fault.method == method and fault.path.search(path):
                fault.times -= 1
                return _json(fault.body, status=fault.status, headers=fault.headers)
        try:
            return await self._route(method, path, query, body, files, auth)
        except web.HTTPException as exc:
            return web.Response(status=exc.status, body=exc.body, headers=exc.headers)

    async def _route(
        self, method: str, path: str, query: Any, body: Any, files: list[tuple[str, bytes]],
        auth: str,
    ) -> web.Response:  # fmt: skip
        parts = path.strip("/").split("/")
        if parts[0] == "interactions" and method == "POST":
            return self._callback(parts[1], parts[2], body, files)
        if parts[0] == "webhooks":
            return self._webhook(method, parts, query, body, files)
        if auth != f"Bot {TOKEN}":
            return _error(401, 0, "401: Unauthorized")
        if path == "/users/@me":
            return _json(self.bot_user)
        if path == "/oauth2/applications/@me":
            return _json(self._app_info())
        if path in ("/gateway/bot", "/gateway"):
            return _json({
                "url": self.gateway_url, "shards": 1,
                "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 0,
                                        "max_concurrency": 1},
            })  # fmt: skip
        if parts[0] == "applications" and method == "PUT":
            guild = parts[3] if len(parts) > 3 else "global"
            if guild not in ("global", str(self.guild_id)):  # the bot is not in that server
                return _error(403, 50001, "Missing Access")
            return self._sync(guild, body)
        if path == "/users/@me/channels" and method == "POST":
            return self._dm(str(body["recipient_id"]))
        if parts[0] == "channels":
            return self._channels(method, parts[1:], query, body, files)
        return _error(404, 0, f"fake Discord has no route {method} {path}")

    def _app_info(self) -> dict[str, Any]:
        return {
            "id": str(self.app_id), "name": "animatebot", "description": "", "icon": None,
            "bot_public": True, "bot_require_code_grant": False, "owner": self.bot_user,
            "verify_key": "0" * 64, "flags": 0, "summary": "",
        }  # fmt: skip

    def _sync(self, guild: str, commands: list[dict[str, Any]]) -> web.Response:
        out = []
        for cmd in commands:
            made = {"description": "", **cmd, "id": str(self.snowflake()),
                    "application_id": str(self.app_id), "version": "1"}  # fmt: skip
            if guild != "global":
                made["guild_id"] = guild
            out.append(made)
        self.synced[guild] = out
        return _json(out)

    # --- interaction answers ---

    def _interaction(self, token: str, iid: int | None = None) -> Interaction | web.Response:
        it = self.interactions.get(token)
        if it is None and self.accept_any_token and iid is not None:
            self.expect_interaction(iid, token, 2, self.channel_id)
            it = self.interactions[token]
        if it is None:
            return _error(404, 10015, "Unknown Webhook")
        if self.now() > it.created_at + TOKEN_LIFE_S:
            return _error(401, 50027, "Invalid Webhook Token")
        return it

    def _callback(
        self, iid: str, token: str, body: Any, files: list[tuple[str, bytes]]
    ) -> web.Response:
        it = self._interaction(token, int(iid))
        if isinstance(it, web.Response):
            return it
        if it.responded:
            return _error(400, 40060, "Interaction has already been acknowledged.")
        it.responded = True
        it.callback = body
        kind = int(body["type"])
        data = body.get("data") or {}
        resource: dict[str, Any] = {"type": kind}
        info: dict[str, Any] = {"id": str(it.id), "type": it.type}
        if kind in (4, 5):
            it.ephemeral = bool(int(data.get("flags") or 0) & EPHEMERAL)
            msg = self._new_message(
                it.channel_id, data.get("content") or "", data, files, via=token,
                ephemeral=it.ephemeral, loading=kind == 5,
            )  # fmt: skip
            it.original = msg.id
            info.update(response_message_id=str(msg.id), response_message_loading=kind == 5,
                        response_message_ephemeral=it.ephemeral)  # fmt: skip
            if kind == 4:
                resource["message"] = self._json(msg)
        return _json({"interaction": info, "resource": resource})

    def _webhook(
        self, method: str, parts: list[str], query: Any, body: Any,
        files: list[tuple[str, bytes]],
    ) -> web.Response:  # fmt: skip
        token = parts[2]
        it = self._interaction(token)
        if isinstance(it, web.Response):
            return it
        target = parts[4] if len(parts) > 4 else None
        if target is None and method == "POST":  # a follow-up
            if it.original is not None and self.messages[it.original].loading:
                return self._edit(self.messages[it.original], body, files)
            flags = int((body or {}).get("flags") or 0)
            msg = self._new_message(it.channel_id, body.get("content") or "", body, files,
                                    via=token, ephemeral=bool(flags & EPHEMERAL))  # fmt: skip
            return _json(self._json(msg))
        mid = it.original if target == "@original" else int(target or 0)
        msg = self.messages.get(mid or 0)
        if msg is None or msg.deleted:
            return _error(404, 10008, "Unknown Message")
        if method == "GET":
            return _json(self._json(msg))
        if method == "PATCH":
            return self._edit(msg, body, files)
        if method == "DELETE":
            msg.deleted = True
            return web.Response(status=204)
        return _error(405, 0, "method not allowed")

    # --- channels ---

    def _channel(self, cid: int) -> dict[str, Any] | None:
        channel = self.channels.get(cid)
        return None if channel is None or channel.get("deleted") else channel

    def _channels(
        self, method: str, parts: list[str], query: Any, body: Any,
        files: list[tuple[str, bytes]],
    ) -> web.Response:  # fmt: skip
        cid = int(parts[0])
        channel = self._channel(cid)
        if channel is None:
            return _error(404, 10003, "Unknown Channel")
        if len(parts) == 1 and method == "GET":
            return _json(_public(channel))
        if parts[1:] == ["messages"] and method == "POST":
            return self._post(cid, body, files)
        if parts[1:] == ["messages"] and method == "GET":
            return self._history(cid, query)
        mid = int(parts[2])
        msg = self.messages.get(mid)
        if msg is None or msg.deleted or msg.channel_id != cid:
            return _error(404, 10008, "Unknown Message")
        if len(parts) == 4 and parts[3] == "threads" and method == "POST":
            return self._thread(channel, msg, body)
        if method == "GET":
            return _json(self._json(msg))
        if method == "PATCH":
            return self._edit(msg, body, files)
        if method == "DELETE":
            msg.deleted = True
            return web.Response(status=204)
        return _error(405, 0, "method not allowed")

    def _post(self, cid: int, body: Any, files: list[tuple[str, bytes]]) -> web.Response:
        nonce = body.get("nonce")
        if nonce and body.get("enforce_nonce") and self.honour_nonces:
            for m in self.messages.values():
                if m.nonce == nonce and m.channel_id == cid:
                    return _json(self._json(m))
        if self.upload_limit is not None and any(len(d) > self.upload_limit for _, d in files):
            return _error(413, 40005, "Request entity too large")
        msg = self._new_message(cid, body.get("content") or "", body, files, nonce=nonce)
        return _json(self._json(msg))

    def _history(self, cid: int, query: Any) -> web.Response:
        after = int(query.get("after", 0))
        limit = int(query.get("limit", 50))
        found = sorted(
            (m for m in self.messages.values()
             if m.channel_id == cid and not m.deleted and not m.ephemeral and m.id > after),
            key=lambda m: m.id,
        )[:limit]  # fmt: skip
        return _json([self._json(m) for m in reversed(found)])

    def _thread(self, parent: dict[str, Any], msg: Message, body: Any) -> web.Response:
        if any(c["id"] == str(msg.id) for c in self.channels.values()):
            return _error(400, 160004, "A thread has already been created for this message")
        thread = self.add_channel(
            name=body.get("name", "thread"), type=10 if parent["type"] == 5 else 11,
            parent_id=parent["id"],
        )  # fmt: skip
        del self.channels[int(thread["id"])]
        thread["id"] = str(msg.id)  # a message's thread has the message's id
        self.channels[msg.id] = thread
        return _json(_public(thread))

    def _dm(self, user_id: str) -> web.Response:
        cid = self.snowflake()
        self.channels[cid] = {
            "id": str(cid), "type": 1, "last_message_id": None,
            "recipients": [{"id": user_id, "username": "member", "discriminator": "0",
                            "avatar": None}],
            "dm_user": user_id,
        }  # fmt: skip
        return _json(_public(self.channels[cid]))

    # --- messages ---

    def _new_message(
        self, cid: int, content: str, body: Any, files: list[tuple[str, bytes]], *,
        via: str | None = None, ephemeral: bool = False, loading: bool = False,
        nonce: str | None = None,
    ) -> Message:  # fmt: skip
        channel = self.channels.get(cid, {})
        if channel.get("dm_user") in self.dm_closed:
            raise web.HTTPForbidden(
                text=json.dumps({"message": "Cannot send messages to this user", "code": 50007}),
                content_type="application/json",
            )
        msg = Message(
            id=self.snowflake(), channel_id=cid, content=content, author=self.bot_user,
            components=list(body.get("components") or []), files=list(files), nonce=nonce,
            ephemeral=ephemeral, loading=loading, via_token=via,
            allowed_mentions=body.get("allowed_mentions"),
        )  # fmt: skip
        self.messages[msg.id] = msg
        for name, data in files:
            self.cdn[f"{msg.id}-{name}"] = (data, "application/octet-stream")
        return msg

    def user_message(
        self, channel_id: int | str, content: str, *, files: tuple[tuple[str, bytes], ...] = (),
        user_id: str = "444",
    ) -> Message:  # fmt: skip
        """A message a member posted (e.g. the picture someone animates)."""
        msg = self._new_message(int(channel_id), content, {}, list(files))
        msg.author = {"id": user_id, "username": "artist", "discriminator": "0", "avatar": None}
        return msg

    def _edit(self, msg: Message, body: Any, files: list[tuple[str, bytes]]) -> web.Response:
        if "content" in body:
            msg.content = body["content"] or ""
        if "components" in body:
            msg.components = list(body["components"] or [])
        if files:
            msg.files = list(files)
        if "allowed_mentions" in body:
            msg.allowed_mentions = body["allowed_mentions"]
        msg.loading = False
        msg.edits += 1
        return _json(self._json(msg))

    def message_json(self, msg: Message) -> dict[str, Any]:
        """The message as Discord sends it (for payloads that carry one)."""
        return self._json(msg)

    def _json(self, msg: Message) -> dict[str, Any]:
        return {
            "id": str(msg.id), "channel_id": str(msg.channel_id), "guild_id": str(self.guild_id),
            "author": msg.author, "content": msg.content,
            "timestamp": "2026-11-30T00:00:00+00:00", "edited_timestamp": None, "tts": False,
            "mention_everyone": False, "mentions": [], "mention_roles": [],
            "attachments": [
                {"id": str(msg.id + i), "filename": name, "size": len(data),
                 **({"content_type": "image/png"} if name.endswith(".png") else {}),
                 "url": f"http://{self.host}:{self.port}/cdn/{msg.id}-{name}",
                 "proxy_url": f"http://{self.host}:{self.port}/cdn/{msg.id}-{name}"}
                for i, (name, data) in enumerate(msg.files)
            ],
            "embeds": [], "pinned": False, "type": 0, "components": msg.components,
            "flags": EPHEMERAL if msg.ephemeral else 0,
            **({"nonce": msg.nonce} if msg.nonce else {}),
        }  # fmt: skip

    # --- gateway ---

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets.append(ws)
        await ws.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": 41250}}))
        try:
            async for frame in ws:
                if frame.type != WSMsgType.TEXT:
                    continue
                data = json.loads(frame.data)
                if data.get("op") == 1:
                    await ws.send_str(json.dumps({"op": 11}))
                elif data.get("op") == 2:
                    self.identify = data["d"]
                    self.identifies.append(data["d"])
                    ready = {
                        "v": 10, "user": self.bot_user, "guilds": [], "session_id": "fake",
                        **({"shard": data["d"]["shard"]} if "shard" in data["d"] else {}),
                        "resume_gateway_url": self.gateway_url,
                        "application": {"id": str(self.app_id), "flags": 0},
                    }  # fmt: skip
                    await ws.send_str(json.dumps({"op": 0, "t": "READY", "s": 1, "d": ready}))
                    self.identified.set()
                    await self.poke()
        finally:
            self.sockets.remove(ws)
        return ws


def _public(channel: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in channel.items() if k not in ("deleted", "dm_user")}


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """JSON as Discord sends it: discord.py reads a body as JSON only when the content type
    is exactly `application/json` (no charset)."""
    return web.Response(
        body=json.dumps(data).encode(), status=status, headers=headers,
        content_type="application/json",
    )  # fmt: skip


def _error(status: int, code: int, message: str) -> web.Response:
    return _json({"message": message, "code": code}, status=status)


async def _read_body(request: web.Request) -> tuple[Any, list[tuple[str, bytes]]]:
    if request.content_type.startswith("multipart/"):
        body: Any = {}
        files: list[tuple[str, bytes]] = []
        reader = await request.multipart()
        async for part in reader:
            if part.name == "payload_json":
                body = json.loads(await part.text())  # type: ignore[union-attr]
            else:
                files.append((part.filename or "file", bytes(await part.read())))  # type: ignore[union-attr]
        return body, files
    raw = await request.read()
    if not raw:
        return {}, []
    try:
        return json.loads(raw), []
    except ValueError:
        return raw.decode(errors="replace"), []


async def serve_forever() -> None:
    """Run the fake alone (a benchmark's separate process); the first line of output is
    JSON: its REST base, application, server and channel ids."""
    fake = FakeDiscord()
    fake.accept_any_token = True
    async with fake:
        print(json.dumps({"base_url": fake.base_url, "app_id": fake.app_id,
                          "guild_id": fake.guild_id, "channel": fake.channels[
                              int(fake.channel_id)]}), flush=True)  # fmt: skip
        await asyncio.Event().wait()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_forever())
