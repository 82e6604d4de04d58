"""The Encryptor: MultiFernet over derived keys, binding of account/kind/name, rotation, key rings."""

from __future__ import annotations

import base64

import pytest
from cryptography.fernet import Fernet

from app.security.crypto import (
    DecryptionFailed,
    EncryptionKeyError,
    Encryptor,
    derive_fernet_key,
    key_ring_from_settings,
)

OLD = b"old-key-material-0123456789"
NEW = b"new-key-material-9876543210"


def test_round_trip_of_text_and_json_values():
    encryptor = Encryptor([NEW])
    token = encryptor.encrypt("s3cr3t-value", account_id="acc1", name="API_TOKEN")
    assert "s3cr3t-value" not in token
    assert encryptor.decrypt(token, account_id="acc1", name="API_TOKEN") == "s3cr3t-value"
    creds = {"token": "abc", "refresh": ["x", 1]}
    token = encryptor.encrypt(creds, account_id="acc1", name="github", kind="connection")
    assert encryptor.decrypt(token, account_id="acc1", name="github", kind="connection") == creds


def test_two_encryptions_of_one_value_differ():
    encryptor = Encryptor([NEW])
    first = encryptor.encrypt("same", account_id="a", name="N")
    second = encryptor.encrypt("same", account_id="a", name="N")
    assert first != second


@pytest.mark.parametrize(
    ("account_id", "name", "kind"),
    [
        ("other-account", "API_TOKEN", "secret"),
        ("acc1", "OTHER_NAME", "secret"),
        ("acc1", "API_TOKEN", "connection"),
    ],
)
def test_a_ciphertext_moved_to_another_account_name_or_kind_is_refused(account_id, name, kind):
    encryptor = Encryptor([NEW])
    token = encryptor.encrypt("value", account_id="acc1", name="API_TOKEN")
    with pytest.raises(DecryptionFailed, match="encrypted for another account or name") as caught:
        encryptor.decrypt(token, account_id=account_id, name=name, kind=kind)
    assert caught.value.code == "decryption_failed"
    assert "value" not in caught.value.message


def test_a_token_of_an_unknown_key_or_altered_is_refused_clearly():
    token = Encryptor([OLD]).encrypt("value", account_id="a", name="N")
    with pytest.raises(DecryptionFailed, match="not in MASHPIPE_SECRET_KEYS"):
        Encryptor([NEW]).decrypt(token, account_id="a", name="N")
    altered = token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:]
    with pytest.raises(DecryptionFailed):
        Encryptor([OLD]).decrypt(altered, account_id="a", name="N")
    with pytest.raises(DecryptionFailed):
        Encryptor([OLD]).decrypt("not a token é", account_id="a", name="N")


def test_a_fernet_token_without_the_binding_is_refused():
    raw = Fernet(derive_fernet_key(NEW)).encrypt(b'"just a string"').decode()
    with pytest.raises(DecryptionFailed, match="does not hold a Mashpipe value"):
        Encryptor([NEW]).decrypt(raw, account_id="a", name="N")


def test_rotation_moves_a_value_to_the_newest_key():
    old_token = Encryptor([OLD]).encrypt("value", account_id="a", name="N")
    ring = Encryptor([NEW, OLD])
    assert ring.key_count == 2
    assert not ring.is_current(old_token)
    assert ring.decrypt(old_token, account_id="a", name="N") == "value"  # older keys still decrypt
    new_token = ring.rotate(old_token, account_id="a", name="N")
    assert ring.is_current(new_token)
    assert Encryptor([NEW]).decrypt(new_token, account_id="a", name="N") == "value"
    with pytest.raises(DecryptionFailed):
        Encryptor([OLD]).decrypt(new_token, account_id="a", name="N")


def test_rotation_checks_the_binding_first():
    token = Encryptor([OLD]).encrypt("value", account_id="a", name="N")
    with pytest.raises(DecryptionFailed):
        Encryptor([NEW, OLD]).rotate(token, account_id="b", name="N")


def test_derived_keys_are_valid_fernet_keys_and_differ_from_the_material():
    key = derive_fernet_key(NEW)
    assert len(base64.urlsafe_b64decode(key)) == 32
    assert NEW not in base64.urlsafe_b64decode(key)


def test_the_key_ring_comes_from_secret_keys_then_the_file_then_the_secret_key(make_settings, tmp_path):
    settings = make_settings(secret_keys="new-key-material-9876543210, old-key-material-0123456789")
    assert key_ring_from_settings(settings) == [NEW, OLD]
    key_file = tmp_path / "keys.txt"
    key_file.write_text("# newest first\nnew-key-material-9876543210\n\nold-key-material-0123456789\n")
    assert key_ring_from_settings(make_settings(secret_keys_file=str(key_file))) == [NEW, OLD]
    base = make_settings()
    assert key_ring_from_settings(base) == [base.secret_key.encode()]


def test_secret_key_alone_and_the_same_key_in_the_ring_read_the_same_values(make_settings):
    base = make_settings()
    token = Encryptor.from_settings(base).encrypt("v", account_id="a", name="N")
    ring = Encryptor.from_settings(
        make_settings(secret_keys=f"new-key-material-9876543210,{base.secret_key}")
    )
    assert ring.decrypt(token, account_id="a", name="N") == "v"


@pytest.mark.parametrize("keys", ["short", "changeme-but-longer,secret", "good-key-material-0123,changeme"])
def test_weak_keys_are_refused(make_settings, keys):
    with pytest.raises(EncryptionKeyError, match="at least 16 characters"):
        key_ring_from_settings(make_settings(secret_keys=keys))


def test_a_missing_or_empty_key_file_is_a_clear_error(make_settings, tmp_path):
    with pytest.raises(EncryptionKeyError, match="cannot read the key file"):
        key_ring_from_settings(make_settings(secret_keys_file=str(tmp_path / "missing")))
    empty = tmp_path / "empty"
    empty.write_text("# nothing\n")
    with pytest.raises(EncryptionKeyError, match="holds no key"):
        key_ring_from_settings(make_settings(secret_keys_file=str(empty)))


def test_an_empty_ring_and_odd_kinds_are_refused():
    with pytest.raises(EncryptionKeyError):
        Encryptor([])
    with pytest.raises(ValueError, match="lowercase word"):
        Encryptor([NEW]).encrypt("v", account_id="a", name="N", kind="Secret!")
