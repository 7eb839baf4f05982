"""The Slack front door (slack-bolt `AsyncApp`): it only translates.

Slack payloads become `AnimateRequest`s and `Actor`s for `AnimateService` and `bot.chat`;
what comes back becomes Block Kit. Nothing here prices, counts quota or talks to a provider.

- `web`       the Web API client (base URL, rate-limit retries), the token check, file hosts
- `files`     which Slack file a request means, and how the bot may download it
- `modal`     the /animate modal: Block Kit in, form values and field errors out (pure)
- `blocks`    messages, buttons, App Home and help texts as Block Kit (pure)
- `listeners` what each command, shortcut, button, submission and event does
- `admin`     the /animate-admin sub-commands
- `poster`    `ChatPoster` for the runner's chat sink: status, clip upload, exactly once
- `door`      the bolt app with its request checks; the HTTP handler for /slack/events
- `process`   Socket Mode or HTTP mode, the sink, and `python -m bot slack`
"""
