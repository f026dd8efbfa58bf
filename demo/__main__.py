"""``make demo``: the whole system on one machine, with the real processes.

A private Mosquitto on the files ``edge-auth`` renders (mutual-TLS device listener, ACLs,
service listener), ``edge-auth serve``, ``edge-ingest serve`` on SQLite, an operator, three
simulated devices enrolled through the real flow (``POST /v1/devices`` with the operator's
token, then ``edge-agent enroll``), and their ``edge-agent run`` in end-to-end delivery.
The state lives in ``state/demo/`` (``DEMO_DIR``): a second run reuses it (devices stay
enrolled), ``make demo-clean`` forgets it.  Ports from ``DEMO_PORT_BASE`` (18000): auth
+80, ingest +90, devices +883, services +884.  Ctrl-C stops everything it started."""

from __future__ import annotations

import getpass
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from pathlib import Path
from types import FrameType

from demo.processes import Children, DemoError, http_ok, port_open

DEVICES = ("demo-01", "demo-02", "demo-03")
OPERATOR = "operator"
EX_UNAVAILABLE = 69
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    return str(BIN / name)


def _mosquitto() -> str:
    """``MOSQUITTO`` if set, else the first on PATH or in the sbin folders (Debian: /usr/sbin)."""
    found = os.environ.get("MOSQUITTO") or shutil.which(
        "mosquitto",
        path=os.pathsep.join(
            [os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin", "/opt/homebrew/sbin"]
        ),
    )
    if not found or not os.access(found, os.X_OK):
        raise DemoError(
            "needs the Mosquitto broker, which is not installed: "
            "sudo apt install mosquitto (Debian/Ubuntu; brew install mosquitto on macOS), then make demo again"
        )
    return found


class Demo:
    def __init__(self, root: Path, base: int) -> None:
        self.root = root.resolve()
        self.auth_port, self.ingest_port = base + 80, base + 90
        self.device_port, self.service_port = base + 883, base + 884
        self.children = Children(self.root / "logs")
        self.auth_config = self.root / "edge-auth.toml"
        self.ingest_config = self.root / "edge-ingest.toml"
        self.password_file = self.root / "operator.password"
        self.auth_url = f"http://127.0.0.1:{self.auth_port}"
        self.ingest_url = f"http://127.0.0.1:{self.ingest_port}"

    # -- files -----------------------------------------------------------------------------

    def _write_configs(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.auth_config.write_text(
            f"""# written by make demo
state_dir = "auth"
[server]
host = "127.0.0.1"
port = {self.auth_port}
[tokens]
access_ttl = "12h"
[broker]
host = "127.0.0.1"
port = {self.device_port}
bind_address = "127.0.0.1"
service_port = {self.service_port}
service_bind_address = "127.0.0.1"
out_dir = "broker"
pid_file = "mosquitto.pid"
server_names = ["localhost", "127.0.0.1"]
ingest_identity = "ingest"
"""
        )
        ident = self.root / "ingest-identity"
        self.ingest_config.write_text(
            f"""# written by make demo
state_dir = "ingest"
log_level = "info"
[server]
host = "127.0.0.1"
port = {self.ingest_port}
[mqtt]
host = "127.0.0.1"
port = {self.service_port}
share_group_file = "{ident / "ingest.share-group"}"
keepalive = "10s"
reconnect_max = "2s"
[mqtt.tls]
ca_file = "{ident / "ca.pem"}"
cert_file = "{ident / "ingest.pem"}"
key_file = "{ident / "ingest.key"}"
[auth]
jwks_url = "{self.auth_url}/.well-known/jwks.json"
"""
        )
        broker = self.root / "mosquitto"
        broker.mkdir(exist_ok=True)
        (broker / "mosquitto.conf").write_text(
            f"user {getpass.getuser()}\npersistence false\nlog_dest file {broker / 'mosquitto.log'}\n"
            f"log_type error\nlog_type warning\nlog_type notice\ninclude_dir {self.root / 'broker'}\n"
        )

    def _agent_config(self, device: str) -> Path:
        folder = self.root / "devices" / device
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "edge-agent.toml"
        # No [mqtt.tls] and no host/port: the agent takes both from its enrollment.
        path.write_text(
            f"""# written by make demo
[device]
id = "{device}"
clock_check = "none"
[storage]
state_dir = "{folder / "state"}"
[mqtt]
delivery = "end-to-end"
ack_timeout = "10s"
reconnect_min = "0.5s"
reconnect_max = "5s"
[metrics]
enabled = false
[[sensors]]
name = "climate"
driver = "bme280"
bus = "sim"
address = 0x76
interval = "2s"
[[sensors]]
name = "cabinet"
driver = "sht3x"
bus = "sim"
address = 0x44
interval = "5s"
"""
        )
        return path

    def _run(self, argv: list[str], stdin: str | None = None) -> str:
        done = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            last = (done.stderr or done.stdout).strip().splitlines()
            raise DemoError(
                f"{' '.join(Path(a).name for a in argv[:2])} failed: {last[-1] if last else done.returncode}"
            )
        return done.stdout

    # -- the HTTP calls ----------------------------------------------------------------------

    def _token(self, password: str) -> str:
        form = urllib.parse.urlencode(
            {"grant_type": "password", "username": OPERATOR, "password": password}
        ).encode()
        with urllib.request.urlopen(f"{self.auth_url}/v1/token", data=form, timeout=10) as r:
            return str(json.load(r)["access_token"])

    def create_device(self, token: str, device: str) -> str:
        req = urllib.request.Request(
            f"{self.auth_url}/v1/devices",
            data=json.dumps({"id": device}).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            return str(json.load(r)["enrollment_token"])

    # -- the run -----------------------------------------------------------------------------

    def start(self, *, agents: bool = True) -> str:
        """Broker, auth, ingest; then (``agents``) the three devices enrolled and running."""
        mosquitto = _mosquitto()
        for port in (self.auth_port, self.ingest_port, self.device_port, self.service_port):
            if port_open(port):
                raise DemoError(f"port {port} is taken (another make demo?); stop it or set DEMO_PORT_BASE")
        first = not self.password_file.exists()
        self._write_configs()
        auth = ["--config", str(self.auth_config)]
        if first:
            print("first run: a new auth installation, an operator, three devices (state in", self.root, ")")
            self._run([_tool("edge-auth"), "init", *auth])
            password = secrets.token_urlsafe(12)
            self._run(
                [
                    _tool("edge-auth"),
                    "create-admin",
                    "-u",
                    OPERATOR,
                    "--password-stdin",
                    *auth,
                    *(
                        a
                        for s in ("admin", "devices:read", "devices:write", "events:read")
                        for a in ("--scope", s)
                    ),
                ],
                stdin=password + "\n",
            )
            self._run(
                [_tool("edge-auth"), "service-cert", "--out", str(self.root / "ingest-identity"), *auth]
            )
        else:
            print("reusing the demo's state in", self.root, "(make demo-clean forgets it)")
        password = self.password_file.read_text().strip() if not first else password

        broker = self.children.start(
            "mosquitto", [mosquitto, "-c", str(self.root / "mosquitto" / "mosquitto.conf")]
        )
        # Mosquitto writes pid_file only when it daemonises: the auth service reloads it by this pid.
        (self.root / "mosquitto.pid").write_text(f"{broker.process.pid}\n")
        self.children.wait_for(broker, lambda: port_open(self.device_port), "device listener")
        auth_child = self.children.start("edge-auth", [_tool("edge-auth"), "serve", *auth])
        self.children.wait_for(auth_child, lambda: http_ok(f"{self.auth_url}/healthz"), "HTTP answer")
        token = self._token(password)
        configs = [self._agent_config(d) for d in DEVICES] if agents else []
        if first:
            for device, config in zip(DEVICES[: len(configs)], configs, strict=True):
                enrollment = self.create_device(token, device)
                self._run(
                    [
                        _tool("edge-agent"),
                        "enroll",
                        "--auth-url",
                        self.auth_url,
                        "--token",
                        enrollment,
                        "--insecure",
                        "--config",
                        str(config),
                    ]
                )
            self.password_file.write_text(password + "\n")  # written last: the state is whole
            self.password_file.chmod(0o600)
        ingest = self.children.start(
            "edge-ingest", [_tool("edge-ingest"), "serve", "--config", str(self.ingest_config)]
        )
        self.children.wait_for(ingest, lambda: http_ok(f"{self.ingest_url}/healthz"), "HTTP answer")
        for device, config in zip(DEVICES[: len(configs)], configs, strict=True):
            self.children.start(device, [_tool("edge-agent"), "run", "--config", str(config)])
        return token

    def show(self, token: str) -> None:
        password = self.password_file.read_text().strip()
        tail = f"{_tool('edge-ingest')} tail {DEVICES[0]} -c {self.ingest_config}"
        print(
            f"""
the demo is running: Mosquitto (devices 127.0.0.1:{self.device_port} mTLS, services :{self.service_port}),
edge-auth {self.auth_url}, edge-ingest {self.ingest_url}, agents {", ".join(DEVICES)} (end to end)

  API        TOKEN={token}
             curl -s -H "Authorization: Bearer $TOKEN" {self.ingest_url}/v1/devices
  dashboard  {self.ingest_url}/ui/   (user {OPERATOR}, password {password})
  metrics    curl -s {self.ingest_url}/metrics
  live       {tail}
  logs       {self.children.logs}/

Ctrl-C stops every process the demo started.""",
            flush=True,
        )


def main() -> int:
    root = Path(os.environ.get("DEMO_DIR", "state/demo"))
    demo = Demo(root, int(os.environ.get("DEMO_PORT_BASE", "18000")))
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        token = demo.start()
        demo.show(token)
        while not stop.wait(0.5):
            for child in demo.children.started:
                if child.process.poll() is not None:
                    raise DemoError(f"{child.name} exited ({child.process.returncode}): {child.tail()}")
    except DemoError as exc:
        print(f"make demo: {exc}", file=sys.stderr)
        return EX_UNAVAILABLE
    finally:
        demo.children.stop_all()
    print("stopped: every process the demo started has exited")
    return 0


if __name__ == "__main__":
    sys.exit(main())
