"""Small press-kit files made on the spot (a PNG of any size, a one-page PDF), and the
acme release (tests/support/releases.py) sent with a photo and a fact sheet."""

from __future__ import annotations

import email
import email.policy
import struct
import zlib
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from mailer.engine.dispatch import Dispatcher
from mailer.message import Renderer
from mailer.releases import workflow
from mailer.releases.approval import approve_release
from mailer.releases.assets import attach_asset
from mailer.releases.storage import storage_for
from mailer.runtime import Runtime
from mailer.store.db import transaction
from tests.support.fake_transport import FakeTransport
from tests.support.releases import create, seed, submit


def png(width: int = 4, height: int = 3) -> bytes:
    """A valid RGB PNG of ``width`` x ``height`` pixels (a grey gradient)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + b"".join(bytes((x % 256, y % 256, 128)) for x in range(width)) for y in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def pdf(text: str = "Fact sheet") -> bytes:
    """A one-page PDF showing ``text`` (ASCII)."""
    stream = f"BT /F1 18 Tf 72 720 Td ({text}) Tj ET".encode("ascii")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return out


@dataclass
class Sent:
    release_id: int
    messages: dict[str, EmailMessage]


def text_of(msg: EmailMessage) -> str:
    part = msg.get_body(("plain",))
    assert isinstance(part, EmailMessage)
    return str(part.get_content())


def html_of(msg: EmailMessage) -> str:
    part = msg.get_body(("html",))
    assert isinstance(part, EmailMessage)
    return str(part.get_content())


async def send_kit_release(rt: Runtime, renderer: Renderer, tmp_path: Path, *, text: str | None = None) -> Sent:
    """The acme release (or ``text``) with a photo and a fact sheet, approved, sent now to Ann and Bob."""
    seed(rt, tmp_path)
    rid = create(rt, renderer) if text is None else create(rt, renderer, text)
    with transaction(rt.sessions) as session:
        storage = storage_for(rt.settings)
        for data, name, caption in ((png(40, 30), "photo.png", "The harbour"), (pdf(), "facts.pdf", "Fact sheet")):
            attach_asset(
                session, rid, data, name, caption=caption, alt=None, actor="pat",
                storage=storage, settings=rt.settings, now=rt.clock(),
            )  # fmt: skip
        workflow.schedule(session, rid, at=rt.clock(), actor="pat", now=rt.clock())
    submit(rt, renderer, rid)
    with transaction(rt.sessions) as session:
        approve_release(session, rid, approver="quinn", renderer=renderer, settings=rt.settings, now=rt.clock())
    fake = FakeTransport()
    await Dispatcher(rt, fake).run_once()
    messages = {}
    for sent in fake.sent:
        msg = email.message_from_bytes(sent.data, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        messages[sent.recipient] = msg
    return Sent(rid, messages)
