"""What Slack and Teams channels share: they are built with the Core and read the parts the server
wires after them (the outbox for proactive posts, the deployment actions) from it when needed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.core import Core

if TYPE_CHECKING:
    from bot.alerts.dispatch import AlertDispatcher
    from bot.deploy.rollback import DeployActions


class CoreChannel:
    def __init__(self, core: Core) -> None:
        self.core = core
        self.settings = core.settings
        self.handler = core.handler

    @property
    def dispatcher(self) -> AlertDispatcher | None:
        """The core's outbox (None until the server wires alerts)."""
        return self.core.outbox

    @property
    def deploys(self) -> DeployActions | None:
        return self.core.deploys
