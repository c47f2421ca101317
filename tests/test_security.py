"""Bearer-token auth and TLS through the SDK, with certificates made here.

One server speaks TLS and requires a token; another requires client certificates
(mutual TLS). Health and reflection stay open without a token (grpcurl's health
check needs reflection); every Engine method answers UNAUTHENTICATED without the right one.
"""

from __future__ import annotations

import datetime
import ipaddress

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from client_sdk import Client, errors

TOKEN = "s3cret-token"
SMALL = {"width": 64, "height": 64, "num_inference_steps": 2}


def _pem_key(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _issue(name: str, issuer_key, issuer_name, *, ca: bool, server: bool = False):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name or subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(issuer_key or key, hashes.SHA256())
    return key, cert


@pytest.fixture(scope="module")
def pki() -> dict[str, bytes]:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate, all PEM."""
    ca_key, ca_cert = _issue("ditserve test CA", None, None, ca=True)
    server_key, server_cert = _issue("127.0.0.1", ca_key, ca_cert.subject, ca=False, server=True)
    client_key, client_cert = _issue("test client", ca_key, ca_cert.subject, ca=False)
    pem = serialization.Encoding.PEM
    return {
        "ca": ca_cert.public_bytes(pem),
        "server_cert": server_cert.public_bytes(pem),
        "server_key": _pem_key(server_key),
        "client_cert": client_cert.public_bytes(pem),
        "client_key": _pem_key(client_key),
    }


def _serve(tls, token: str | None):
    from engine_service.bootstrap import build_engine
    from engine_service.config import ServerConfig
    from engine_service.server.background import BackgroundServer

    config = ServerConfig(host="127.0.0.1", port=0, tls=tls, auth_token=token)
    return BackgroundServer(build_engine([], device="cpu"), config).start()


@pytest.fixture(scope="module")
def tls_server(pki):
    from engine_service.config import TLSConfig

    server = _serve(TLSConfig(cert_chain=pki["server_cert"], private_key=pki["server_key"]), TOKEN)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mtls_server(pki):
    from engine_service.config import TLSConfig

    tls = TLSConfig(cert_chain=pki["server_cert"], private_key=pki["server_key"], client_ca=pki["ca"])
    server = _serve(tls, None)
    yield server
    server.stop()


def test_a_tls_round_trip_with_a_token(tls_server, pki):
    with Client(tls_server.address, root_certificates=pki["ca"], auth_token=TOKEN, timeout=60) as client:
        client.wait_ready(timeout=10)
        result = client.generate("a cat", seed=1, **SMALL)
        assert result.outputs[0].data.startswith(b"\x89PNG")
        assert [m.name for m in client.list_models().models] == ["default"]


@pytest.mark.parametrize("token", [None, "wrong-token"], ids=["missing", "wrong"])
def test_a_missing_or_wrong_token_is_unauthenticated(tls_server, pki, token):
    with Client(tls_server.address, root_certificates=pki["ca"], auth_token=token, timeout=30) as client:
        client.wait_ready(timeout=10)  # health needs no token: probes keep working
        with pytest.raises(errors.UnauthenticatedError) as info:
            client.generate("a cat", **SMALL)
        assert ("missing" if token is None else "invalid") in info.value.message
        assert info.value.reason == "UNAUTHENTICATED" and info.value.request_id
        with pytest.raises(errors.UnauthenticatedError):
            list(client.stream("a cat", **SMALL))
        with pytest.raises(errors.UnauthenticatedError):
            client.stats()
    with Client(tls_server.address, root_certificates=pki["ca"], auth_token=TOKEN, timeout=60) as client:
        assert client.generate("a cat", **SMALL).outputs, "the server still serves the right token"


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "Bearer"])
def test_the_bearer_scheme_is_case_insensitive(tls_server, pki, scheme):
    from client_sdk._proto import engine_pb2, engine_pb2_grpc

    credentials = grpc.ssl_channel_credentials(root_certificates=pki["ca"])
    with grpc.secure_channel(tls_server.address, credentials) as channel:
        stub = engine_pb2_grpc.EngineStub(channel)
        reply = stub.ListModels(
            engine_pb2.ListModelsRequest(), timeout=10, metadata=(("authorization", f"{scheme} {TOKEN}"),)
        )
        assert [m.name for m in reply.models] == ["default"]
        with pytest.raises(grpc.RpcError) as info:
            stub.ListModels(engine_pb2.ListModelsRequest(), timeout=10, metadata=(("authorization", f"Basic {TOKEN}"),))
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_an_empty_token_is_refused():
    from engine_service.config import ServerConfig

    for token in ("", "  "):
        with pytest.raises(ValueError, match="must not be empty"):
            ServerConfig(auth_token=token)


def test_health_and_reflection_work_without_the_token_as_grpcurl_uses_them(tls_server, pki):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    credentials = grpc.ssl_channel_credentials(root_certificates=pki["ca"])
    with grpc.secure_channel(tls_server.address, credentials) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        ask = reflection_pb2.ServerReflectionRequest(file_containing_symbol="grpc.health.v1.Health")
        (reply,) = list(stub.ServerReflectionInfo(iter([ask]), timeout=10))
        assert reply.file_descriptor_response.file_descriptor_proto
        ask = reflection_pb2.ServerReflectionRequest(list_services="")
        names = {
            s.name for r in stub.ServerReflectionInfo(iter([ask]), timeout=10) for s in r.list_services_response.service
        }
        assert "ditserve.v1.Engine" in names
        health = health_pb2_grpc.HealthStub(channel)
        reply = health.Check(health_pb2.HealthCheckRequest(service="ditserve.v1.Engine"), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        engine = channel.unary_unary("/ditserve.v1.Engine/Generate")
        with pytest.raises(grpc.RpcError) as info:
            engine(b"", timeout=10, metadata=(("x-request-id", "no-token-1"),))
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert dict(info.value.trailing_metadata())["x-request-id"] == "no-token-1"


def test_a_plaintext_client_cannot_talk_to_a_tls_server(tls_server):
    with Client(tls_server.address, auth_token=TOKEN, timeout=5) as client:
        with pytest.raises(errors.UnavailableError):
            client.stats()


def test_a_mutual_tls_round_trip(mtls_server, pki):
    identity = {"certificate_chain": pki["client_cert"], "private_key": pki["client_key"]}
    with Client(mtls_server.address, root_certificates=pki["ca"], timeout=60, **identity) as client:
        assert client.generate("a cat", seed=1, **SMALL).outputs[0].data.startswith(b"\x89PNG")
    with Client(mtls_server.address, root_certificates=pki["ca"], timeout=5) as anonymous:
        with pytest.raises(errors.UnavailableError):
            anonymous.stats()


def test_a_client_identity_needs_both_halves(pki):
    with pytest.raises(ValueError, match="go together"):
        Client("127.0.0.1:1", certificate_chain=pki["client_cert"])
