"""The cluster CA: board certificates carry the agent id in the SAN, keys are private, revocation is CA-signed."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509

from edge_agent.deploy import certs


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    certs.init_ca(tmp_path)
    return tmp_path


def test_a_board_certificate_names_its_agent_id_in_the_san_and_is_signed_by_the_ca(folder: Path) -> None:
    cert = x509.load_pem_x509_certificate(certs.issue(folder, "client-3").read_bytes())
    ca = x509.load_pem_x509_certificate((folder / "ca.crt").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["client-3"]
    cert.verify_directly_issued_by(ca)
    assert stat.S_IMODE((folder / "client-3.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((folder / "ca.key").stat().st_mode) == 0o600


def test_revoking_puts_the_serial_on_the_signed_list_and_list_shows_it(folder: Path) -> None:
    certs.issue(folder, "a")
    certs.issue(folder, "b")
    serial = certs.revoke(folder, "b")
    assert certs.revoked_serials(folder) == {serial}
    assert [(c.name, c.revoked) for c in certs.listing(folder)] == [("a", False), ("b", True)]
    assert certs.revoke(folder, "b") == serial and certs.revoked_serials(folder) == {serial}  # idempotent


def test_a_revocation_list_signed_by_another_ca_is_refused(folder: Path,
                                                          tmp_path_factory: pytest.TempPathFactory) -> None:
    other = tmp_path_factory.mktemp("other")
    certs.init_ca(other)
    (folder / certs.CRL_NAME).write_bytes((other / certs.CRL_NAME).read_bytes())
    with pytest.raises(certs.CertsError, match="not signed by this cluster's CA"):
        certs.revoked_serials(folder)


@pytest.mark.parametrize(("action", "match"), [
    (lambda f: certs.issue(f, "x y"), "not an agent id"),
    (lambda f: certs.issue(f / "missing", "a"), "is not a folder"),
    (lambda f: certs.init_ca(f), "already holds a cluster CA"),
    (lambda f: certs.revoke(f, "nobody"), "no certificate for nobody"),
])
def test_mistakes_are_one_line_certs_errors(folder: Path, action, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(certs.CertsError, match=match):
        action(folder)


def test_issuing_a_name_twice_is_refused(folder: Path) -> None:
    certs.issue(folder, "a")
    with pytest.raises(certs.CertsError, match="already has a certificate"):
        certs.issue(folder, "a")
