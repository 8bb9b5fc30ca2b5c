"""Signing registry token requests with the user's OpenSSH ed25519 key.

Ollama's registry authenticates token requests with a signature made by
``~/.ollama/id_ed25519``; the `cryptography` package does the key parsing
and the signing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


@dataclass(frozen=True)
class SSHKey:
    """An unencrypted OpenSSH ed25519 private key."""

    private: Ed25519PrivateKey

    @property
    def authorized_key(self) -> str:
        """The base64 part of the ``ssh-ed25519 AAAA...`` public key line."""
        line = self.private.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                      serialization.PublicFormat.OpenSSH)
        return line.split()[1].decode()

    def sign(self, message: bytes) -> bytes:
        return self.private.sign(message)


def load_openssh_key(path: Path) -> SSHKey:
    """Load ``-----BEGIN OPENSSH PRIVATE KEY-----``; ValueError if unusable."""
    try:
        key = serialization.load_ssh_private_key(path.read_bytes(), password=None)
    except TypeError as exc:  # raised for keys that need a passphrase
        raise ValueError("encrypted OpenSSH keys are not supported") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("not an ed25519 key")
    return SSHKey(private=key)
