"""The newsroom: who may see a release's public page and its kit, and what the page shows.

A release appears on its client's newsroom once messages went out (sending, paused,
sent or partial) and its embargo, if any, has lifted — automatically: no one publishes
it by hand. Before the lift the page and the kit answer only to the release's
recipients (the kit token of one of its deliveries, the "View online" link of their
message) and, for the kit's images, to the release's own token (what messages and
proofs show them with); everyone else gets 404, as for a page that does not exist.

The page is the release without personalization: the body rendered for a recipient
without fields (``{{ first_name | default("colleague") }}`` gives "colleague"), no
greeting intro, the speakers, questions, booking contact, "About", the press kit and the
client's disclosure.

Corrections and withdrawals are public releases too (listed, in the feed, a page each,
under the same embargo rules, and never before the release they answer is public). The
page of a release shows at the top each of them that went out, linked; a withdrawn
release says so with the withdrawal's note, and is marked in the list. A page of a
correction or withdrawal links the release it answers. Follow-ups are private: never
listed, and their page answers only to their own recipients' tokens.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from markupsafe import Markup
from sqlalchemy.orm import Session

from mailer.config import Settings
from mailer.domain.conversations import ReleaseKind
from mailer.domain.embargo import embargo_text
from mailer.domain.states import ReleaseStatus
from mailer.message import CompiledVariant, Recipient, Renderer, Speaker
from mailer.message.kit import asset_links
from mailer.releases.embargo import embargo_lifted
from mailer.releases.plan import release_embargo, variant_specs
from mailer.store import assets as asset_store
from mailer.store import releases as release_store
from mailer.store.newsroom import Published, linked_releases, published_releases
from mailer.store.tables import Client, Release

__all__ = [
    "NEWSROOM_STATUSES",
    "ClientNewsroom",
    "NewsroomPage",
    "PageRenderer",
    "asset_visible",
    "client_newsroom",
    "may_see",
]

#: Release states whose messages went out (some or all): the newsroom may show them.
NEWSROOM_STATUSES = frozenset({ReleaseStatus.SENDING, ReleaseStatus.PAUSED, ReleaseStatus.SENT, ReleaseStatus.PARTIAL})
_STATUS_VALUES = tuple(sorted(s.value for s in NEWSROOM_STATUSES))
#: Kinds of linked releases the newsroom shows (follow-ups are private to their recipients).
PUBLIC_KINDS = (ReleaseKind.CORRECTION.value, ReleaseKind.WITHDRAWAL.value)
#: Whom the page renders the body for: nobody in particular.
NOBODY = Recipient(email="")


@dataclass(frozen=True)
class ClientNewsroom:
    """A client's newsroom: who it is and its published releases, newest first."""

    slug: str
    name: str
    postal_address: str
    disclosure: str | None
    noindex: bool
    releases: list[Published]
    #: the listed releases that were withdrawn (a withdrawal of each went out and is public)
    withdrawn: frozenset[int] = frozenset()


@dataclass(frozen=True)
class NewsroomPage:
    """One release's newsroom page (see the module docstring). ``embargo`` is the lift as
    text while it has not lifted (only recipients see the page then), else None."""

    client: ClientNewsroom
    release_id: int
    title: str
    dateline: str | None
    body: Markup
    about: Markup | None
    speakers: tuple[Speaker, ...]
    questions: tuple[str, ...]
    booking_contact: str | None
    assets: list[dict[str, Any]]
    embargo: str | None
    noindex: bool
    #: its corrections and withdrawals that went out and are public, oldest first
    answers: tuple[Published, ...] = ()
    #: its (latest) withdrawal, with the withdrawal's note, when it was withdrawn
    withdrawal: Published | None = None
    withdrawal_note: Markup | None = None
    #: a correction or withdrawal: its kind and the release it answers (when that went out)
    kind: str | None = None
    parent: Published | None = None


def client_newsroom(session: Session, slug: str, *, now: datetime, with_releases: bool = True) -> ClientNewsroom | None:
    """The client ``slug``'s newsroom; None when there is no such client."""
    client = release_store.find_client(session, slug)
    if client is None:
        return None
    if not with_releases:
        return _newsroom(client, [])
    releases = published_releases(session, client.id, statuses=_STATUS_VALUES, now=now, kinds=PUBLIC_KINDS)
    withdrawals = linked_releases(
        session,
        [r.id for r in releases if r.kind is None],
        kinds=(ReleaseKind.WITHDRAWAL.value,),
        statuses=_STATUS_VALUES,
        now=now,
    )
    return _newsroom(client, releases, frozenset(w.parent_id for w in withdrawals if w.parent_id is not None))


def _newsroom(client: Client, releases: list[Published], withdrawn: frozenset[int] = frozenset()) -> ClientNewsroom:
    return ClientNewsroom(
        client.slug, client.name, client.postal_address, client.disclosure, client.newsroom_noindex, releases, withdrawn
    )


def may_see(session: Session, release: Release, now: datetime, *, recipient_of: int | None = None) -> bool:
    """True when the release's page and kit may be shown: it went out and its embargo has
    lifted (and that of the release it answers), or ``recipient_of`` (the release of the
    caller's kit token) is this release. A follow-up only ever answers to ``recipient_of``."""
    if ReleaseStatus(release.status) not in NEWSROOM_STATUSES:
        return False
    if recipient_of == release.id:
        return True
    if release.kind is not None and release.kind not in PUBLIC_KINDS:
        return False
    if not embargo_lifted(release, now):
        return False
    parent = session.get(Release, release.parent_id) if release.parent_id is not None else None
    return parent is None or embargo_lifted(parent, now)


class PageRenderer:
    """Renders newsroom pages; compiled bodies are kept per release version (a few)."""

    def __init__(self, renderer: Renderer, settings: Settings, *, keep: int = 32) -> None:
        self.renderer = renderer
        self.settings = settings
        self.keep = keep
        self._compiled: OrderedDict[tuple[int, datetime], CompiledVariant] = OrderedDict()

    def page(
        self,
        session: Session,
        client_slug: str,
        release_id: int,
        *,
        now: datetime,
        kit_token: str | None = None,
        recipient_of: int | None = None,
    ) -> NewsroomPage | None:
        """The page of release ``release_id`` of client ``client_slug``, or None when it
        may not be shown (no such client or release, another client's, not out, or
        embargoed and ``recipient_of`` is not this release). ``kit_token``: the reader's,
        carried into the page's kit links. Raises TemplateError."""
        client = release_store.find_client(session, client_slug)
        release = session.get(Release, release_id)
        if client is None or release is None or release.client_id != client.id:
            return None
        if not may_see(session, release, now, recipient_of=recipient_of):
            return None
        specs = variant_specs(session, release_id, self.settings)
        if not specs:
            return None
        spec = specs[0][2]
        compiled = self._variant(release, spec)
        lifted = embargo_lifted(release, now)
        token = None if lifted else kit_token
        links = asset_links(spec, token, None)
        site = (spec.site_url or "").rstrip("/")
        for link in links:
            # the page links its own site by path (CSP img-src 'self', any host name it is reached by)
            link["url"] = str(link["url"]).removeprefix(site)
            link["src"] = str(link["src"]).removeprefix(site) + (f"?t={token}" if token is not None else "")
        body, about = compiled.page_html(NOBODY, assets=links)
        embargo = release_embargo(release)
        shown = embargo_text(embargo.at, None, embargo.zone).full if embargo is not None and not lifted else None
        newsroom = _newsroom(client, [])
        answers = tuple(linked_releases(session, [release.id], kinds=PUBLIC_KINDS, statuses=_STATUS_VALUES, now=now))
        withdrawals = [a for a in answers if a.kind == ReleaseKind.WITHDRAWAL.value]
        withdrawal = withdrawals[-1] if withdrawals else None
        note = self._note(session, withdrawal.id) if withdrawal is not None else None
        return NewsroomPage(
            client=newsroom,
            release_id=release.id,
            title=release.title,
            dateline=spec.dateline,
            body=body,
            about=about,
            speakers=spec.speakers,
            questions=spec.questions,
            booking_contact=spec.booking_contact,
            assets=links,
            embargo=shown,
            noindex=newsroom.noindex or not lifted,
            answers=answers,
            withdrawal=withdrawal,
            withdrawal_note=note,
            kind=release.kind,
            parent=self._parent(session, release),
        )

    def _note(self, session: Session, release_id: int) -> Markup | None:
        """A withdrawal's body as its page shows it (its note)."""
        release = session.get(Release, release_id)
        specs = variant_specs(session, release_id, self.settings)
        if release is None or not specs:
            return None
        return self._variant(release, specs[0][2]).page_html(NOBODY)[0]

    @staticmethod
    def _parent(session: Session, release: Release) -> Published | None:
        """The release a correction or withdrawal answers, when it went out (linked)."""
        if release.parent_id is None or release.kind not in PUBLIC_KINDS:
            return None
        parent = session.get(Release, release.parent_id)
        if parent is None or ReleaseStatus(parent.status) not in NEWSROOM_STATUSES:
            return None
        at = parent.send_at or parent.updated_at
        return Published(parent.id, parent.title, (parent.extra or {}).get("dateline"), at, parent.embargo_at)

    def _variant(self, release: Release, spec: Any) -> CompiledVariant:
        key = (release.id, release.updated_at)
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self.renderer.compile_here(spec)
            self._compiled[key] = compiled
            while len(self._compiled) > self.keep:
                self._compiled.popitem(last=False)
        else:
            self._compiled.move_to_end(key)
        return compiled


def asset_visible(
    session: Session,
    client_slug: str,
    release_id: int,
    asset_id: int,
    *,
    now: datetime,
    release_token_of: int | None,
    recipient_of: int | None,
) -> tuple[str, str, str, str] | None:
    """(storage key, content type, file name, kind) of an asset that may be fetched from
    the newsroom: the release is public, or ``recipient_of`` is it (a recipient's token),
    or ``release_token_of`` is it (the release's own token: messages and proofs show
    the kit's images with it, in any state). None otherwise."""
    client = release_store.find_client(session, client_slug)
    release = session.get(Release, release_id)
    if client is None or release is None or release.client_id != client.id:
        return None
    if release_token_of != release.id and not may_see(session, release, now, recipient_of=recipient_of):
        return None
    try:
        asset = asset_store.get_asset(session, release_id, asset_id)
    except LookupError:
        return None
    return asset.storage_key, asset.content_type, asset.filename, asset.kind
