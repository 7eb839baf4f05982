"""`python -m bot ...`: the operator's and the tests' front door."""

from bot.cli import main

raise SystemExit(main(prog="python -m bot"))
