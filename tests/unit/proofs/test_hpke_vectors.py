"""RFC 9180 appendix A.2.1 (mode_base, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
ChaCha20Poly1305) through ``proofs.hpke``: key derivation, encapsulation, the key schedule,
every listed encryption and export. The vector file names its source."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from proofs import hpke

_VECTOR = json.loads(
    (Path(__file__).parent / "vectors" / "hpke_rfc9180_a2_1_base.json").read_text("utf-8")
)


def _h(name: str) -> bytes:
    return bytes.fromhex(_VECTOR[name])


def test_vector_is_the_suite_we_implement() -> None:
    assert (_VECTOR["mode"], _VECTOR["kem_id"], _VECTOR["kdf_id"], _VECTOR["aead_id"]) == (
        hpke.MODE_BASE,
        hpke.KEM_ID,
        hpke.KDF_ID,
        hpke.AEAD_ID,
    )


def test_derive_key_pair_matches_recipient_and_ephemeral_keys() -> None:
    assert hpke.derive_key_pair(_h("ikmR")) == (_h("skRm"), _h("pkRm"))
    assert hpke.derive_key_pair(_h("ikmE")) == (_h("skEm"), _h("pkEm"))


def test_encap_and_decap_give_the_vector_shared_secret() -> None:
    shared, enc = hpke.encap(_h("pkRm"), ephemeral_private=_h("skEm"))
    assert (shared, enc) == (_h("shared_secret"), _h("enc"))
    assert hpke.decap(_h("enc"), _h("skRm")) == _h("shared_secret")


def test_key_schedule_outputs() -> None:
    schedule = hpke.key_schedule(_h("shared_secret"), _h("info"))
    assert schedule.key == _h("key")
    assert schedule.base_nonce == _h("base_nonce")
    assert schedule.exporter_secret == _h("exporter_secret")


@pytest.mark.parametrize("case", _VECTOR["encryptions"], ids=lambda c: f"seq{c['seq']}")
def test_encryption_at_sequence_number(case: dict[str, Any]) -> None:
    enc, sender = hpke.setup_base_sender(_h("pkRm"), _h("info"), ephemeral_private=_h("skEm"))
    assert enc == _h("enc")
    recipient = hpke.setup_base_recipient(enc, _h("skRm"), _h("info"))
    sender.seq = recipient.seq = case["seq"]
    pt, aad, ct = (bytes.fromhex(case[k]) for k in ("pt", "aad", "ct"))
    assert sender.seal(aad, pt) == ct
    assert recipient.open(aad, ct) == pt


def test_single_shot_open_of_the_first_vector_ciphertext() -> None:
    first = _VECTOR["encryptions"][0]
    pt, aad, ct = (bytes.fromhex(first[k]) for k in ("pt", "aad", "ct"))
    assert hpke.open_(_h("skRm"), _h("enc"), _h("info"), aad, ct) == pt


@pytest.mark.parametrize("case", _VECTOR["exports"], ids=lambda c: c["exporter_context"] or "empty")
def test_export(case: dict[str, Any]) -> None:
    ctx = hpke.setup_base_recipient(_h("enc"), _h("skRm"), _h("info"))
    exported = ctx.export(bytes.fromhex(case["exporter_context"]), case["L"])
    assert exported == bytes.fromhex(case["exported_value"])


def test_open_refuses_a_flipped_ciphertext_bit() -> None:
    first = _VECTOR["encryptions"][0]
    ct = bytearray.fromhex(first["ct"])
    ct[0] ^= 1
    with pytest.raises(hpke.HpkeError):
        hpke.open_(_h("skRm"), _h("enc"), _h("info"), bytes.fromhex(first["aad"]), bytes(ct))


def test_open_refuses_another_info() -> None:
    first = _VECTOR["encryptions"][0]
    aad, ct = bytes.fromhex(first["aad"]), bytes.fromhex(first["ct"])
    with pytest.raises(hpke.HpkeError):
        hpke.open_(_h("skRm"), _h("enc"), b"another info", aad, ct)


def test_low_order_public_key_is_refused() -> None:
    # The all-zero u-coordinate is a point of small order: X25519 with it gives all zeros,
    # which RFC 9180 section 7.1.4 requires a sender and recipient to refuse.
    with pytest.raises(hpke.HpkeError):
        hpke.seal(bytes(32), b"", b"", b"data key")


def test_seal_then_open_round_trip_with_fresh_ephemeral() -> None:
    sk, pk = hpke.derive_key_pair(b"\x07" * 32)
    enc, ct = hpke.seal(pk, b"info", b"aad", b"secret")
    enc2, _ = hpke.seal(pk, b"info", b"aad", b"secret")
    assert enc != enc2
    assert hpke.open_(sk, enc, b"info", b"aad", ct) == b"secret"
