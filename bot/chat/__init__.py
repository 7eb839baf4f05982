"""What the Discord and Slack front doors share, so neither copies the other.

- `markup`   how each platform writes bold, links and mentions, and escapes user text
- `texts`    the sentences people read: a request's summary, job lines, confirmations
- `status`   one status view per job (headline, details, buttons) from the job's state
- `actions`  the buttons (cancel, re-roll, retry, delete), their ids and who may press them
- `options`  chat input: LoRA lists, model/duration/resolution choices, autocomplete
- `usage`    /usage and /jobs (and Slack's App Home): spent, held, left, resets; recent jobs
- `chart`    the small 30-day spend chart /usage attaches
- `admin`    moderators' operations: caps (server, role, member), saved LoRAs, report, pause
- `delivery` the chat sink the runner delivers through: status edits, clip upload, size and
             NSFW rules, exactly once; an adapter implements only `ChatPoster`
- `fit`      re-encoding a clip to fit an upload limit

An adapter (`bot/discord_adapter`, `bot/slack_adapter`) turns platform events into calls
here and into `AnimateService`, and renders what comes back as its platform's widgets.
"""
