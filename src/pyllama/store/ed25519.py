"""Ed25519 signing (RFC 8032) and OpenSSH private-key loading, in pure Python.

Ollama's registry authenticates token requests with a signature made by the
user's ``~/.ollama/id_ed25519`` key.  Signing one short challenge per token
is all we need, so a small integer-arithmetic implementation avoids a
dependency on a crypto library.  It is not constant-time; it only ever signs
public challenge strings.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = (-121665 * pow(121666, _P - 2, _P)) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)

Point = tuple[int, int, int, int]  # extended coordinates (X, Y, Z, T)


def _recover_x(y: int, sign: int) -> int:
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P) % _P
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P:
        x = x * _SQRT_M1 % _P
    if (x * x - x2) % _P:
        raise ValueError("not a curve point")
    if x & 1 != sign:
        x = _P - x
    return x


_BY = 4 * pow(5, _P - 2, _P) % _P
_BX = _recover_x(_BY, 0)
_BASE: Point = (_BX, _BY, 1, _BX * _BY % _P)
_IDENTITY: Point = (0, 1, 1, 0)


def _add(a: Point, b: Point) -> Point:
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    e1 = (y1 - x1) * (y2 - x2) % _P
    e2 = (y1 + x1) * (y2 + x2) % _P
    c = 2 * _D * t1 * t2 % _P
    d = 2 * z1 * z2 % _P
    e, f, g, h = e2 - e1, d - c, d + c, e2 + e1
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _mul(scalar: int, point: Point) -> Point:
    result = _IDENTITY
    addend = point
    while scalar:
        if scalar & 1:
            result = _add(result, addend)
        addend = _add(addend, addend)
        scalar >>= 1
    return result


def _encode(point: Point) -> bytes:
    x, y, z, _ = point
    zinv = pow(z, _P - 2, _P)
    x, y = x * zinv % _P, y * zinv % _P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def _expand(seed: bytes) -> tuple[int, bytes]:
    digest = hashlib.sha512(seed).digest()
    scalar = int.from_bytes(digest[:32], "little")
    scalar &= (1 << 254) - 8
    scalar |= 1 << 254
    return scalar, digest[32:]


def public_key(seed: bytes) -> bytes:
    """The 32-byte public key of a 32-byte secret seed."""
    scalar, _ = _expand(seed)
    return _encode(_mul(scalar, _BASE))


def sign(seed: bytes, message: bytes) -> bytes:
    """A 64-byte Ed25519 signature of ``message``."""
    if len(seed) != 32:
        raise ValueError("an Ed25519 seed is 32 bytes")
    scalar, prefix = _expand(seed)
    public = _encode(_mul(scalar, _BASE))
    r = int.from_bytes(hashlib.sha512(prefix + message).digest(), "little") % _L
    encoded_r = _encode(_mul(r, _BASE))
    k = int.from_bytes(hashlib.sha512(encoded_r + public + message).digest(), "little") % _L
    s = (r + k * scalar) % _L
    return encoded_r + s.to_bytes(32, "little")


@dataclass(frozen=True)
class SSHKey:
    """An unencrypted OpenSSH ed25519 private key."""

    seed: bytes
    public: bytes

    @property
    def authorized_key(self) -> str:
        """The base64 part of the ``ssh-ed25519 AAAA...`` public key line."""
        blob = _ssh_string(b"ssh-ed25519") + _ssh_string(self.public)
        return base64.b64encode(blob).decode()

    def sign(self, message: bytes) -> bytes:
        return sign(self.seed, message)


def _ssh_string(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError("truncated OpenSSH key")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def uint32(self) -> int:
        return int.from_bytes(self.take(4), "big")

    def string(self) -> bytes:
        return self.take(self.uint32())


def load_openssh_key(path: Path) -> SSHKey:
    """Parse ``-----BEGIN OPENSSH PRIVATE KEY-----``; raise ValueError if unusable."""
    text = path.read_text()
    lines = [line.strip() for line in text.strip().splitlines()]
    if not lines or lines[0] != "-----BEGIN OPENSSH PRIVATE KEY-----" or lines[-1] != "-----END OPENSSH PRIVATE KEY-----":
        raise ValueError("not an OpenSSH private key")
    data = base64.b64decode("".join(lines[1:-1]))
    magic = b"openssh-key-v1\x00"
    if not data.startswith(magic):
        raise ValueError("not an OpenSSH private key")
    reader = _Reader(data[len(magic) :])
    cipher, kdf = reader.string(), reader.string()
    reader.string()  # kdf options
    if cipher != b"none" or kdf != b"none":
        raise ValueError("encrypted OpenSSH keys are not supported")
    if reader.uint32() != 1:
        raise ValueError("expected exactly one key")
    reader.string()  # public key blob
    private = _Reader(reader.string())
    if private.uint32() != private.uint32():
        raise ValueError("corrupt OpenSSH key (check bytes differ)")
    if private.string() != b"ssh-ed25519":
        raise ValueError("not an ed25519 key")
    public = private.string()
    secret = private.string()
    if len(public) != 32 or len(secret) != 64 or secret[32:] != public:
        raise ValueError("corrupt ed25519 key")
    return SSHKey(seed=secret[:32], public=public)
