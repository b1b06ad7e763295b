"""TLS: the server with a certificate, the client verifying it (loopback, self-signed)."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
from cti_helpers import PASSWORD, ServerFactory

from cti.client import CtiClient


@pytest.fixture
def cert(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    key, crt = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out",
                    str(crt), "-days", "1", "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True, timeout=30)
    return crt, key


async def test_tls_login_and_events(make_server: ServerFactory, cert: tuple[Path, Path]) -> None:
    crt, key = cert
    server = await make_server(certfile=str(crt), keyfile=str(key))
    context = ssl.create_default_context(cafile=str(crt))
    client = await CtiClient.connect("127.0.0.1", server.port, tls=context)
    info = await client.login("alice", PASSWORD)
    assert info.role == "agent"
    await client.subscribe()
    await client.agent_login("1001")
    assert (await client.next_event()).event == "agent.logged_on"
    await client.close()
    untrusted = ssl.create_default_context()          # system CAs: must refuse our cert
    with pytest.raises(ssl.SSLError):
        await CtiClient.connect("127.0.0.1", server.port, tls=untrusted)
