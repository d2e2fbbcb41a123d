"""Secrets at rest: AES-256-GCM with the service key (install secrets, signing secrets)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ENVELOPE_ALGORITHM = "AES-256-GCM"
ENVELOPE_VERSION = 1
_NONCE_BYTES = 12


class SecretsUnreadable(Exception):
    """Stored secrets could not be decrypted (wrong key or corrupted data)."""


class SecretBox:
    """Encrypts an install's secrets as one blob: version byte, nonce, ciphertext+tag."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("secret key must be 32 bytes")
        self._aead = AESGCM(hashlib.sha256(b"extsched:secrets:v1" + key).digest())

    def encrypt(self, secrets: dict[str, str], *, aad: bytes) -> bytes:
        return self.encrypt_json(secrets, aad=aad)

    def decrypt(self, blob: bytes, *, aad: bytes) -> dict[str, str]:
        data = self.decrypt_json(blob, aad=aad)
        if not isinstance(data, dict):
            raise SecretsUnreadable("install secrets cannot be decrypted")
        return {str(k): str(v) for k, v in data.items()}

    def encrypt_json(self, value: Any, *, aad: bytes) -> bytes:
        """Seal any JSON value: version byte, nonce, ciphertext+tag."""
        nonce = os.urandom(_NONCE_BYTES)
        plaintext = json.dumps(value, sort_keys=True).encode()
        return bytes([ENVELOPE_VERSION]) + nonce + self._aead.encrypt(nonce, plaintext, aad)

    def decrypt_json(self, blob: bytes, *, aad: bytes) -> Any:
        """The value sealed by ``encrypt_json``; SecretsUnreadable on a wrong key, a wrong
        ``aad`` or corrupted data."""
        if len(blob) < 1 + _NONCE_BYTES or blob[0] != ENVELOPE_VERSION:
            raise SecretsUnreadable("unknown secrets format")
        nonce, ciphertext = blob[1 : 1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES :]
        try:
            return json.loads(self._aead.decrypt(nonce, ciphertext, aad))
        except (InvalidTag, ValueError) as exc:
            raise SecretsUnreadable("secrets cannot be decrypted") from exc

    def envelope(self, blob: bytes) -> dict[str, Any]:
        """The ``secret_envelope`` sent to the Runner (SPEC §6): the stored blob, base64."""
        return {
            "ciphertext_b64": base64.b64encode(blob).decode(),
            "algorithm": ENVELOPE_ALGORITHM,
            "version": ENVELOPE_VERSION,
        }


def install_aad(tenant_id: str, install_id: str) -> bytes:
    """Binds a ciphertext to its install, so a blob copied to another row will not decrypt."""
    return f"{tenant_id}:{install_id}".encode()


def signing_aad(tenant_id: str, install_id: str) -> bytes:
    """Binds an install's signing secrets to it, apart from its other secrets."""
    return f"{tenant_id}:{install_id}:signing".encode()


def opened_envelope(box: SecretBox, envelope: dict[str, Any], *, aad: bytes) -> dict[str, str]:
    """The secrets inside a ``secret_envelope`` (what ``SecretBox.envelope`` made)."""
    if envelope.get("algorithm") != ENVELOPE_ALGORITHM or envelope.get("version") != 1:
        raise SecretsUnreadable("unknown secret envelope")
    try:
        blob = base64.b64decode(str(envelope.get("ciphertext_b64", "")), validate=True)
    except ValueError as exc:
        raise SecretsUnreadable("secret envelope is not base64") from exc
    return box.decrypt(blob, aad=aad)
