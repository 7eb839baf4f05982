"""A refused API key (401/403) is an operator's problem said in one sentence, not a
transient fault: no retry is invited, and no process submits to that provider again until
the key changes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from bot.errors import ModelDisabled
from providers.simulator import Simulator
from storage import JobStatus
from tests.bot.conftest import env_for, settings_for
from tests.bot.test_runner import request
from tests.fixtures_sim import SIM_API_KEY

WRONG = "a-key-the-provider-refuses"


async def test_a_refused_key_is_said_once_and_stops_further_submits(
    make_app: Any, simulator: Simulator, png_file: Path
) -> None:
    async with make_app(wavespeed_api_key=WRONG) as app:
        job = (await app.service.animate(request(png_file))).job
        assert job.status is JobStatus.FAILED
        assert job.status_reason.startswith(
            "WaveSpeed refused the bot's API key (HTTP 401), so no clip can start there until "
            "the operator fixes WAVESPEED_API_KEY"
        )
        assert "try again" not in job.status_reason
        assert (await app.db.ledger.get(job.ledger_key)).status == "voided"  # type: ignore[union-attr]
        entries = len(await app.db.ledger.entries())
        uploads = simulator.stats.requests.copy()

        # The next request is refused before any reservation, and nothing reaches WaveSpeed.
        with pytest.raises(ModelDisabled, match="WAVESPEED_API_KEY"):
            await app.service.animate(request(png_file))
        assert len(await app.db.ledger.entries()) == entries
        assert simulator.stats.requests == uploads

        # Novita keeps working (its own key, and it is accepted), as long as its images need
        # no WaveSpeed upload: here they do, so it is refused too, with the same sentence.
        with pytest.raises(ModelDisabled, match="WAVESPEED_API_KEY"):
            await app.service.animate(
                request(png_file).model_copy(update={"model": "wan-2.1", "options": {}})
            )

    # Another process with the same key: refused from the database, before any request.
    async with make_app(wavespeed_api_key=WRONG) as other:
        with pytest.raises(ModelDisabled):
            await other.service.animate(request(png_file))
    assert simulator.stats.requests == uploads

    # The key changes (the operator fixed it): that process submits again.
    async with make_app(wavespeed_api_key=SIM_API_KEY) as fixed:
        job = (await fixed.service.animate(request(png_file))).job
        assert job.status is JobStatus.SUBMITTED


async def test_a_refused_novita_key_disables_only_novita(
    make_app: Any, simulator: Simulator, png_file: Path
) -> None:
    async with make_app(novita_api_key=WRONG) as app:
        def wan() -> Any:
            return request(png_file).model_copy(update={"model": "wan-2.1", "options": {}})

        job = (await app.service.animate(wan())).job
        assert job.status is JobStatus.FAILED and "NOVITA_API_KEY" in job.status_reason
        with pytest.raises(ModelDisabled, match="NOVITA_API_KEY"):
            await app.service.animate(wan())
        job = (await app.service.animate(request(png_file))).job  # a WaveSpeed model
        assert job.status is JobStatus.SUBMITTED


async def test_queued_jobs_of_a_refused_key_fail_without_a_post(
    make_app: Any, simulator: Simulator, png_file: Path
) -> None:
    from providers.simulator import Fault
    from tests.bot.conftest import Clock
    from tests.bot.test_runner import SUBMIT_PATH

    simulator.add_fault(Fault(method="POST", path_prefix=SUBMIT_PATH, status=429))
    clock = Clock()
    async with make_app(clock=clock) as app:
        queued = (await app.service.animate(request(png_file))).job
        assert queued.status is JobStatus.RESERVED  # the provider was busy: submitted later
        keys = app.keys
        assert keys is not None
        await keys.refused("wavespeed", status_code=401, detail="seen by another process")
        clock.jump(120)
        await app.runner.run_once()
        job = await app.db.jobs.get(queued.id)
        assert job is not None and job.status is JobStatus.FAILED
        assert "WAVESPEED_API_KEY" in job.status_reason
        assert (await app.db.ledger.get(job.ledger_key)).status == "voided"  # type: ignore[union-attr]
    assert simulator.tasks == {}


async def test_models_shows_the_refused_key_and_animate_names_the_setting(
    simulator: Simulator, database_url: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], tmp_path: Path, png_file: Path,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    for name, value in env_for(
        settings_for(simulator, database_url, wavespeed_api_key=WRONG)
    ).items():
        monkeypatch.setenv(name, value)

    async def cli(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = await asyncio.to_thread(main, list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    code, out, err = await cli("animate", str(png_file), "--prompt", "x", "--user", "bob")
    assert code == 1
    assert "WaveSpeed refused the bot's API key (HTTP 401)" in out
    assert "try again" not in out + err

    code, out, _ = await cli("models", "--json")
    models = {m["id"]: m for m in map(json.loads, out.splitlines())}
    assert models["sora-2"]["enabled"] is False
    assert "fixes WAVESPEED_API_KEY" in models["sora-2"]["reason"]

    code, _, err = await cli("animate", str(png_file), "--prompt", "x", "--user", "bob")
    assert code == 2 and err.count("\n") == 1 and "WAVESPEED_API_KEY" in err
