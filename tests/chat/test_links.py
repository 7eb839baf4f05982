"""A clip the chat will not take is kept and linked through the bot's own signed URL."""

from __future__ import annotations

from pathlib import Path

from bot.app import open_app
from bot.cli.jobs import follow
from bot.cli.processes import chat_sink
from bot.sinks import SinkRegistry
from providers.simulator import Simulator
from tests.bot.conftest import settings_for
from tests.chat.conftest import RecordingPoster
from tests.chat.test_delivery import chat_request


async def test_a_refused_upload_links_to_the_kept_clip(
    simulator: Simulator, database_url: str, tmp_path: Path, png_file: Path
) -> None:
    poster = RecordingPoster()
    poster.refuse_upload = "Uploads are disabled in this workspace."
    settings = settings_for(
        simulator,
        database_url,
        public_base_url="https://bot.example",
        url_signing_secret="s" * 32,
        clip_dir=str(tmp_path / "clips"),
    )
    sinks = SinkRegistry()
    async with open_app(settings, sinks=sinks, owner="t") as app:
        sinks.register("test-chat", chat_sink(app, poster))
        sub = await app.service.animate(chat_request(png_file))
        job = await follow(app, sub.job.id)
        assert job is not None
        text = poster.messages[job.delivered_ref or ""].text
        assert "Uploads are disabled in this workspace. Watch or download it here:" in text
        url = text.rsplit(" ", 1)[-1]
        assert url.startswith("https://bot.example/c/")
        token = url.removeprefix("https://bot.example/c/")
        path = app.clips.path_for(token)
        assert path is not None and path.read_bytes()[4:8] == b"ftyp"
        assert app.clips.path_for(token[:-2] + "xx") is None
