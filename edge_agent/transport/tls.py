"""Mutual TLS between agents: credentials from a cluster certs folder, and who a caller or a peer proves to be.

Every agent holds the cluster CA, its own key and certificate (its agent id the SAN's DNS name) and the CA-signed
revocation list. An operator's certificate (`certs issue NAME --operator`) is a client certificate only (no
serverAuth usage): it may ask an agent's PeerInfo, Status and Records but not take part in rounds. Its server
requires a client certificate from the CA; its client verifies the server's against
the CA and the expected peer's id (`grpc.ssl_target_name_override`, since peers are dialled by IP). Revocation is
checked per call on the server (the list is re-read when its file changes) and on every identity probe.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

log = logging.getLogger(__name__)
PEM_KEY = "x509_pem_cert"


class IdentityError(ValueError):
    """A certificate or peer that does not prove a cluster identity (one line)."""


@dataclass(frozen=True)
class TlsFiles:
    """Where an agent's TLS material lies: the cluster CA, its own certificate and key, the revocation list."""

    ca: Path
    cert: Path
    key: Path
    crl: Path | None = None

    @classmethod
    def in_folder(cls, folder: Path, agent_id: str) -> TlsFiles:
        """The files `edge-agent certs` writes for board `agent_id` (ca.crt, <id>.crt, <id>.key, revoked.crl)."""
        return cls(folder / "ca.crt", folder / f"{agent_id}.crt", folder / f"{agent_id}.key", folder / "revoked.crl")


class ClusterTls:
    """One agent's loaded credentials, its proven identity, and the revocation list; thread-safe."""

    def __init__(self, files: TlsFiles) -> None:
        for path in (files.ca, files.cert, files.key):
            if not path.is_file():
                raise IdentityError(f"{path} is missing (issue it with `edge-agent certs issue ID --dir DIR`)")
        self.files = files
        self.ca_pem, self.cert_pem, self._key_pem = (p.read_bytes() for p in (files.ca, files.cert, files.key))
        try:
            self._ca = x509.load_pem_x509_certificate(self.ca_pem)
            own = x509.load_pem_x509_certificate(self.cert_pem)
        except ValueError as error:
            raise IdentityError(f"{files.ca} or {files.cert} is not a PEM certificate: {error}") from None
        self.identity = self.verify(own)
        self.board = is_board_certificate(own)  # False: an operator's, which may not take part in rounds
        self._crl_lock = threading.Lock()
        self._crl_stamp: tuple[int, int] | None = None
        self._revoked: frozenset[int] = frozenset()
        if self.is_revoked(own.serial_number):
            raise IdentityError(f"this board's certificate ({files.cert}) is revoked")
        self._serials: dict[bytes, tuple[int, str, bool]] = {}  # caller PEM -> (serial, identity, board), bounded

    def server_credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials([(self._key_pem, self.cert_pem)], root_certificates=self.ca_pem,
                                           require_client_auth=True)

    def channel_credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(self.ca_pem, self._key_pem, self.cert_pem)

    @staticmethod
    def channel_options(peer_id: str) -> tuple[tuple[str, str], ...]:
        """The server's certificate must name `peer_id` (not the IP we dial)."""
        return (("grpc.ssl_target_name_override", peer_id),)

    def verify(self, cert: x509.Certificate) -> str:
        """The agent id a certificate proves: issued by the cluster CA, within its validity, one DNS SAN."""
        try:
            cert.verify_directly_issued_by(self._ca)
        except (ValueError, TypeError, Exception) as error:  # InvalidSignature is not a ValueError
            raise IdentityError(f"certificate {cert.subject.rfc4514_string():.60} is not issued by the cluster CA: "
                                f"{type(error).__name__}") from None
        try:
            names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            raise IdentityError("certificate has no SAN naming an agent id") from None
        dns = names.get_values_for_type(x509.DNSName)
        if len(dns) != 1:
            raise IdentityError(f"certificate must name exactly one agent id, names {dns!r:.80}")
        return dns[0]

    def is_revoked(self, serial: int) -> bool:
        return serial in self._revoked_serials()

    def caller(self, context: Any, board: bool = False) -> str:
        """The agent id a server call's client certificate proves; IdentityError if none, PermissionError if it
        is revoked or, with `board`, if it is an operator's certificate rather than a board's."""
        auth = context.auth_context() or {}
        pems = auth.get(PEM_KEY) or []
        if not pems:
            raise IdentityError("the call carries no client certificate")
        pem = bytes(pems[0])
        known = self._serials.get(pem)
        if known is None:
            cert = x509.load_pem_x509_certificate(pem)
            known = (cert.serial_number, self.verify(cert), is_board_certificate(cert))
            if len(self._serials) > 256:
                self._serials.clear()
            self._serials[pem] = known
        serial, identity, is_board = known
        if self.is_revoked(serial):
            raise PermissionError(f"the certificate of {identity} (serial {serial:x}) is revoked")
        if board and not is_board:
            raise PermissionError(f"{identity} holds an operator certificate: it may read PeerInfo, Status and "
                                  "Records, not send round messages")
        return identity

    def probe(self, host: str, port: int, timeout: float = 3.0) -> str:
        """The agent id the server at host:port proves in a TLS handshake with our client certificate.

        IdentityError if the handshake fails, the certificate is not the CA's, or it is revoked.
        """
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False  # we read the name from the verified certificate instead
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cadata=self.ca_pem.decode())
        context.load_cert_chain(str(self.files.cert), str(self.files.key))
        context.set_alpn_protocols(["h2"])
        try:
            with socket.create_connection((host, port), timeout=timeout) as raw, \
                    context.wrap_socket(raw, server_hostname=None) as tls:
                der = tls.getpeercert(binary_form=True)
        except (OSError, ssl.SSLError) as error:
            raise IdentityError(f"no TLS handshake with {host}:{port}: {error}") from None
        if der is None:
            raise IdentityError(f"{host}:{port} showed no certificate")
        cert = x509.load_der_x509_certificate(der)
        identity = self.verify(cert)
        if self.is_revoked(cert.serial_number):
            raise IdentityError(f"{identity} at {host}:{port} has a revoked certificate")
        return identity

    def _revoked_serials(self) -> frozenset[int]:
        """The revocation list, re-read when its file changes (a stat per call); the last good one if unreadable."""
        path = self.files.crl
        if path is None:
            return frozenset()
        try:
            stat = path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            stamp = (0, 0)
        with self._crl_lock:
            if stamp != self._crl_stamp:
                self._revoked = frozenset(self._read_crl(path)) if stamp != (0, 0) else frozenset()
                self._crl_stamp = stamp
            return self._revoked

    def _read_crl(self, path: Path) -> set[int]:
        try:
            return read_revocation_list(path, self._ca)
        except (IdentityError, OSError) as error:
            log.warning("keeping the previous revocation list: %s", error)
            return set(self._revoked)


def is_board_certificate(cert: x509.Certificate) -> bool:
    """A board's certificate may serve (serverAuth); an operator's is a client certificate only."""
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return True  # no restriction: any use
    return ExtendedKeyUsageOID.SERVER_AUTH in usages


def read_revocation_list(path: Path, ca: x509.Certificate) -> set[int]:
    """Serials on a CRL file the CA signed; an absent file revokes nothing; IdentityError if it is not the CA's."""
    if not path.exists():
        return set()
    try:
        crl = x509.load_pem_x509_crl(path.read_bytes())
    except ValueError as error:
        raise IdentityError(f"{path} is not a PEM revocation list: {error}") from None
    if crl.issuer != ca.subject or not crl.is_signature_valid(ca.public_key()):  # type: ignore[arg-type]
        raise IdentityError(f"{path} is not signed by this cluster's CA")
    return {entry.serial_number for entry in crl}
