"""Certificates and kubeconfigs for the local control plane (client-certificate auth)."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

APISERVER_NAMES = ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                   "kubernetes.default.svc.cluster.local")
# 10.0.0.1: the `kubernetes` Service; 10.244.0.1: the node bridge's gateway, where pods reach the host.
APISERVER_IPS = ("127.0.0.1", "10.0.0.1", "10.244.0.1")


@dataclass(frozen=True)
class Pki:
    ca_cert: Path
    apiserver_cert: Path
    apiserver_key: Path
    admin_cert: Path
    admin_key: Path
    service_account_key: Path
    service_account_pub: Path

    def issue(self, name: str, common_name: str, organization: str | None = None, *,
              server_ips: tuple[str, ...] = ()) -> tuple[Path, Path]:
        """A certificate and key signed by the cluster CA (a client one, or a server one for `server_ips`)."""
        ca_key = serialization.load_pem_private_key(self.ca_key.read_bytes(), password=None)
        assert isinstance(ca_key, rsa.RSAPrivateKey)
        ca_name = x509.load_pem_x509_certificate(self.ca_cert.read_bytes()).subject
        key = _key()
        # A client certificate has no SAN (cryptography refuses an empty one).
        san = (x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip)) for ip in server_ips])
               if server_ips else None)
        cert = _sign(_name(common_name, organization), key, ca_name, ca_key,
                     usage=ExtendedKeyUsageOID.SERVER_AUTH if server_ips else ExtendedKeyUsageOID.CLIENT_AUTH,
                     san=san)
        cert_path, key_path = self.ca_cert.parent / f"{name}.crt", self.ca_cert.parent / f"{name}.key"
        _write_cert(cert, cert_path)
        _write_key(key, key_path)
        return cert_path, key_path

    @property
    def ca_key(self) -> Path:
        return self.ca_cert.parent / "ca.key"


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write_key(key: rsa.RSAPrivateKey, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.TraditionalOpenSSL,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _sign(subject: x509.Name, key: rsa.RSAPrivateKey, issuer: x509.Name, issuer_key: rsa.RSAPrivateKey,
          *, ca: bool = False, usage: ExtendedKeyUsageOID | None = None,
          san: x509.SubjectAlternativeName | None = None) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=30))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          encipher_only=False, decipher_only=False), critical=True)
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if san is not None:
        builder = builder.add_extension(san, critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write_cert(cert: x509.Certificate, path: Path) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def create_pki(directory: Path) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    pki = Pki(*(directory / name for name in (
        "ca.crt", "apiserver.crt", "apiserver.key", "admin.crt", "admin.key", "sa.key", "sa.pub")))
    ca_key, ca_name = _key(), _name("wpclone-testenv-ca")
    _write_cert(_sign(ca_name, ca_key, ca_name, ca_key, ca=True), pki.ca_cert)
    _write_key(ca_key, pki.ca_key)  # the node's certificates are issued after the control plane is up

    server_key = _key()
    san = x509.SubjectAlternativeName(
        [x509.DNSName(name) for name in APISERVER_NAMES]
        + [x509.IPAddress(ipaddress.ip_address(ip)) for ip in APISERVER_IPS])
    _write_cert(_sign(_name("kube-apiserver"), server_key, ca_name, ca_key,
                      usage=ExtendedKeyUsageOID.SERVER_AUTH, san=san), pki.apiserver_cert)
    _write_key(server_key, pki.apiserver_key)

    # Group system:masters is bound to cluster-admin by the apiserver's bootstrap policy.
    admin_key = _key()
    _write_cert(_sign(_name("admin", "system:masters"), admin_key, ca_name, ca_key,
                      usage=ExtendedKeyUsageOID.CLIENT_AUTH), pki.admin_cert)
    _write_key(admin_key, pki.admin_key)

    sa_key = _key()
    _write_key(sa_key, pki.service_account_key)
    pki.service_account_pub.write_bytes(sa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return pki


def write_kubeconfig(path: Path, server: str, ca_cert: Path, *, client_cert: Path | None = None,
                     client_key: Path | None = None, token: str | None = None,
                     namespace: str = "default") -> Path:
    user: dict[str, str] = {}
    if client_cert and client_key:
        user = {"client-certificate": str(client_cert), "client-key": str(client_key)}
    if token:
        user = {"token": token}
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "wpclone-testenv",
        "clusters": [{"name": "wpclone-testenv",
                      "cluster": {"server": server, "certificate-authority": str(ca_cert)}}],
        "users": [{"name": "wpclone-testenv", "user": user}],
        "contexts": [{"name": "wpclone-testenv",
                      "context": {"cluster": "wpclone-testenv", "user": "wpclone-testenv",
                                  "namespace": namespace}}],
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path
