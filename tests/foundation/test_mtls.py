"""TCP listener with mutual TLS: allowed client passes, a certificate from
another CA or an identity outside the allowlist is refused."""
from __future__ import annotations

import shutil

import grpc
import pytest

from agent._proto.devcloud.agent.v1 import identity_pb2, identity_pb2_grpc
from agent.cli import ctl
from tests.support.server import start_inprocess, temp_dir
from tests.support.tls import CA


@pytest.fixture(scope="module")
def mtls(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca, other = CA(d / "ca1"), CA(d / "ca2", "rogue CA")
    server = ca.issue("agent.node1", server=True)
    tmp = temp_dir()
    agent = start_inprocess(tmp, [
        "server.tcp_listen=127.0.0.1:0", f"server.tls_cert={server.cert}", f"server.tls_key={server.key}",
        f"server.tls_client_ca={ca.pair.cert}", "server.allowed_clients=controller-a,controller-b"])
    addr = next(a for a in agent.app.server.addresses if not a.startswith("unix:"))
    yield {"addr": addr, "ca": ca, "other": other, "server": server}
    agent.stop()
    shutil.rmtree(tmp, ignore_errors=True)


def _call(m, pair=None, *, plaintext=False):
    if plaintext:
        ch = grpc.insecure_channel(m["addr"])
    else:
        creds = grpc.ssl_channel_credentials(
            root_certificates=m["ca"].pair.cert.read_bytes(),
            private_key=pair.key.read_bytes() if pair else None,
            certificate_chain=pair.cert.read_bytes() if pair else None)
        ch = grpc.secure_channel(m["addr"], creds, options=[("grpc.ssl_target_name_override", "agent.node1")])
    try:
        return identity_pb2_grpc.IdentityServiceStub(ch).GetAgentInfo(identity_pb2.GetAgentInfoRequest(), timeout=5)
    finally:
        ch.close()


def test_allowed_client_is_served(mtls):
    assert _call(mtls, mtls["ca"].issue("controller-a", server=False)).name == "devcloud-agent"


def test_client_signed_by_another_ca_is_refused(mtls):
    with pytest.raises(grpc.RpcError) as e:
        _call(mtls, mtls["other"].issue("controller-a", server=False))
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE


def test_client_without_certificate_is_refused(mtls):
    with pytest.raises(grpc.RpcError) as e:
        _call(mtls, None)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE


def test_client_identity_outside_allowlist_is_denied(mtls):
    with pytest.raises(grpc.RpcError) as e:
        _call(mtls, mtls["ca"].issue("intruder", server=False))
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "allowed_clients" in e.value.details()


def test_plaintext_client_is_refused(mtls):
    with pytest.raises(grpc.RpcError) as e:
        _call(mtls, plaintext=True)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE


def test_devcloudctl_over_mtls(mtls, capsys):
    pair = mtls["ca"].issue("controller-b", server=False)
    rc = ctl.main(["--addr", mtls["addr"], "--cert", str(pair.cert), "--key", str(pair.key),
                   "--ca", str(mtls["ca"].pair.cert), "--server-name", "agent.node1", "--json", "info"])
    assert rc == 0
    assert '"name": "devcloud-agent"' in capsys.readouterr().out
