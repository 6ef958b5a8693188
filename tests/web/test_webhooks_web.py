"""/admin/webhooks: an admin registers an endpoint (secret shown once), disables it and
reads the delivery log; other roles are refused."""

from __future__ import annotations

from fastapi import FastAPI

from mailer.domain.states import Role
from mailer.runtime import Runtime
from mailer.store import webhooks as webhook_store
from mailer.store.db import transaction
from tests.support.constants import FIXED_NOW
from tests.support.web import csrf, sign_in


def test_admin_registers_disables_and_reads_the_log(app: FastAPI, rt: Runtime) -> None:
    """Add with two event types, see the secret and the endpoint, an event in the log, then disable."""
    admin = sign_in(app, Role.ADMIN)
    admin.get("/admin/webhooks")
    bad = admin.post(
        "/admin/webhooks", data={"url": "ftp://x.example.com", "events": ["delivery.sent"], "csrftoken": csrf(admin)}
    )
    assert bad.status_code == 422 and "https://" in bad.context["error"]  # type: ignore[attr-defined]
    added = admin.post(
        "/admin/webhooks",
        data={
            "url": "https://hooks.example.com/in",
            "events": ["delivery.sent", "release.*"],
            "csrftoken": csrf(admin),
        },
    )
    assert added.status_code == 200
    secret = added.context["secret"]  # type: ignore[attr-defined]
    assert secret.startswith("whsec_") and secret in added.text
    [endpoint] = added.context["endpoints"]  # type: ignore[attr-defined]
    assert endpoint.events == "delivery.sent release.*"
    with transaction(rt.sessions) as session:
        webhook_store.emit(session, "release.sent", {"release_id": 1}, now=FIXED_NOW)
    page = admin.get("/admin/webhooks")
    assert [r.event for r in page.context["log"]] == ["release.sent"]  # type: ignore[attr-defined]
    assert secret not in page.text
    done = admin.post(f"/admin/webhooks/{endpoint.id}/disable", data={"csrftoken": csrf(admin)})
    assert done.status_code == 303
    [after] = admin.get("/admin/webhooks").context["endpoints"]  # type: ignore[attr-defined]
    assert after.active is False


def test_non_admins_are_refused(app: FastAPI) -> None:
    """A publicist may neither see nor add webhooks."""
    publicist = sign_in(app, Role.PUBLICIST)
    assert publicist.get("/admin/webhooks").status_code == 403
    refused = publicist.post(
        "/admin/webhooks", data={"url": "https://h.example.com", "events": ["*"], "csrftoken": csrf(publicist)}
    )
    assert refused.status_code == 403
