"""A fake Slack on loopback: the Web API methods the bot calls, the file host, the upload
URLs, response_url, and a Socket Mode WebSocket. A real aiohttp server, reached by the real
slack_sdk client through `base_url` (SLACK_API_URL), so the bot is tested as it talks.

It behaves as Slack documents: every Web API call needs the bot token (else
`invalid_auth`); private files answer only with the bot token and otherwise with an HTML
login page; a bot posts only in channels it is a member of (and in direct messages);
`files.completeUploadExternal` shares the uploaded file as a message in the thread;
`conversations.replies` returns message metadata only with `include_all_metadata`.

Tests script faults per method (`fail_next`: a 429 with Retry-After, or an `ok: false`
error), hold a method's answer until released (`hold`: Slack did the work, the bot has not
heard back yet), and wait for calls (`wait_for`) instead of sleeping.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web

BOT_TOKEN = "xoxb-fake-bot-token"
APP_TOKEN = "xapp-fake-app-token"
SIGNING_SECRET = "fake-signing-secret"
TEAM = "T0TEAM"
BOT_USER = "UBOT"
BOT_ID = "BBOT"
LOGIN_PAGE = "<!DOCTYPE html><html><head><title>Slack</title></head><body>Sign in</body></html>"


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    token: str | None


@dataclass
class Fault:
    status: int = 200
    error: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class FileRecord:
    id: str
    name: str
    data: bytes
    mimetype: str
    filetype: str
    user: str
    shared: bool = False
    title: str = ""

    def public(self, base: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "title": self.title or self.name,
            "mimetype": self.mimetype,
            "filetype": self.filetype,
            "size": len(self.data),
            "user": self.user,
            "url_private": f"{base}/files-pri/{TEAM}-{self.id}/{self.name}",
            "url_private_download": f"{base}/files-pri/{TEAM}-{self.id}/download/{self.name}",
            "permalink": f"{base}/files/{self.user}/{self.id}/{self.name}",
        }


class FakeSlack:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.messages: dict[str, list[dict[str, Any]]] = {}
        self.ephemerals: list[dict[str, Any]] = []
        self.responses: list[dict[str, Any]] = []  # what was POSTed to response_urls
        self.views: dict[str, dict[str, Any]] = {}
        self.home_views: dict[str, dict[str, Any]] = {}
        self.files: dict[str, FileRecord] = {}
        self.uploads: dict[str, bytes] = {}
        self.file_requests: list[tuple[str, str | None]] = []  # (path, Authorization)
        self.member_of: set[str] = {"C1", "C2"}
        self.users: dict[str, dict[str, Any]] = {
            "U1": {"id": "U1", "name": "ana"},
            "U2": {"id": "U2", "name": "ben"},
            "UADMIN": {"id": "UADMIN", "name": "root", "is_admin": True},
            "UOWNER": {"id": "UOWNER", "name": "boss", "is_owner": True},
        }
        self.faults: dict[str, list[Fault]] = {}
        self.upload_status: list[int] = []
        self.holds: dict[str, asyncio.Event] = {}
        self.file_holds: dict[str, asyncio.Event] = {}
        self.login_only: set[str] = set()  # files that answer the login page even with a token
        self.socket_acks: list[dict[str, Any]] = []
        self._ts = itertools.count(1)
        self._ids = itertools.count(1)
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._sockets: list[web.WebSocketResponse] = []
        self._socket_ready = asyncio.Event()
        self.base = ""

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_get("/files-pri/{key}/{tail:.*}", self._private_file)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_post("/respond/{n}", self._respond)
        app.router.add_get("/socket", self._socket)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.base = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        for ws in self._sockets:
            await ws.close()
        for event in self.holds.values():
            event.set()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        return f"{self.base}/api/"

    def response_url(self) -> str:
        return f"{self.base}/respond/{next(self._ids)}"

    # ------------------------------------------------------------------ scripting

    def fail_next(self, method: str, *, status: int = 200, error: str | None = None,
                  retry_after: int | None = None, times: int = 1) -> None:  # fmt: skip
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        self.faults.setdefault(method, []).extend(
            Fault(status, error, headers) for _ in range(times)
        )

    def hold(self, method: str) -> asyncio.Event:
        """The next call of `method` does its work, then waits for the event to answer."""
        event = asyncio.Event()
        self.holds[method] = event
        return event

    def add_file(self, name: str, data: bytes, mimetype: str = "image/png",
                 user: str = "U1") -> dict[str, Any]:  # fmt: skip
        """A file a person uploaded; returns it as Slack describes it in payloads."""
        file_id = f"FIMG{next(self._ids)}"
        filetype = name.rsplit(".", 1)[-1].lower() if "." in name else ""
        self.files[file_id] = FileRecord(file_id, name, data, mimetype, filetype, user)
        return self.files[file_id].public(self.base)

    def hold_file(self, file_id: str) -> asyncio.Event:
        """The next download of this file waits for the event (a slow download)."""
        event = asyncio.Event()
        self.file_holds[file_id] = event
        return event

    # ------------------------------------------------------------------ looking

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def thread(self, channel: str, ts: str) -> list[dict[str, Any]]:
        return [
            m for m in self.messages.get(channel, [])
            if m["ts"] == ts or m.get("thread_ts") == ts
        ]  # fmt: skip

    def clip_messages(self) -> list[dict[str, Any]]:
        return [m for msgs in self.messages.values() for m in msgs
                if any(f["name"].endswith(".mp4") for f in m.get("files", []))]  # fmt: skip

    async def wait_for(self, method: str, count: int = 1, *, guard_s: float = 60.0) -> list[Call]:
        """Return once `method` was called `count` times (the guard only stops a hang)."""

        async def seen() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: len(self.calls_to(method)) >= count)

        await asyncio.wait_for(seen(), guard_s)
        return self.calls_to(method)

    async def wait_until(self, predicate: Any, *, guard_s: float = 60.0) -> None:
        async def seen() -> None:
            async with self._changed:
                await self._changed.wait_for(predicate)

        await asyncio.wait_for(seen(), guard_s)

    # ------------------------------------------------------------------ the Web API

    async def _api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        args = await _args(request)
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else args.get("token")
        self.calls.append(Call(method, args, token))
        status, answer, headers = self._answer(method, args, token)
        await self._notify()  # after the work: a waiter sees its effect
        hold = self.holds.pop(method, None) if answer.get("ok") else None
        if hold is not None:
            await hold.wait()
        return web.json_response(answer, status=status, headers=headers)

    def _answer(
        self, method: str, args: dict[str, Any], token: str | None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        faults = self.faults.get(method)
        if faults:
            fault = faults.pop(0)
            if fault.status != 200:
                return fault.status, {"ok": False, "error": "ratelimited"}, fault.headers
            return 200, {"ok": False, "error": fault.error}, {}
        wanted = APP_TOKEN if method == "apps.connections.open" else BOT_TOKEN
        if token != wanted:
            return 200, {"ok": False, "error": "invalid_auth"}, {}
        handler = getattr(self, "m_" + method.replace(".", "_"), None)
        if handler is None:
            return 200, {"ok": False, "error": "unknown_method"}, {}
        try:
            return 200, {"ok": True, **handler(args)}, {}
        except SlackError as exc:
            return 200, {"ok": False, "error": exc.error}, {}

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def m_auth_test(self, a: dict[str, Any]) -> dict[str, Any]:
        return {"url": f"{self.base}/", "team": "Fake", "user": "animate", "team_id": TEAM,
                "user_id": BOT_USER, "bot_id": BOT_ID}  # fmt: skip

    def m_users_info(self, a: dict[str, Any]) -> dict[str, Any]:
        user = self.users.get(str(a.get("user")))
        if user is None:
            raise SlackError("user_not_found")
        return {"user": {"team_id": TEAM, **user}}

    def m_views_open(self, a: dict[str, Any]) -> dict[str, Any]:
        view = _json(a["view"])
        view_id = f"V{next(self._ids)}"
        stored = {**view, "id": view_id, "hash": f"h{next(self._ids)}", "team_id": TEAM,
                  "trigger_id": a.get("trigger_id")}  # fmt: skip
        self.views[view_id] = stored
        return {"view": stored}

    def m_views_update(self, a: dict[str, Any]) -> dict[str, Any]:
        view_id = str(a.get("view_id"))
        if view_id not in self.views:
            raise SlackError("not_found")
        stored = {**_json(a["view"]), "id": view_id, "hash": f"h{next(self._ids)}"}
        self.views[view_id] = stored
        return {"view": stored}

    def m_views_publish(self, a: dict[str, Any]) -> dict[str, Any]:
        self.home_views[str(a["user_id"])] = _json(a["view"])
        return {"view": _json(a["view"])}

    def _channel(self, channel: str) -> str:
        if channel.startswith(("U", "W")):
            return "D" + channel  # a user id: the app's direct messages with them
        if channel.startswith("D"):
            return channel
        if channel not in self.member_of:
            raise SlackError("not_in_channel")
        return channel

    def _new_message(self, channel: str, **fields: Any) -> dict[str, Any]:
        ts = f"1700000000.{next(self._ts):06d}"
        thread_ts = fields.pop("thread_ts", None) or None
        if thread_ts is not None and not any(
            m["ts"] == thread_ts for m in self.messages.get(channel, [])
        ):
            raise SlackError("thread_not_found")
        message = {"type": "message", "ts": ts, "user": BOT_USER, "bot_id": BOT_ID,
                   "channel": channel, **fields}  # fmt: skip
        if thread_ts:
            message["thread_ts"] = thread_ts
        self.messages.setdefault(channel, []).append(message)
        return message

    def m_chat_postMessage(self, a: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(str(a["channel"]))
        message = self._new_message(
            channel, text=a.get("text", ""), blocks=_json(a.get("blocks")) or [],
            metadata=_json(a.get("metadata")), thread_ts=a.get("thread_ts"),
        )  # fmt: skip
        return {"channel": channel, "ts": message["ts"], "message": message}

    def m_chat_update(self, a: dict[str, Any]) -> dict[str, Any]:
        message = self._find(str(a["channel"]), str(a["ts"]))
        message.setdefault("history", [message.get("text", "")])
        message["history"].append(a.get("text", ""))
        message.update(text=a.get("text", ""), blocks=_json(a.get("blocks")) or [],
                       edits=message.get("edits", 0) + 1)  # fmt: skip
        if a.get("metadata"):
            message["metadata"] = _json(a["metadata"])
        return {"channel": a["channel"], "ts": a["ts"]}

    def m_chat_delete(self, a: dict[str, Any]) -> dict[str, Any]:
        message = self._find(str(a["channel"]), str(a["ts"]))
        self.messages[str(a["channel"])].remove(message)
        return {"channel": a["channel"], "ts": a["ts"]}

    def m_chat_postEphemeral(self, a: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(str(a["channel"]))
        self.ephemerals.append({"channel": channel, **a})
        return {"message_ts": f"1700000000.{next(self._ts):06d}"}

    def m_chat_getPermalink(self, a: dict[str, Any]) -> dict[str, Any]:
        self._find(str(a["channel"]), str(a["message_ts"]))
        return {"permalink": f"{self.base}/archives/{a['channel']}/p{a['message_ts']}"}

    def _find(self, channel: str, ts: str) -> dict[str, Any]:
        for message in self.messages.get(channel, []):
            if message["ts"] == ts:
                return message
        raise SlackError("message_not_found")

    def m_conversations_replies(self, a: dict[str, Any]) -> dict[str, Any]:
        channel, ts = str(a["channel"]), str(a["ts"])
        if channel not in self.member_of and not channel.startswith("D"):
            raise SlackError("channel_not_found")
        thread = self.thread(channel, ts)
        if not thread:
            raise SlackError("thread_not_found")
        with_meta = str(a.get("include_all_metadata", "")).lower() in ("1", "true")
        out = []
        for m in thread:
            shown = {k: v for k, v in m.items() if k != "metadata" or with_meta}
            out.append(shown)
        return {"messages": out, "has_more": False}

    def m_conversations_open(self, a: dict[str, Any]) -> dict[str, Any]:
        return {"channel": {"id": "D" + str(a["users"])}}

    def m_files_getUploadURLExternal(self, a: dict[str, Any]) -> dict[str, Any]:
        file_id = f"FUP{next(self._ids)}"
        name = str(a["filename"])
        ftype = name.rsplit(".", 1)[-1]
        mime = (
            "video/mp4"
            if ftype == "mp4"
            else "text/csv"
            if ftype == "csv"
            else "application/octet-stream"
        )
        self.files[file_id] = FileRecord(file_id, name, b"", mime, ftype, BOT_USER)
        return {"upload_url": f"{self.base}/upload/{file_id}", "file_id": file_id}

    def m_files_completeUploadExternal(self, a: dict[str, Any]) -> dict[str, Any]:
        files = _json(a["files"])
        channel_id = a.get("channel_id")
        out = []
        shared = []
        for f in files:
            record = self.files.get(str(f["id"]))
            if record is None or f["id"] not in self.uploads:
                raise SlackError("file_not_found")
            record.data = self.uploads[f["id"]]
            record.title = str(f.get("title") or record.name)
            out.append({"id": record.id, "title": record.title})
            shared.append(record)
        if channel_id:
            channel = self._channel(str(channel_id))
            for record in shared:
                record.shared = True
            self._new_message(
                channel, text=a.get("initial_comment", ""), thread_ts=a.get("thread_ts"),
                files=[r.public(self.base) for r in shared], upload=True,
            )  # fmt: skip
        return {"files": out}

    def m_files_info(self, a: dict[str, Any]) -> dict[str, Any]:
        record = self.files.get(str(a["file"]))
        if record is None:
            raise SlackError("file_not_found")
        return {"file": record.public(self.base)}

    def m_files_delete(self, a: dict[str, Any]) -> dict[str, Any]:
        file_id = str(a["file"])
        if self.files.pop(file_id, None) is None:
            raise SlackError("file_not_found")
        for channel, messages in self.messages.items():
            self.messages[channel] = [
                m for m in messages if not any(f["id"] == file_id for f in m.get("files", []))
            ]
        return {}

    def m_apps_connections_open(self, a: dict[str, Any]) -> dict[str, Any]:
        return {"url": self.base.replace("http://", "ws://") + "/socket"}

    # ------------------------------------------------------------------ files, uploads

    async def _private_file(self, request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization")
        self.file_requests.append((request.path, auth))
        await self._notify()
        file_id = request.match_info["key"].split("-", 1)[-1]
        record = self.files.get(file_id)
        hold = self.file_holds.pop(file_id, None)
        if hold is not None:
            await hold.wait()
        if auth != f"Bearer {BOT_TOKEN}" or file_id in self.login_only:
            # what Slack does without the token: a login page, not the file
            return web.Response(text=LOGIN_PAGE, content_type="text/html")
        if record is None:
            return web.Response(status=404, text="not found")
        return web.Response(body=record.data, content_type=record.mimetype)

    async def _upload(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Authorization"):
            self.file_requests.append((request.path, request.headers["Authorization"]))
        self.calls.append(Call("upload", {"file_id": request.match_info["file_id"],
                                          "length": len(body)}, None))  # fmt: skip
        status = self.upload_status.pop(0) if self.upload_status else 200
        if status != 200:
            await self._notify()
            return web.Response(status=status, text="too large")
        self.uploads[request.match_info["file_id"]] = body  # slack_sdk posts the raw bytes
        await self._notify()
        return web.Response(text="OK - " + str(len(body)))

    async def _respond(self, request: web.Request) -> web.Response:
        self.responses.append(await request.json())
        await self._notify()
        return web.Response(text="ok")

    # ------------------------------------------------------------------ Socket Mode

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.append(ws)
        await ws.send_json({"type": "hello", "num_connections": 1})
        self._socket_ready.set()
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                self.socket_acks.append(json.loads(msg.data))
                await self._notify()
        return ws

    async def send_envelope(self, kind: str, payload: dict[str, Any]) -> str:
        """Deliver one Socket Mode envelope (e.g. `slash_commands`); returns its id."""
        await asyncio.wait_for(self._socket_ready.wait(), 30)
        envelope_id = f"env-{next(self._ids)}"
        await self._sockets[-1].send_json(
            {"envelope_id": envelope_id, "type": kind, "payload": payload,
             "accepts_response_payload": kind != "events_api", "retry_attempt": 0,
             "retry_reason": ""}
        )  # fmt: skip
        return envelope_id


class SlackError(Exception):
    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


async def _args(request: web.Request) -> dict[str, Any]:
    args: dict[str, Any] = dict(request.query)
    if request.method == "POST" and request.can_read_body:
        ctype = request.headers.get("Content-Type", "")
        raw = await request.read()
        if ctype.startswith("application/json"):
            body = json.loads(raw or b"{}")
            args.update({k: v for k, v in body.items() if v is not None})
        elif ctype.startswith("application/x-www-form-urlencoded"):
            args.update(dict(parse_qsl(raw.decode())))
    return args


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def by_metadata(messages: list[dict[str, Any]], event_type: str) -> list[dict[str, Any]]:
    return [m for m in messages if (m.get("metadata") or {}).get("event_type") == event_type]


def metadata_job(message: Mapping[str, Any]) -> str | None:
    meta = message.get("metadata") or {}
    return (meta.get("event_payload") or {}).get("job_id")
