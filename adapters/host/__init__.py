"""The composition root: the one place that names every platform.

The HTTP server (`server.create_app`) and the command line (`cli.main`, the `healthbot` console
script) are the driving adapters: they build the platform-neutral core (`bot.core.build_core`), add
Slack, Teams and the console around it, and start and stop what runs in the background. doctor and
the checklist and digest commands live here because they build the whole server to check or run it.
Nothing under bot/ or agent/ imports this package.
"""
