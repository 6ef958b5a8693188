"""Signed delivery tokens: unsubscribe links and VERP return paths."""

from __future__ import annotations

import pytest

from mailer.tokens import Tokens


def test_unsubscribe_token_round_trips_without_the_address() -> None:
    """A token reads back to its delivery id and contains no address."""
    tokens = Tokens("k1")
    tok = tokens.unsubscribe(42)
    assert tokens.read_unsubscribe(tok) == 42
    assert "@" not in tok


@pytest.mark.parametrize("bad", ["", "abc", "NDI.xxxx", "42", "null.sig", "a" * 500])
def test_tampered_or_malformed_unsubscribe_tokens_read_as_none(bad: str) -> None:
    """Anything that is not a genuine token gives None, never an exception."""
    assert Tokens("k1").read_unsubscribe(bad) is None


def test_tampering_one_character_breaks_the_token() -> None:
    """Changing the payload invalidates the signature."""
    tokens = Tokens("k1")
    tok = tokens.unsubscribe(42)
    forged = Tokens("k1").unsubscribe(43).split(".")[0] + "." + tok.split(".")[1]
    assert tokens.read_unsubscribe(forged) is None


def test_key_rotation_old_tokens_still_verify_and_rotated_out_keys_do_not() -> None:
    """After rotation, tokens from the old key verify; once the old key is dropped they do not."""
    old = Tokens("old").unsubscribe(7)
    rotated = Tokens("new", ["old"])
    assert rotated.read_unsubscribe(old) == 7
    assert rotated.read_unsubscribe(rotated.unsubscribe(7)) == 7
    assert Tokens("new").read_unsubscribe(old) is None
    assert Tokens("other").read_unsubscribe(rotated.unsubscribe(7)) is None


def test_verp_token_is_lowercase_and_survives_case_folding() -> None:
    """A VERP token has only lower-case hex and digits, and reads back even upper-cased."""
    tokens = Tokens("k1")
    tok = tokens.verp(123456)
    assert tok == tok.lower()
    assert tokens.read_verp(tok.upper()) == 123456
    assert tokens.verp_address(5, "bounces.example.com").startswith("bounces+5-")


def test_forged_verp_tokens_are_refused() -> None:
    """A made-up, foreign-key or other-purpose token reads as None."""
    tokens = Tokens("k1", ["k0"])
    assert tokens.read_verp("5-0000000000000000") is None
    assert tokens.read_verp(Tokens("evil").verp(5)) is None
    assert tokens.read_verp(Tokens("k0").verp(5)) == 5
    assert tokens.read_verp(tokens.verp(5, purpose="unsubscribe")) is None
    assert tokens.read_verp("not a token") is None


def test_fast_unsubscribe_tokens_are_exactly_itsdangerous_tokens() -> None:
    """The per-message signing shortcut gives the very bytes itsdangerous would (rotation included)."""
    from itsdangerous import URLSafeSerializer

    for keys in (["k1"], ["new", "old"]):
        tokens = Tokens(keys[0], keys[1:])
        reference = URLSafeSerializer(list(reversed(keys)), salt="mailer.unsubscribe")
        for delivery_id in [1, 9, 10, 99, 12345, 2**31 - 1, 9_999_999_999, 10**10, 10**12]:
            assert tokens.unsubscribe(delivery_id) == reference.dumps(delivery_id)
            assert tokens.read_unsubscribe(tokens.unsubscribe(delivery_id)) == delivery_id
