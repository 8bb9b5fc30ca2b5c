"""A registry token service for tests: what a real registry's auth server does.

The CNCF distribution registry, configured with ``auth: token``, answers an
unauthenticated request with ``401`` and ``WWW-Authenticate: Bearer
realm=...,service=...,scope=...``, and accepts only JWTs signed by a key whose
certificate is in its ``rootcertbundle``. This service issues such tokens at
``/token``. Like Ollama's registry it authenticates the token request by an
ed25519 signature in the ``Authorization`` header (``<public key>:<signature>``
over ``GET,<token URL>,<base64 of the sha256 hex of the empty body>``):
a request signed by an authorised key gets every action it asks for, an
unsigned one only ``pull``, and a bad signature a 401.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.x509.oid import NameOID

SERVICE = "pyllama-test-registry"
ISSUER = "pyllama-test-issuer"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@dataclass
class TokenRequest:
    """One request the service answered: its URL, the signer (or None) and what it granted."""

    url: str
    signer: str | None
    scope: str
    granted: list[dict[str, object]] = field(default_factory=list)
    status: int = 200


@dataclass
class TokenService:
    port: int
    cert_path: Path
    requests: list[TokenRequest]

    def registry_auth(self, realm_host: str = "127.0.0.1") -> str:
        """The ``auth:`` section of a registry config that trusts this service."""
        return (
            "auth:\n  token:\n"
            f"    realm: http://{realm_host}:{self.port}/token\n"
            f"    service: {SERVICE}\n"
            f"    issuer: {ISSUER}\n"
            f"    rootcertbundle: {self.cert_path}\n"
        )


def _signing_key(directory: Path) -> tuple[rsa.RSAPrivateKey, bytes, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ISSUER)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    path = directory / "token-issuer.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert.public_bytes(serialization.Encoding.DER), path


def _verify_signature(header: str, url: str, authorized: set[str]) -> str | None:
    """The signer's public key if ``header`` signs ``url`` with an authorised key, else None."""
    public_b64, _, signature_b64 = header.partition(":")
    if public_b64 not in authorized:
        return None
    key = serialization.load_ssh_public_key(b"ssh-ed25519 " + public_b64.encode())
    assert isinstance(key, Ed25519PublicKey)
    body_hash = base64.b64encode(hashlib.sha256(b"").hexdigest().encode()).decode()
    try:
        key.verify(base64.b64decode(signature_b64), f"GET,{url},{body_hash}".encode())
    except (InvalidSignature, ValueError):
        return None
    return public_b64


def _grants(scope: str, signed: bool) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for item in scope.split():
        kind, rest = item.split(":", 1)
        name, actions = rest.rsplit(":", 1)
        allowed = [a for a in actions.split(",") if signed or a == "pull"]
        out.append({"type": kind, "name": name, "actions": allowed})
    return out


@contextmanager
def start_token_service(directory: Path, authorized: set[str]) -> Iterator[TokenService]:
    """Serve ``/token`` on a loopback port; ``authorized``: base64 ed25519 public keys that may push."""
    key, cert_der, cert_path = _signing_key(directory)
    requests: list[TokenRequest] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            url = f"http://{self.headers['Host']}{self.path}"
            query = dict(parse_qsl(urlsplit(self.path).query))
            header = self.headers.get("Authorization")
            signer = _verify_signature(header, url, authorized) if header else None
            record = TokenRequest(url=url, signer=signer, scope=query.get("scope", ""))
            with lock:
                requests.append(record)
            if urlsplit(self.path).path != "/token" or (header and signer is None):
                record.status = 401
                self.send_response(401)
                self.end_headers()
                return
            record.granted = _grants(record.scope, signer is not None)
            now = int(time.time())
            header_json = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(cert_der).decode()]}
            claims = {"iss": ISSUER, "sub": signer or "anonymous", "aud": query.get("service", ""),
                      "exp": now + 600, "nbf": now - 10, "iat": now, "jti": secrets.token_hex(8),
                      "access": record.granted}
            signing_input = f"{_b64url(json.dumps(header_json).encode())}.{_b64url(json.dumps(claims).encode())}"
            signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
            body = json.dumps({"token": f"{signing_input}.{_b64url(signature)}", "expires_in": 600}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield TokenService(port=server.server_address[1], cert_path=cert_path, requests=requests)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
