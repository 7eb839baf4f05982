"""`purge`: delete what the retention rules let go. The ledger's entries are kept forever."""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

from bot.cli._output import add_json_flag, cli_settings, print_json

DAY_S = 86_400.0
MAX_DAYS = 3650


def register(sub: Any) -> None:
    p = sub.add_parser(
        "purge",
        help="delete what the retention rules let go (refused holds, old inputs and clips)",
        description="Deletes refused reservations (they carry no money) older than "
        "REFUSAL_RETENTION_DAYS, and prepared input images and clips kept under CLIP_DIR "
        "older than CLIP_RETENTION_DAYS. The ledger's entries, and every hold that carries "
        "money or a job's outcome, are kept forever. Safe to run from cron, and while the "
        "bot runs.",
    )
    p.add_argument(
        "--older-than", metavar="DAYS",
        help=f"use this retention (1 to {MAX_DAYS} days) for both instead of the settings",
    )  # fmt: skip
    add_json_flag(p)
    p.set_defaults(handler=cmd_purge)


def cmd_purge(args: argparse.Namespace) -> int:
    from bot.cli.ledger import bounded_int
    from bot.clips import ClipStore
    from bot.database import connect

    settings = cli_settings()
    refusal_days = settings.refusal_retention_days
    input_days = settings.clip_retention_days
    if args.older_than is not None:
        refusal_days = input_days = bounded_int(args.older_than, "--older-than", 1, MAX_DAYS)
    now = time.time()

    async def run() -> Any:
        async with await connect(settings) as db:
            return await db.purge(
                refusals_before=now - refusal_days * DAY_S,
                inputs_before=now - input_days * DAY_S,
            )

    purged = asyncio.run(run())
    store = ClipStore(Path(settings.clip_dir), retention_days=input_days, links=None)
    clips = store.purge()
    if args.json:
        print_json(
            {"refused_holds": purged.refused_holds, "refused_holds_days": refusal_days,
             "input_images": purged.input_images, "clips": clips,
             "input_images_days": input_days}
        )  # fmt: skip
    else:
        print(
            f"deleted {purged.refused_holds} refused reservation(s) older than {refusal_days} "
            f"day(s), and {purged.input_images} input image(s) and {clips} kept clip(s) older "
            f"than {input_days} day(s); the ledger's entries are kept"
        )
    return 0
