"""Secrets at rest: AES-256-GCM with the service key, and per-install signing secrets."""

from __future__ import annotations

import base64
import hashlib
import hmac
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
        self._signing_root = hashlib.sha256(b"extsched:signing:v1" + key).digest()

    def encrypt(self, secrets: dict[str, str], *, aad: bytes) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        plaintext = json.dumps(secrets, sort_keys=True).encode()
        return bytes([ENVELOPE_VERSION]) + nonce + self._aead.encrypt(nonce, plaintext, aad)

    def decrypt(self, blob: bytes, *, aad: bytes) -> dict[str, str]:
        if len(blob) < 1 + _NONCE_BYTES or blob[0] != ENVELOPE_VERSION:
            raise SecretsUnreadable("unknown secrets format")
        nonce, ciphertext = blob[1 : 1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES :]
        try:
            data: Any = json.loads(self._aead.decrypt(nonce, ciphertext, aad))
        except (InvalidTag, ValueError) as exc:
            raise SecretsUnreadable("install secrets cannot be decrypted") from exc
        return {str(k): str(v) for k, v in data.items()}

    def envelope(self, blob: bytes) -> dict[str, Any]:
        """The ``secret_envelope`` sent to the Runner (SPEC §6): the stored blob, base64."""
        return {
            "ciphertext_b64": base64.b64encode(blob).decode(),
            "algorithm": ENVELOPE_ALGORITHM,
            "version": ENVELOPE_VERSION,
        }

    def signing_secret(self, install_id: str) -> bytes:
        """The install's HMAC key for ``x-extsched-signature`` (derived, never stored)."""
        return hmac.new(self._signing_root, install_id.encode(), hashlib.sha256).digest()


def install_aad(tenant_id: str, install_id: str) -> bytes:
    """Binds a ciphertext to its install, so a blob copied to another row will not decrypt."""
    return f"{tenant_id}:{install_id}".encode()
