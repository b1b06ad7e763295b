"""Drivers for real SIP user agents used as test peers: baresip (ctrl_tcp) and pyVoIP.

Each peer runs as its own process, bound to 127.0.0.1 on free ports, and is stopped by PID.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from .conftest import free_port

BARESIP_CONFIG = """\
poll_method     epoll
sip_listen      127.0.0.1:{sip_port}
audio_player    alsa,null
audio_alert     alsa,null
audio_source    {audio_source}
ausrc_srate     8000
auplay_srate    8000
rtp_ports       {rtp_lo}-{rtp_hi}
net_interface   127.0.0.1
module_path     /usr/lib/baresip/modules
module          g711.so
module          ausine.so
module          alsa.so
{extra_modules}
module_tmp      uuid.so
module_tmp      account.so
module_app      menu.so
module_app      ctrl_tcp.so
ctrl_tcp_listen 127.0.0.1:{ctrl_port}
"""


class Baresip:
    """A headless baresip registered (or not) to our node, driven over ctrl_tcp."""

    def __init__(self, workdir: Path, user: str, password: str, registrar: str, *,
                 wav: Path | None = None, rec_dir: Path | None = None,
                 codecs: str = "pcmu,pcma") -> None:
        """``wav``: send this 8 kHz mono s16 file (aufile; the call ends at its end) instead
        of the ausine source (which refuses 8 kHz, so it cannot take calls); ``rec_dir``:
        record each call's received (``*-dec.wav``) and sent audio there (sndfile);
        ``codecs``: the account's audio_codecs."""
        workdir.mkdir(parents=True, exist_ok=True)
        self.sip_port = free_port()
        self.ctrl_port = free_port(socket.SOCK_STREAM, also_tcp=False)
        rtp_lo = free_port()
        extra = []
        if wav is not None:
            extra.append("module          aufile.so")
        if rec_dir is not None:
            rec_dir.mkdir(parents=True, exist_ok=True)
            extra += ["module          sndfile.so", f"snd_path        {rec_dir}"]
        (workdir / "config").write_text(BARESIP_CONFIG.format(
            sip_port=self.sip_port, ctrl_port=self.ctrl_port, rtp_lo=rtp_lo, rtp_hi=rtp_lo + 9,
            audio_source=f"aufile,{wav}" if wav is not None else "ausine,440",
            extra_modules="\n".join(extra)))
        (workdir / "accounts").write_text(
            f"<sip:{user}@{registrar}>;auth_pass={password};regint=300;"
            f"answermode=auto;audio_codecs={codecs}\n")
        self.log = open(workdir / "baresip.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            ["baresip", "-4", "-f", str(workdir), "-t", "120"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        self.sock: socket.socket | None = None
        self.buf = b""
        self.token = 0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.sock is None:
            try:
                self.sock = socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=1)
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"baresip exited: {self.proc.returncode}") from None
                time.sleep(0.1)
        if self.sock is None:
            raise RuntimeError("baresip ctrl_tcp did not come up")

    def command(self, command: str, params: str = "", timeout: float = 5.0) -> dict:
        assert self.sock is not None
        self.token += 1
        tok = str(self.token)
        data = json.dumps({"command": command, "params": params, "token": tok}).encode()
        self.sock.sendall(b"%d:%s," % (len(data), data))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = self._recv_one(deadline - time.monotonic())
            if msg.get("response") and msg.get("token") == tok:
                return msg
        raise TimeoutError(command)

    def _recv_one(self, timeout: float) -> dict:
        assert self.sock is not None
        self.sock.settimeout(max(0.01, timeout))
        while True:
            colon = self.buf.find(b":")
            if colon > 0:
                n = int(self.buf[:colon])
                if len(self.buf) >= colon + n + 2:
                    payload = self.buf[colon + 1 : colon + 1 + n]
                    self.buf = self.buf[colon + n + 2 :]
                    return json.loads(payload.decode(errors="replace"))
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("ctrl_tcp closed")
            self.buf += chunk

    def registered(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            data = self.command("reginfo").get("data", "")
            clean = data.replace("\x1b[32m", "").replace("\x1b[;m", "")
            if "OK " in clean:
                return True
            time.sleep(0.2)
        return False

    def stop(self, *, kill: bool = False) -> None:
        """Terminate (baresip then de-registers, waiting for the registrar up to 5 s);
        ``kill=True`` when the registrar is gone already."""
        if self.sock is not None:
            self.sock.close()
        if self.proc.poll() is None and kill:
            self.proc.kill()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


PYVOIP_REGISTER = textwrap.dedent("""
    import sys, time
    from pyVoIP.VoIP import PhoneStatus, VoIPPhone
    host, port, user, pw, sip_port, rtp_lo = sys.argv[1:7]
    phone = VoIPPhone(host, int(port), user, pw, myIP="127.0.0.1", sipPort=int(sip_port),
                      rtpPortLow=int(rtp_lo), rtpPortHigh=int(rtp_lo) + 9)
    phone.start()
    deadline = time.time() + 10
    while phone.get_status() != PhoneStatus.REGISTERED and time.time() < deadline:
        time.sleep(0.1)
    status = phone.get_status()
    print("STATUS", status.name, flush=True)
    phone.stop()
    sys.exit(0 if status == PhoneStatus.REGISTERED else 1)
""")


def pyvoip_register(registrar_port: int, user: str, password: str) -> tuple[int, str]:
    """Register a pyVoIP phone in a child process; (exit code, output)."""
    proc = subprocess.run(
        [sys.executable, "-c", PYVOIP_REGISTER, "127.0.0.1", str(registrar_port), user,
         password, str(free_port()), str(free_port())],
        capture_output=True, text=True, timeout=40,
    )
    return proc.returncode, proc.stdout + proc.stderr
