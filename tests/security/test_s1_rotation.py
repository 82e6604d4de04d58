"""Key rotation of everything stored encrypted: secrets and connection credentials, compare-and-set."""

from __future__ import annotations

from sqlalchemy import select

from app.security.crypto import Encryptor
from app.security.rotation import ROTATORS, rotate_all
from app.storage.models_connections import ConnectionRow
from app.storage.models_secrets import Secret
from app.storage.repositories.connections import ConnectionRepo
from app.storage.repositories.encrypted import EncryptedRows

NEW = b"the-next-encryption-key-0123456789"


async def _ciphertexts(state, model) -> dict[str, tuple[str, str, str]]:
    async with state.db.session() as session:
        rows = await session.execute(select(model.id, model.account_id, model.name, model.ciphertext))
        return {row[0]: (row[1], row[2], row[3]) for row in rows}


async def test_rotation_re_encrypts_secrets_and_connections_under_the_newest_key(api, app_state):
    _, state = app_state
    for name in ("ONE", "TWO", "THREE"):
        assert (await api.put(f"/v1/secrets/{name}", json={"value": f"value-{name}"})).status_code == 201
    account_id = state.bootstrap.account_id
    payload = {"kind": "bearer", "fields": {"token": "sk-abc"}}
    async with state.db.session() as session:  # as the connection store writes it
        await ConnectionRepo(session).add(
            account_id,
            "openai-main",
            connector="openai",
            kind="bearer",
            status="active",
            ciphertext=state.encryptor.encrypt(
                payload, account_id=account_id, name="openai-main", kind="connection"
            ),
        )
        await session.commit()
    old = state.settings.secret_key.encode()
    ring = Encryptor([NEW, old])

    counts = {count.kind: count for count in await rotate_all(state.db, ring)}
    assert (counts["secrets"].total, counts["secrets"].rotated, counts["secrets"].current) == (3, 3, 0)
    assert (counts["connections"].total, counts["connections"].rotated) == (1, 1)
    again = {count.kind: count for count in await rotate_all(state.db, ring)}
    assert (again["secrets"].rotated, again["secrets"].current) == (0, 3)  # idempotent

    newest_only = Encryptor([NEW])
    for account_id, name, token in (await _ciphertexts(state, Secret)).values():
        assert newest_only.decrypt(token, account_id=account_id, name=name) == f"value-{name}"
    for account_id, name, token in (await _ciphertexts(state, ConnectionRow)).values():
        payload = newest_only.decrypt(token, account_id=account_id, name=name, kind="connection")
        assert payload["fields"]["token"] == "sk-abc"


async def test_a_value_written_meanwhile_is_not_overwritten(api, app_state):
    _, state = app_state
    await api.put("/v1/secrets/ONE", json={"value": "first"})
    ((row_id, (account_id, _, old)),) = (await _ciphertexts(state, Secret)).items()
    await api.put("/v1/secrets/ONE", json={"value": "second"})  # replaced after the rotation read it
    rotated = Encryptor([NEW, state.settings.secret_key.encode()]).rotate(
        old, account_id=account_id, name="ONE"
    )
    async with state.db.session() as session:
        assert await EncryptedRows(session, Secret).swap(row_id, old, rotated) is False
        await session.commit()
    ((_, _, current),) = (await _ciphertexts(state, Secret)).values()
    assert state.encryptor.decrypt(current, account_id=account_id, name="ONE") == "second"


def test_every_encrypted_table_has_a_rotator():
    from app.storage.base import Base

    encrypted = {table.name for table in Base.metadata.sorted_tables if "ciphertext" in table.columns}
    assert encrypted == {"secrets", "connections"}, (
        f"tables with ciphertexts: {sorted(encrypted)}; give each a rotator in app.security.rotation.ROTATORS"
    )
    assert len(ROTATORS) == len(encrypted)
