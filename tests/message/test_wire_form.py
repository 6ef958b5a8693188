"""The renderer vouches for the SMTP wire form of its messages (issue 20): every line ends
CRLF (:class:`CrlfReady`), and no line starts with ``.`` (:class:`WireReady`) exactly when
that is so, so that the sending process may skip ``dot_stuff``'s passes and still send
the payload it would have built from plain bytes."""

from __future__ import annotations

import pickle
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from mailer.domain.errors import MailerError
from mailer.message import Renderer
from mailer.message.exchange import pack_data, unpack_data
from mailer.message.qp import QPLines, qp
from mailer.message.wire import CrlfReady, KnownDots, WireReady, crlf_only, line_dots
from mailer.smtp.client import dot_stuff
from tests.message.test_render_equivalence import TEMPLATES, jobs, specs


def _dotted(data: bytes) -> bool:
    return data.startswith(b".") or b"\r\n." in data


def test_every_rendered_message_is_in_crlf_form_and_says_whether_it_has_dotted_lines() -> None:
    """The shipped templates, the demo release and hostile authors' specs (dots at line
    starts, '=', CRLF and long lines in values): each message is CrlfReady, WireReady
    exactly when no line starts with '.', and dot_stuff gives the payload of the plain bytes."""
    renderer = Renderer(TEMPLATES)
    kinds = set()
    for case, spec in specs().items():
        variant = renderer.compile(spec)
        for job in jobs(case):
            try:
                data = variant.run(job).data
            except MailerError:
                continue
            assert data is not None
            assert isinstance(data, CrlfReady), case
            assert crlf_only(data) and data.endswith(b"\r\n"), case
            assert (type(data) is WireReady) == (not _dotted(data)), case
            if type(data) is KnownDots:
                assert data.dots == line_dots(bytes(data)), case
                packed = pack_data(data)
                assert type(unpack_data(packed)) is KnownDots and unpack_data(packed).dots == data.dots  # type: ignore[attr-defined]
            assert dot_stuff(data) == dot_stuff(bytes(data)), case
            kinds.add(type(data))
    assert kinds == {KnownDots, WireReady}  # both kinds are exercised


def test_the_wire_kinds_cross_the_render_process_exchange() -> None:
    """Pickled (as the render process answers), the bytes keep their kind (and a KnownDots its offsets)."""
    for kind in (CrlfReady, WireReady):
        assert type(pickle.loads(pickle.dumps(kind(b"a\r\n")))) is kind
    dotted = pickle.loads(pickle.dumps(KnownDots(b".a\r\n.b\r\n", (0, 4))))
    assert type(dotted) is KnownDots and dotted.dots == (0, 4) and dotted == b".a\r\n.b\r\n"


_CRLF_TEXT = st.lists(st.sampled_from([".", "..", "a", " ", "\r\n", "\r\n.", "\r\n..", "é"]), max_size=50).map(
    lambda parts: ("".join(parts) + "\r\n").encode()
)


@settings(max_examples=400, deadline=None)
@given(_CRLF_TEXT)
def test_known_dots_stuff_as_a_scan_would(data: bytes) -> None:
    """Any CRLF text (dots at line starts, doubled, first and last): the listed offsets are every dotted line, and the payload built from them by slicing is the one the full scan builds."""
    dots = line_dots(data)
    assert [i for i in range(len(data)) if data[i : i + 1] == b"." and (i == 0 or data[i - 2 : i] == b"\r\n")] == list(
        dots
    )
    assert dot_stuff(KnownDots(data, dots)) == dot_stuff(data)


_TEXT = st.lists(
    st.one_of(
        st.sampled_from([".", "..", " .", "=", "\n", "\r", "\r\n", "\t", " ", "é", "x" * 70]), st.text(max_size=90)
    ),
    max_size=60,
).map("".join)


@settings(max_examples=400, deadline=None)
@given(_TEXT)
def test_quoted_printable_knows_its_dotted_lines(text: str) -> None:
    """Any text, encoded afresh and from the line cache: qp's bytes, every line ending
    CRLF, and 'clean' exactly when no output line (soft-broken ones too) starts with '.'."""
    cache = QPLines()
    for _ in range(2):
        try:
            data, clean = cache.encode_wire(text)
        except UnicodeEncodeError:
            return  # a lone surrogate: qp raises the same
        assert data == qp(text)
        assert crlf_only(data)
        assert clean == (not _dotted(data))


def test_dot_stuff_of_crlf_ready_data() -> None:
    """CrlfReady data skips the line-ending passes but still gets its dots doubled."""
    message = b".a\r\nb\r\n.\r\n..c\r\n"
    assert dot_stuff(CrlfReady(message)) == dot_stuff(message) == b"..a\r\nb\r\n..\r\n...c\r\n.\r\n"


def test_a_render_job_travels_whole() -> None:
    """Every field of a job and of its recipient (each set apart from its default) comes
    back from the flat tuple the render process receives: a field added later and not
    packed fails here."""
    from dataclasses import fields
    from datetime import UTC, datetime

    from mailer.message import Recipient, RenderJob
    from mailer.message.exchange import pack_job, unpack_job

    def distinct(cls: type, prefix: str) -> dict[str, object]:
        values: dict[str, object] = {}
        for f in fields(cls):
            if f.name == "recipient":
                values[f.name] = Recipient(**distinct(Recipient, "r"))  # type: ignore[arg-type]
            elif f.name == "attributes":
                values[f.name] = {"beat": "science"}
            elif f.name == "date":
                values[f.name] = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
            elif f.name == "parts":
                values[f.name] = True
            else:
                values[f.name] = f"{prefix}-{f.name}"
        return values

    job = RenderJob(**distinct(RenderJob, "j"))  # type: ignore[arg-type]
    assert pickle.loads(pickle.dumps(unpack_job(pack_job(job)))) == job
    assert len(pack_job(job)) == len(fields(RenderJob)) - 1 + len(fields(Recipient))


def test_a_message_comes_back_from_the_render_process_with_its_kind() -> None:
    """Plain bytes and a letter cross the exchange (a bytes subclass would pickle through
    Python-level __reduce__, ~40 µs a message); the sending process gets the kind back."""
    from mailer.message.exchange import pack_data, unpack_data

    for data in (b"a\r\n", CrlfReady(b".a\r\n"), WireReady(b"a\r\n")):
        packed = pack_data(data)
        assert type(packed[1]) is bytes
        back = unpack_data(pickle.loads(pickle.dumps(packed)))
        assert type(back) is type(data) and back == data


def test_a_signed_message_keeps_its_wire_kind(dkim_keys: tuple[Path, bytes]) -> None:
    """The render process's DKIM signature (a CRLF-folded header) keeps a WireReady, KnownDots (its offsets moved) or CrlfReady message of its kind, so the sending process still skips dot_stuff's passes."""
    from mailer.message.child import _signed
    from tests.support.dkim import DOMAIN, SELECTOR

    key = (str(dkim_keys[0]), SELECTOR, DOMAIN)
    for kind in (WireReady, CrlfReady):
        message = kind(
            b"From: a@acme.example.com\r\nSubject: x\r\n\r\n.b\r\n"
            if kind is CrlfReady
            else b"From: a@acme.example.com\r\nSubject: x\r\n\r\nb\r\n"
        )
        signed = _signed(message, key)
        assert type(signed) is kind
        assert signed.startswith(b"DKIM-Signature:") and signed.endswith(message)
        assert dot_stuff(signed) == dot_stuff(bytes(signed))
    body = b"From: a@acme.example.com\r\nSubject: x\r\n\r\n.b\r\nc\r\n..d\r\n"
    signed = _signed(KnownDots(body, line_dots(body)), key)
    assert type(signed) is KnownDots
    assert signed.dots == line_dots(bytes(signed))  # moved past the header
    assert dot_stuff(signed) == dot_stuff(bytes(signed))
    plain = b"From: a@acme.example.com\nSubject: x\n\nb\n"
    assert type(_signed(plain, key)) is bytes  # nothing vouched for: checked as before


def test_a_key_replaced_in_place_signs_from_the_next_message(tmp_path: Path, dkim_keys: tuple[Path, bytes]) -> None:
    """The render process keeps a signer per key file, but reads the file again once it changed: the next message carries the new key's signature (it verifies only against the new record)."""
    import os
    import shutil

    import dkim as dkimpy
    from dkim import dknewkey

    from mailer.message.child import _signed
    from tests.support.dkim import DOMAIN, SELECTOR, stub_dns

    key_file = tmp_path / "rotating.pem"
    shutil.copy(dkim_keys[0], key_file)
    message = WireReady(b"From: a@acme.example.com\r\nSubject: x\r\n\r\nb\r\n")
    key = (str(key_file), SELECTOR, DOMAIN)
    assert dkimpy.verify(bytes(_signed(message, key)), dnsfunc=stub_dns(dkim_keys[1]))
    dknewkey.GenRSAKeys(str(key_file), verbose=False)  # a new key at the same path
    dknewkey.ExtractRSADnsPublicKey(str(key_file), str(tmp_path / "new.txt"), verbose=False)
    os.utime(key_file, ns=(1, 1))  # a different mtime even within the clock's granularity
    signed = bytes(_signed(message, key))
    assert dkimpy.verify(signed, dnsfunc=stub_dns((tmp_path / "new.txt").read_bytes()))
    assert not dkimpy.verify(signed, dnsfunc=stub_dns(dkim_keys[1]))
