"""The cluster CA and one key and certificate per board, with the agent id in the SAN, and a revocation list.

A certs folder holds `ca.crt` and `ca.key` (the cluster CA), `<id>.crt` and `<id>.key` per board, and
`revoked.crl`, a CRL signed by the CA that agents re-read when it changes. Keys are written 0600 and never printed.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edge_agent.discovery.peers import AGENT_ID_PATTERN
from edge_agent.transport.tls import IdentityError, read_revocation_list

CA_NAME = "ca"
CRL_NAME = "revoked.crl"
CA_DAYS = 3650
BOARD_DAYS = 825
CRL_DAYS = 3650  # agents check the list's signature, not its age: a stale list must not stop a fleet


class CertsError(ValueError):
    """A mistake in how the certs folder or a name was given (one line)."""


@dataclass(frozen=True)
class IssuedCert:
    """One board certificate as `certs list` shows it."""

    name: str
    serial: int
    not_after: datetime.datetime
    revoked: bool


def init_ca(folder: Path, name: str = "edge-agent cluster CA") -> Path:
    """Create the cluster CA in `folder` (made readable by its owner alone when it does not exist yet; one that
    holds a CA already is refused); the CA certificate's path."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as error:
        raise CertsError(f"cannot make the folder {folder}: {error.strerror or error}") from None
    _check_folder(folder)
    if (folder / f"{CA_NAME}.key").exists():
        raise CertsError(f"{folder} already holds a cluster CA ({CA_NAME}.key); use another folder")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = _now()
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    _write_key(folder / f"{CA_NAME}.key", key)
    (folder / f"{CA_NAME}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_crl(folder, key, cert, [])
    return folder / f"{CA_NAME}.crt"


def issue(folder: Path, agent_id: str, days: int = BOARD_DAYS, operator: bool = False) -> Path:
    """A key and certificate for board `agent_id` (its id the SAN's DNS name), signed by the CA; the cert's path.

    `operator`: a client certificate only (no serverAuth), for `edge-agent status` and `inspect`: agents answer it
    PeerInfo, Status and Records but refuse its round messages, and no agent can serve with it.
    """
    check_name(agent_id)
    ca_key, ca_cert = _load_ca(folder)
    if (folder / f"{agent_id}.crt").exists() or (folder / f"{agent_id}.key").exists():
        raise CertsError(f"{agent_id} already has a certificate in {folder}; revoke it and issue another name")
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH] if operator else [ExtendedKeyUsageOID.SERVER_AUTH,
                                                                 ExtendedKeyUsageOID.CLIENT_AUTH]
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, agent_id)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(agent_id)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    _write_key(folder / f"{agent_id}.key", key)
    (folder / f"{agent_id}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return folder / f"{agent_id}.crt"


def revoke(folder: Path, agent_id: str) -> int:
    """Add board `agent_id`'s certificate to the CA-signed revocation list; its serial."""
    check_name(agent_id)
    ca_key, ca_cert = _load_ca(folder)
    path = folder / f"{agent_id}.crt"
    if not path.exists():
        raise CertsError(f"no certificate for {agent_id} in {folder} (see `edge-agent certs list`)")
    serial = x509.load_pem_x509_certificate(path.read_bytes()).serial_number
    revoked = revoked_serials(folder)
    if serial not in revoked:
        _write_crl(folder, ca_key, ca_cert, sorted(revoked | {serial}))
    return serial


def listing(folder: Path) -> list[IssuedCert]:
    """Every board certificate in the folder, by name, with whether it is revoked."""
    _load_ca(folder)
    revoked = revoked_serials(folder)
    issued = []
    for path in sorted(folder.glob("*.crt")):
        if path.stem == CA_NAME:
            continue
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        issued.append(IssuedCert(path.stem, cert.serial_number, cert.not_valid_after_utc,
                                 cert.serial_number in revoked))
    return issued


def revoked_serials(folder: Path) -> set[int]:
    """Serials on the folder's revocation list, checked against the CA's signature (CertsError if forged)."""
    _, ca_cert = _load_ca(folder, need_key=False)
    return read_crl(folder / CRL_NAME, ca_cert)


def read_crl(path: Path, ca_cert: x509.Certificate) -> set[int]:
    """Serials on a CRL file the CA signed; an absent file revokes nothing; CertsError if it is not the CA's."""
    try:
        return read_revocation_list(path, ca_cert)
    except IdentityError as error:
        raise CertsError(str(error)) from None


def throwaway_cluster(folder: Path, agent_ids: list[str]) -> Path:
    """A fresh CA and certificates for `agent_ids` in `folder` (emptied of earlier ones): for demos and tests."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in [*folder.glob("*.crt"), *folder.glob("*.key"), folder / CRL_NAME]:
        old.unlink(missing_ok=True)
    init_ca(folder, "edge-agent throwaway CA")
    for agent_id in agent_ids:
        issue(folder, agent_id)
    return folder


def check_name(agent_id: str) -> str:
    if not AGENT_ID_PATTERN.fullmatch(agent_id):
        raise CertsError(f"{agent_id!r:.60} is not an agent id: 1-48 letters, digits, '-' or '_', starting with a "
                         "letter or digit")
    return agent_id


def _check_folder(folder: Path) -> None:
    if not folder.is_dir():
        raise CertsError(f"{folder} is not a folder (create it first, readable by you alone: mkdir -m 700 {folder})")


def _load_ca(folder: Path, need_key: bool = True) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    _check_folder(folder)
    key_path, cert_path = folder / f"{CA_NAME}.key", folder / f"{CA_NAME}.crt"
    if not cert_path.exists() or (need_key and not key_path.exists()):
        raise CertsError(f"{folder} holds no cluster CA (run `edge-agent certs init --dir {folder}` first)")
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    if not need_key:
        return None, cert  # type: ignore[return-value]
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertsError(f"{key_path} is not an EC private key")
    return key, cert


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    """The key in PEM, created 0600 (never readable by others, not even for a moment)."""
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(pem)


def _write_crl(folder: Path, key: ec.EllipticCurvePrivateKey, ca: x509.Certificate, serials: list[int]) -> None:
    now = _now()
    builder = (x509.CertificateRevocationListBuilder().issuer_name(ca.subject).last_update(now)
               .next_update(now + datetime.timedelta(days=CRL_DAYS)))
    for serial in serials:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build())
    crl = builder.sign(key, hashes.SHA256())
    staging = folder / f".{CRL_NAME}.tmp"
    staging.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    staging.replace(folder / CRL_NAME)  # agents re-reading it never see half a list


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
