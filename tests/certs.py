"""A test certificate authority and server certificates, for every test tier.

The fake internet's servers (tests/e2e/fake_internet.py) answer HTTPS with a
certificate of this CA, which the egress proxy is told to trust upstream (the
controller's ``EGRESS_UPSTREAM_CA_BUNDLE``): a client that sees its issuer knows the
TLS was end to end; one that sees the controller's egress CA knows it was intercepted.

Keys are P-256 (fast to make), valid from five minutes ago for a day; written as PEM
into a directory the caller owns (a pytest temporary directory).
"""

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

#: The common name of the fake internet's CA (a client reads it as the issuer).
TEST_CA_NAME = "beephost test internet CA"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _validity() -> tuple[datetime.datetime, datetime.datetime]:
    now = datetime.datetime.now(datetime.UTC)
    return now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1)


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass(frozen=True)
class TestCA:
    """A CA that signs server certificates."""

    # Not a test class, whatever its name says.
    __test__ = False

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def make(cls, common_name: str = TEST_CA_NAME) -> "TestCA":
        key = ec.generate_private_key(ec.SECP256R1())
        not_before, not_after = _validity()
        usage = x509.KeyUsage(
            digital_signature=True,
            key_cert_sign=True,
            crl_sign=True,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            encipher_only=False,
            decipher_only=False,
        )
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(_name(common_name))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(usage, critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                critical=False,
            )
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    @property
    def common_name(self) -> str:
        value = self.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        return str(value)

    def issue(
        self, names: list[str], addresses: list[str] | None = None
    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        """A server certificate for ``names`` (the first is its subject) and, as IP
        subject alternative names, ``addresses``."""
        key = ec.generate_private_key(ec.SECP256R1())
        not_before, not_after = _validity()
        alternatives: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
        alternatives += [
            x509.IPAddress(ipaddress.ip_address(a)) for a in addresses or []
        ]
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(names[0]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
            .add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    self.key.public_key()
                ),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        return key, cert

    def write_ca(self, directory: Path, name: str = "ca.pem") -> Path:
        """The CA's certificate (no key) as PEM: what a client trusts."""
        path = directory / name
        path.write_bytes(pem(self.cert))
        return path

    def write_server(
        self,
        directory: Path,
        names: list[str],
        addresses: list[str] | None = None,
        stem: str | None = None,
    ) -> Path:
        """A server's certificate and key in one PEM file (``ssl``'s
        ``load_cert_chain`` takes it), readable by its owner only."""
        key, cert = self.issue(names, addresses)
        path = directory / f"{stem or names[0]}.pem"
        path.touch(mode=0o600)
        path.write_bytes(pem(cert) + key_pem(key))
        return path
