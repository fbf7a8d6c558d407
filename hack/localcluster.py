"""A real, local Kubernetes control plane: etcd, kube-apiserver and kube-controller-manager.

Built from the upstream Go modules by hack/build-control-plane.sh; started here on 127.0.0.1 with
generated certificates. One implementation serves `hack/cluster up|down|status`, the demo and the
test suite's session fixture.

    cluster = LocalCluster(state_dir)
    cluster.up()          # returns when /readyz answers ok; writes state_dir/kubeconfig
    cluster.down()        # stops what it started, by PID, and removes its data
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

HACK = Path(__file__).resolve().parent
REPO = HACK.parent
BIN = HACK / "bin"
DEFAULT_STATE = REPO / ".cluster"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager")
CONTROLLERS = (
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
)


class ClusterError(RuntimeError):
    """The control plane could not be built, started or reached; the message says why."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_binaries() -> Path:
    """Build (or link from the cache) the control-plane binaries; fast when they are up to date."""
    missing = [c for c in (*COMPONENTS, "kubectl") if not (BIN / c).exists()]
    if missing:
        result = subprocess.run(["bash", str(HACK / "build-control-plane.sh")], check=False)
        if result.returncode != 0:
            raise ClusterError(f"building the control plane failed (exit {result.returncode}); see above")
    return BIN


# --- certificates -------------------------------------------------------------------------------


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _cert(
    subject: x509.Name,
    key: rsa.RSAPrivateKey,
    issuer: x509.Name,
    issuer_key: rsa.RSAPrivateKey,
    *,
    ca: bool = False,
    sans: list[x509.GeneralName] | None = None,
    server: bool = False,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if not ca:
        usage = x509.ExtendedKeyUsageOID.SERVER_AUTH if server else x509.ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def write_pki(pki: Path) -> None:
    """A CA, a serving certificate for 127.0.0.1/localhost, an admin client and a service-account key."""
    pki.mkdir(parents=True, exist_ok=True)
    ca_key, ca_name = _key(), _name("sprint-orchestrator-local-ca")
    ca = _cert(ca_name, ca_key, ca_name, ca_key, ca=True)
    sans: list[x509.GeneralName] = [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.DNSName("localhost"),
        x509.DNSName("kubernetes.default.svc"),
    ]
    srv_key = _key()
    srv = _cert(_name("kube-apiserver"), srv_key, ca_name, ca_key, sans=sans, server=True)
    adm_key = _key()
    adm = _cert(_name("admin", "system:masters"), adm_key, ca_name, ca_key)
    for stem, cert, key in (("ca", ca, ca_key), ("apiserver", srv, srv_key), ("admin", adm, adm_key)):
        (pki / f"{stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(pki / f"{stem}.key", key)
    sa_key = _key()
    _write_key(pki / "sa.key", sa_key)
    (pki / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def kubeconfig_text(server: str, pki: Path) -> str:
    import base64

    def b64(name: str) -> str:
        return base64.b64encode((pki / name).read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "local", "cluster": {"server": server, "certificate-authority-data": b64("ca.crt")}}
        ],
        "users": [
            {
                "name": "admin",
                "user": {"client-certificate-data": b64("admin.crt"), "client-key-data": b64("admin.key")},
            }
        ],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": "admin"}}],
        "current-context": "local",
    }
    return json.dumps(config, indent=2)


# --- processes ----------------------------------------------------------------------------------


@dataclass
class LocalCluster:
    state_dir: Path = DEFAULT_STATE
    # Popen objects of the processes this instance started, kept so they are reaped on down().
    _children: list[subprocess.Popen[bytes]] = field(default_factory=list, repr=False, compare=False)

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def _state_file(self) -> Path:
        return self.state_dir / "state.json"

    def state(self) -> dict[str, object]:
        try:
            return dict(json.loads(self._state_file.read_text()))
        except (OSError, ValueError):
            return {}

    def up(self, timeout: float = 120.0) -> dict[str, object]:
        """Start the control plane (idempotent: a healthy running one is reused)."""
        current = self.state()
        if current and self._healthy(str(current["server"])):
            return current
        self.down()
        ensure_binaries()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        pki = self.state_dir / "pki"
        write_pki(pki)
        shm = Path("/dev/shm") if Path("/dev/shm").is_dir() else self.state_dir
        data = Path(os.path.realpath(shm / f"sprint-orchestrator-etcd-{os.getpid()}-{time.time_ns()}"))
        etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
        server = f"https://127.0.0.1:{api_port}"
        state: dict[str, object] = {"server": server, "etcd_data": str(data), "pids": {}}
        self._save(state)
        logs = self.state_dir / "logs"
        logs.mkdir(exist_ok=True)
        pids: dict[str, int] = {}
        pids["etcd"] = self._spawn("etcd", self._etcd_args(data, etcd_port, peer_port), logs)
        state["pids"] = pids
        self._save(state)
        self._wait(lambda: self._tcp_open(etcd_port), timeout, "etcd", logs)
        pids["kube-apiserver"] = self._spawn(
            "kube-apiserver", self._apiserver_args(pki, etcd_port, api_port), logs
        )
        self._save(state)
        self._wait(lambda: self._healthy(server), timeout, "kube-apiserver", logs)
        self.kubeconfig.write_text(kubeconfig_text(server, pki))
        self.kubeconfig.chmod(0o600)
        pids["kube-controller-manager"] = self._spawn("kube-controller-manager", self._kcm_args(pki), logs)
        self._save(state)
        return state

    def down(self) -> None:
        """Stop every process this cluster started (by PID) and remove its data."""
        current = self.state()
        pids = current.get("pids", {})
        assert isinstance(pids, dict)
        for name in reversed(COMPONENTS):
            pid = pids.get(name)
            if isinstance(pid, int):
                _terminate(pid)
        for child in self._children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        self._children.clear()
        etcd_data = current.get("etcd_data")
        if isinstance(etcd_data, str):
            shutil.rmtree(etcd_data, ignore_errors=True)
        if self.state_dir.exists():
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def status(self) -> dict[str, object]:
        current = self.state()
        if not current:
            return {"running": False}
        pids = current.get("pids", {})
        assert isinstance(pids, dict)
        alive = {name: _alive(pid) for name, pid in pids.items()}
        return {
            "running": all(alive.values()) and self._healthy(str(current["server"])),
            "server": current["server"],
            "kubeconfig": str(self.kubeconfig),
            "processes": {name: {"pid": pids[name], "alive": alive[name]} for name in pids},
        }

    # -- helpers --

    def _save(self, state: dict[str, object]) -> None:
        self._state_file.write_text(json.dumps(state, indent=2))

    def _spawn(self, name: str, args: list[str], logs: Path) -> int:
        log = open(logs / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child process
        proc = subprocess.Popen(
            [str(BIN / name), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        self._children.append(proc)
        return proc.pid

    @staticmethod
    def _etcd_args(data: Path, port: int, peer: int) -> list[str]:
        client, peer_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{peer}"
        return [
            "--name=default",
            f"--data-dir={data}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=default={peer_url}",
            "--unsafe-no-fsync",
            "--log-level=warn",
        ]

    @staticmethod
    def _apiserver_args(pki: Path, etcd_port: int, api_port: int) -> list[str]:
        return [
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={api_port}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--authorization-mode=RBAC",
            "--endpoint-reconciler-type=none",
            "--anonymous-auth=true",
            "--enable-priority-and-fairness=false",
            "--profiling=false",
            "--v=0",
        ]

    def _kcm_args(self, pki: Path) -> list[str]:
        return [
            f"--kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            "--secure-port=0",
            f"--controllers={','.join(CONTROLLERS)}",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            "--use-service-account-credentials=false",
            "--concurrent-gc-syncs=5",
            "--v=0",
        ]

    @staticmethod
    def _tcp_open(port: int) -> bool:
        with socket.socket() as sock:
            sock.settimeout(0.5)
            return sock.connect_ex(("127.0.0.1", port)) == 0

    @staticmethod
    def _healthy(server: str) -> bool:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        try:
            with urllib.request.urlopen(f"{server}/readyz", context=context, timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def _wait(self, check: object, timeout: float, what: str, logs: Path) -> None:
        assert callable(check)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.2)
        tail = (logs / f"{what}.log").read_text(errors="replace")[-3000:]
        raise ClusterError(f"{what} did not become ready within {timeout:.0f}s; log tail:\n{tail}")


def _alive(pid: object) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _terminate(pid: int, grace: float = 10.0) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            waited, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            waited = 0
        if waited == pid or not _alive(pid) or _zombie(pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except (OSError, IndexError):
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hack/cluster", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down", "status", "build", "kubeconfig"])
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE)
    args = parser.parse_args(argv)
    cluster = LocalCluster(args.state_dir)
    try:
        if args.command == "build":
            print(ensure_binaries())
        elif args.command == "up":
            started = time.monotonic()
            state = cluster.up()
            print(f"control plane ready at {state['server']} in {time.monotonic() - started:.1f}s")
            print(f"export KUBECONFIG={cluster.kubeconfig}")
            print(f"export PATH={BIN}:$PATH   # kubectl built from the same Kubernetes release")
        elif args.command == "down":
            cluster.down()
            print("control plane stopped")
        elif args.command == "kubeconfig":
            print(cluster.kubeconfig)
        else:
            print(json.dumps(cluster.status(), indent=2))
            return 0 if cluster.status().get("running") else 3
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
