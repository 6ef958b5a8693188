"""Signed delivery tokens: unsubscribe links and VERP return paths."""

from __future__ import annotations

import logging
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from mailer.config import MIN_SECRET_BYTES, PathSettings, Settings
from mailer.domain.errors import ConfigError
from mailer.message.tokens import SECRET_FILE, Tokens, signing_secret


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


# --- the signing key: none built in, a generated one in the data folder --------------

RETIRED = "change-me-insecure-development-key"


def _unconfigured(tmp_path: Path) -> Settings:
    """Settings with no secret_key (as a fresh install) and the data folder in tmp_path."""
    return Settings.model_construct(secret_key=None, old_secret_keys=[], paths=PathSettings(data_dir=tmp_path / "data"))


def test_without_a_key_one_is_generated_once_in_the_data_folder(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """No secret_key: a random 0600 key file appears in paths.data_dir, is announced once and reused."""
    settings = _unconfigured(tmp_path)
    with caplog.at_level(logging.WARNING, logger="mailer.message.tokens"):
        first = signing_secret(settings)
        again = signing_secret(settings)
    key_file = tmp_path / "data" / SECRET_FILE
    assert first == again == key_file.read_text().strip()
    assert len(first.encode()) >= MIN_SECRET_BYTES and first != RETIRED
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    announced = [r for r in caplog.records if "generated" in r.getMessage()]
    assert len(announced) == 1 and str(key_file) in announced[0].getMessage()
    assert signing_secret(_unconfigured(tmp_path / "other")) != first  # random, not built in


def test_tokens_of_the_retired_default_key_no_longer_verify(tmp_path: Path) -> None:
    """An unsubscribe link or VERP address signed with the old built-in key is refused now."""
    forged = Tokens(RETIRED)
    tokens = Tokens.from_settings(_unconfigured(tmp_path))
    assert tokens.read_unsubscribe(forged.unsubscribe(42)) is None
    assert tokens.read_verp(forged.verp(42)) is None
    assert tokens.read_unsubscribe(tokens.unsubscribe(42)) == 42


def test_configured_key_is_used_and_no_file_is_written(tmp_path: Path) -> None:
    """A configured secret_key signs; the data folder stays untouched."""
    key = "k" * MIN_SECRET_BYTES
    settings = Settings.model_construct(
        secret_key=SecretStr(key), old_secret_keys=[], paths=PathSettings(data_dir=tmp_path)
    )
    assert signing_secret(settings) == key
    assert not (tmp_path / SECRET_FILE).exists()


def test_a_short_key_file_is_one_clear_error(tmp_path: Path) -> None:
    """A key file holding a short key is refused with a ConfigError naming the file, not used."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / SECRET_FILE).write_text("short\n")
    with pytest.raises(ConfigError) as info:
        signing_secret(_unconfigured(tmp_path))
    assert SECRET_FILE in str(info.value) and "32 bytes" in str(info.value)


@pytest.mark.slow
def test_concurrent_first_use_agrees_on_one_key(tmp_path: Path) -> None:
    """Processes starting together without a key all end up with the same generated key."""
    code = (
        "import sys; from pathlib import Path; from mailer.config import Settings, PathSettings;"
        "from mailer.message.tokens import signing_secret;"
        "s = Settings.model_construct(secret_key=None, old_secret_keys=[], paths=PathSettings(data_dir=Path(sys.argv[1])));"
        "print(signing_secret(s))"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "data")], stdout=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    keys = {proc.communicate(timeout=60)[0].strip() for proc in procs}
    assert keys == {(tmp_path / "data" / SECRET_FILE).read_text().strip()}
