"""A Docker engine of the tests' own, a Debian stand-in for the Dockerfile's base image, and image builds.

Nothing here pulls an image: the machines CI runs on reach no container registry. The tests start their own
``dockerd`` (root only; Debian's ``docker.io``) with a data root under the user cache, so that the stand-in base and
the build cache survive between runs on the same machine, and stop it by its pid when done. The stand-in is a
``debootstrap --variant=minbase`` Debian with Debian's Python, imported as an image under a tag of its own and
passed to the Dockerfile as ``PYTHON_IMAGE``; its pip reads plain PyPI through the host's CA certificates.
Builds use Debian's client (``/usr/bin/docker``: other clients may lack the legacy builder) with
``DOCKER_BUILDKIT=0``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

DOCKER = "/usr/bin/docker"
DOCKERD = "dockerd"
DEBOOTSTRAP = "debootstrap"
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR_ENV = "XSTILTS_DEBIAN_MIRROR"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
STANDIN_PACKAGES = ("python3", "python3-venv", "python-is-python3", "ca-certificates")
STANDIN_REPOSITORY = "xstilts-standin/python"
# pip inside the stand-in reads plain PyPI, never the host's pip configuration (mirrors, find-links, ...)
STANDIN_PIP_CONF = "[global]\nindex-url = https://pypi.org/simple\ncert = /etc/ssl/certs/ca-certificates.crt\n"
LABEL = "io.xstilts.test"  # on every container the tests run, so that leftovers of a killed run can be removed
SERVE_IMAGE = "xstilts-serve-cpu:0.1.0"  # the tag docs/deploy.md and compose.yaml use
CACHE_HOURS = 72  # untagged images (superseded builds, builder stages) older than this are pruned at start


def cache_root() -> Path:
    """Where the engine's data root lives between runs: ``$XDG_CACHE_HOME/xstilts/container`` (``~/.cache``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "xstilts" / "container"


def missing_tools() -> list[str]:
    """The tools (and privileges) the container tests need that this machine lacks, as install hints."""
    missing = []
    if not Path(DOCKER).is_file() or shutil.which(DOCKERD) is None:
        missing.append("Debian's docker.io (/usr/bin/docker and dockerd): .ci/install-system-deps installs it")
    if shutil.which(DEBOOTSTRAP) is None:
        missing.append("debootstrap: .ci/install-system-deps installs it")
    if os.geteuid() != 0:
        missing.append("root, to run dockerd")
    return missing


class CommandFailed(AssertionError):
    """A docker (or debootstrap) command exited non-zero; the message carries its output."""


@dataclass
class Engine:
    """A running ``dockerd`` on a socket of its own, and the client commands against it."""

    socket: Path
    process: subprocess.Popen | None
    pidfile: Path
    log: Path

    @classmethod
    def start(cls, data_root: Path, timeout: float = 60.0) -> Engine:
        """Start ``dockerd`` in the background and wait for its socket to answer.

        ``--userland-proxy=false``: ports published on 127.0.0.1 go through the kernel's NAT instead of
        ``docker-proxy``, which accepts every connection itself; a connection the server refuses is then refused
        to the client too, so that a test can tell a request the server never accepted from one it dropped.
        """
        data_root.mkdir(parents=True, exist_ok=True)
        run_dir = Path(tempfile.mkdtemp(prefix="xstilts-dockerd-"))
        socket, pidfile, log = run_dir / "docker.sock", run_dir / "dockerd.pid", run_dir / "dockerd.log"
        command = [
            DOCKERD,
            "--data-root",
            str(data_root),
            "--exec-root",
            str(run_dir / "exec"),
            "--pidfile",
            str(pidfile),
            "--host",
            f"unix://{socket}",
            "--userland-proxy=false",
        ]
        with open(log, "wb") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        engine = cls(socket=socket, process=process, pidfile=pidfile, log=log)
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise CommandFailed(f"dockerd exited with {process.returncode}:\n{engine.log_tail()}")
            if socket.exists() and engine.run("version", check=False, timeout=10).returncode == 0:
                break
            if time.monotonic() > deadline:
                engine.stop()
                raise CommandFailed(f"dockerd not answering after {timeout:.0f} s:\n{engine.log_tail()}")
            time.sleep(0.2)
        engine.remove_leftovers()
        return engine

    def log_tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the daemon by its pid (it stops its containers and its containerd), SIGKILL if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def env(self) -> dict[str, str]:
        """The environment for a client of this daemon (and docker-compose): its socket, the legacy builder."""
        return {**os.environ, "DOCKER_HOST": f"unix://{self.socket}", "DOCKER_BUILDKIT": "0"}

    def run(
        self, *args: str, check: bool = True, timeout: float = 120.0, stdin: bytes | None = None
    ) -> subprocess.CompletedProcess:
        """``docker ARGS`` against this daemon; output as text."""
        done = subprocess.run(
            [DOCKER, *args], env=self.env(), input=stdin, capture_output=True, timeout=timeout, check=False
        )
        result = subprocess.CompletedProcess(
            done.args, done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")
        )
        if check and result.returncode != 0:
            raise CommandFailed(f"docker {' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}")
        return result

    def has_image(self, tag: str) -> bool:
        return self.run("image", "inspect", tag, check=False).returncode == 0

    def image_size(self, tag: str) -> int:
        return int(self.run("image", "inspect", "--format", "{{.Size}}", tag).stdout)

    def inspect(self, name: str) -> dict:
        return json.loads(self.run("inspect", name).stdout)[0]

    def remove_leftovers(self) -> None:
        """Containers a killed earlier run left behind (they hold names and ports), and untagged images older than
        a few days (earlier builds). Recent ones stay: a multi-stage build's builder stage is an untagged image
        too, and the next build's layer cache."""
        ids = self.run("ps", "-aq", "--filter", f"label={LABEL}").stdout.split()
        if ids:
            self.run("rm", "-f", *ids, check=False)
        self.run("image", "prune", "--force", "--filter", f"until={CACHE_HOURS}h", check=False, timeout=300)


def host_ca_bundle() -> Path:
    """The host's CA bundle, which the stand-in trusts (HTTPS to PyPI may pass through the host's own CA)."""
    paths = ssl.get_default_verify_paths()
    for candidate in (os.environ.get("SSL_CERT_FILE"), paths.cafile, "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise CommandFailed("no CA bundle found on this machine (SSL_CERT_FILE or the OpenSSL default)")


def standin_tag() -> str:
    """The stand-in's tag: a digest of its recipe (suite, packages, pip settings, the host's CA bundle), so that a
    changed recipe builds a new one instead of reusing a stale cached one."""
    recipe = json.dumps([DEBIAN_SUITE, STANDIN_PACKAGES, STANDIN_PIP_CONF]).encode() + host_ca_bundle().read_bytes()
    return f"{STANDIN_REPOSITORY}:{DEBIAN_SUITE}-{hashlib.sha256(recipe).hexdigest()[:12]}"


def ensure_standin(engine: Engine, timeout: float = 900.0) -> tuple[str, float | None]:
    """The stand-in base's tag, built now if the engine's cache lacks it; with the build's seconds (None: cached).

    ``debootstrap --variant=minbase`` with Debian's Python 3.11, ``python-is-python3`` (the Dockerfile runs
    ``python``) and ``python3-venv``; the host's CA bundle; ``/etc/pip.conf`` naming plain PyPI. Apt's lists and
    caches are dropped. ``docker import`` turns the folder into an image.
    """
    tag = standin_tag()
    if engine.has_image(tag):
        return tag, None
    started = time.monotonic()
    mirror = os.environ.get(DEBIAN_MIRROR_ENV, DEBIAN_MIRROR)
    with tempfile.TemporaryDirectory(prefix="xstilts-standin-") as scratch:
        root = Path(scratch) / "root"
        command = [
            DEBOOTSTRAP,
            "--variant=minbase",
            f"--include={','.join(STANDIN_PACKAGES)}",
            DEBIAN_SUITE,
            str(root),
            mirror,
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            log = root / "debootstrap" / "debootstrap.log"
            detail = log.read_text(errors="replace")[-3000:] if log.exists() else done.stderr[-3000:]
            raise CommandFailed(f"debootstrap from {mirror} failed ({done.returncode}):\n{done.stdout[-2000:]}{detail}")
        shutil.copyfile(host_ca_bundle(), root / "etc" / "ssl" / "certs" / "ca-certificates.crt")
        (root / "etc" / "pip.conf").write_text(STANDIN_PIP_CONF)
        for junk in ("var/lib/apt/lists", "var/cache/apt"):
            shutil.rmtree(root / junk, ignore_errors=True)
            (root / junk).mkdir(parents=True)
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            [DOCKER, "import", "--change", "ENV LANG=C.UTF-8", "--change", 'CMD ["python3"]', "-", tag],
            stdin=tar.stdout,
            env=engine.env(),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        tar.stdout.close()
        if tar.wait() != 0 or imported.returncode != 0:
            raise CommandFailed(f"docker import of the stand-in failed:\n{imported.stdout}{imported.stderr}")
    for stale in engine.run("images", "--format", "{{.Repository}}:{{.Tag}}", STANDIN_REPOSITORY).stdout.split():
        if stale != tag:
            engine.run("rmi", stale, check=False)
    return tag, time.monotonic() - started


def build_target(engine: Engine, target: str, tag: str, build_args: dict[str, str], timeout: float = 900.0) -> float:
    """``docker build --target TARGET`` of the repository's Dockerfile with the legacy builder; its seconds."""
    args = [f"--build-arg={k}={v}" for k, v in build_args.items()]
    started = time.monotonic()
    engine.run("build", "--target", target, *args, "--tag", tag, str(ROOT), timeout=timeout)
    return time.monotonic() - started


PROMETHEUS_STANDIN = "xstilts-standin/prometheus"
PROMETHEUS_DOCKERFILE = """ARG BASE
FROM ${BASE}
COPY prometheus /bin/prometheus
RUN mkdir -p /prometheus && chown 65534:65534 /prometheus
USER 65534:65534
ENTRYPOINT ["/bin/prometheus"]
"""


def build_prometheus_standin(engine: Engine, base: str, binary: Path) -> str:
    """A stand-in for the ``prom/prometheus`` image: this machine's Debian ``prometheus`` binary on the stand-in
    base, laid out as the real image is (``/bin/prometheus`` as the entrypoint, ``/prometheus`` writable by
    ``nobody``, who runs it). Built with the engine's layer cache, so a second build takes a second."""
    digest = hashlib.sha256(base.encode() + binary.read_bytes()).hexdigest()[:12]
    tag = f"{PROMETHEUS_STANDIN}:{digest}"
    if engine.has_image(tag):
        return tag
    with tempfile.TemporaryDirectory(prefix="xstilts-prometheus-") as context:
        shutil.copy(binary, Path(context) / "prometheus")
        (Path(context) / "Dockerfile").write_text(PROMETHEUS_DOCKERFILE)
        engine.run("build", "--build-arg", f"BASE={base}", "--tag", tag, context, timeout=300)
    return tag
