"""The access gate: who may ask (before the endpoint is called) and who may see an answer (after).

Adapters say how an asker belongs (`Incoming.membership`, from Slack's users.info and event
fields or the Teams member lookup); the gate decides with the configured allowlists, the guest rule
and the optional Databricks policy. With warm caches every check is a dict lookup: a member's
message costs no round trip (bench/handler.py keeps that honest).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.access.directory import DatabricksDirectory, DatabricksUser, DirectoryUnavailable
from bot.access.policy import AccessPolicy
from bot.models import Incoming, Membership, Platform

if TYPE_CHECKING:
    from bot.config import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: str  # short and stable: the request log's `refused:<reason>`, stats and /metrics group by it
    message: str  # the one polite line the asker sees


@dataclass
class AccessGate:
    allow_guests: bool = False
    trusted_orgs: dict[Platform, frozenset[str]] = field(default_factory=dict)  # other orgs let in by id
    policy: AccessPolicy | None = None
    directory: DatabricksDirectory | None = None
    org_names: dict[Platform, str] = field(default_factory=dict)  # filled by adapters (Slack: auth.test)

    async def admit(self, msg: Incoming) -> Refusal | None:
        """None when this asker may ask at all; otherwise why not, in words for them."""
        kind = msg.membership
        if kind is Membership.OPERATOR:
            return None
        home = self.org_names.get(msg.platform) or ("this workspace" if msg.platform is Platform.SLACK
                                                     else "this organisation")
        if kind is Membership.UNVERIFIED:
            return Refusal("unverified", f"healthbot could not check your {msg.platform.value.title()} account "
                                         "right now, so it cannot answer. Please try again in a minute.")
        if kind is Membership.EXTERNAL and msg.org not in self.trusted_orgs.get(msg.platform, frozenset()):
            return Refusal("external", f"Sorry, healthbot answers members of {home} only: it carries cost and "
                                       "security data, so people of other organisations cannot ask it.")
        if kind is Membership.ANONYMOUS:
            return Refusal("anonymous", f"Sorry, healthbot answers signed-in members of {home} only.")
        if kind is Membership.GUEST and not self.allow_guests:
            return Refusal("guest", f"Sorry, healthbot answers members of {home} only, and guest accounts are not "
                                    "included. A workspace admin can change that.")
        if self.policy is not None and self.policy.require_databricks_user:
            refused, _ = await self._databricks_user(msg)
            return refused
        return None

    def streams_freely(self, msg: Incoming) -> bool:
        """Whether an answer's text may be shown while it is written: not when a domain rule could
        still withhold it once the endpoint says which domains it touches."""
        return self.policy is None or not self.policy.domains or msg.membership is Membership.OPERATOR

    async def withheld(self, msg: Incoming, domains: list[str]) -> Refusal | None:
        """None when the asker may see every domain the answer touches; else the line shown instead."""
        if self.policy is None or msg.membership is Membership.OPERATOR:
            return None
        limited = self.policy.restricted(domains)
        if not limited:
            return None
        refused, user = await self._databricks_user(msg)
        for domain, groups in limited.items():
            if user is None or not await self._in_any(user, groups):
                line = (f"This answer touches {domain.replace('_', ' ')} data, which is limited to "
                        f"{_names(groups)}, so healthbot withheld it.")
                if refused is not None and refused.reason == "directory_unavailable":
                    line = refused.message
                return Refusal(f"withheld:{domain}", line)
        return None

    async def may_deploy(self, msg: Incoming, *, what: str = "roll back the Health Monitor endpoint") -> Refusal | None:
        """Rollback (and the checklist in the chat) is for members of the `deployers:` groups only;
        nobody when none are listed. `what` names the action in the refusal."""
        refused = await self.admit(msg)
        if refused is not None:
            return refused
        if self.policy is None or not self.policy.deployers:
            return Refusal("not_deployer", f"Nobody may {what} from the chat yet: list the Databricks groups "
                                           "allowed to roll back under `deployers:` in HEALTHBOT_ACCESS_POLICY "
                                           "(e.g. `deployers: [platform-admins]`).")
        refused, user = await self._databricks_user(msg)
        if user is None:
            return refused
        if not await self._in_any(user, self.policy.deployers):
            return Refusal("not_deployer", f"Only members of {_names(self.policy.deployers)} may {what}.")
        return None

    async def _in_any(self, user: DatabricksUser, groups: tuple[str, ...]) -> bool:
        assert self.directory is not None
        for group in groups:
            try:
                if await self.directory.member_of(user, group):
                    return True
            except DirectoryUnavailable as exc:
                log.warning("access: %s", exc)
        return False

    async def _databricks_user(self, msg: Incoming) -> tuple[Refusal | None, DatabricksUser | None]:
        """The asker's active workspace user, or why there is none."""
        if not msg.user_email:
            hint = ("ask a Slack admin to give healthbot the users:read.email scope" if msg.platform is Platform.SLACK
                    else "Teams did not share it with healthbot")
            return Refusal("no_email", f"healthbot cannot see your email address, so it cannot check your "
                                       f"Databricks access ({hint})."), None
        assert self.directory is not None  # a policy comes with a workspace (checked at start)
        try:
            user = await self.directory.user(msg.user_email)
        except DirectoryUnavailable as exc:
            log.warning("access: %s", exc)
            return Refusal("directory_unavailable", "healthbot could not check your Databricks access right "
                                                    "now. Please try again in a few minutes."), None
        if user is None or not user.active:
            return Refusal("not_databricks_user", f"Sorry, healthbot answers people with an active account in "
                                                  f"the Databricks workspace, and {msg.user_email} has none."), None
        return None, user


def _names(groups: tuple[str, ...]) -> str:
    return groups[0] if len(groups) == 1 else ", ".join(groups[:-1]) + f" and {groups[-1]}"


def gate_for(settings: Settings) -> AccessGate:
    """The gate `healthbot serve` runs with: the policy file (already validated at start), the
    allowlists as the organisations trusted besides the installing one, and SCIM when needed."""
    from bot.access.policy import load_policy
    from bot.workspace import Workspace, config_factory

    policy = load_policy(settings.access_policy)
    directory = DatabricksDirectory(Workspace(config_factory(settings))) if policy and policy.needs_identity else None
    return AccessGate(
        allow_guests=settings.allow_guests, policy=policy, directory=directory,
        trusted_orgs={Platform.SLACK: frozenset(settings.slack_team_ids),
                      Platform.TEAMS: frozenset(settings.teams_tenant_ids)},
    )
