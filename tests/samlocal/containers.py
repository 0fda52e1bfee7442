"""Docker for `sam local invoke` on a machine without registry access: daemon, network, Lambda base image.

- ``ensure_docker``: a running Docker daemon. Debian's ``dockerd`` is started in the background (log
  file, own session) when none answers, after ``apt-get install docker.io`` if allowed and missing.
  Idempotent: a daemon that answers is left alone.
- ``local_invoke_network``: an *internal* Docker network (no route off the machine). Its gateway is an
  address of this machine that only its containers reach: the local cloud's moto server listens there
  for them, and a handler that would miss the local endpoint cannot reach AWS either.
- ``choose_image``: the official base image (public.ecr.aws/lambda/python:3.13) when it is on this
  machine or its registry can be resolved, else the stand-in; or forced with ``official`` / ``local``.
- ``ensure_standin_image``: the stand-in, built once: ``debootstrap`` of Debian trixie (which ships
  python3.13) + the recipe in ``docker/lambda-python3.13/`` (awslambdaric, boto3, /var/runtime/bootstrap),
  imported with ``docker import``. The image is labelled with a hash of the recipe and rebuilt only when
  that changes; the root file system tarball is cached, so a deleted image is re-imported in seconds.
  SAM adds the runtime interface emulator (/var/rapid) and the layers (/opt) on top of it itself.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from jobgraph.core.errors import JobGraphError

NETWORK = "jobgraph-local-invoke"
STANDIN_IMAGE = "jobgraph/lambda-python3.13:local"
OFFICIAL_REPOSITORY = "public.ecr.aws/lambda/python"
RUNTIME_PYTHON = "3.13"
DEBIAN_SUITE = "trixie"  # the Debian release whose python3 is 3.13
DEFAULT_DEBIAN_MIRROR = "http://deb.debian.org/debian"
RECIPE_LABEL = "org.jobgraph.recipe"
DOCKERD_LOG = Path(os.environ.get("JOBGRAPH_DOCKERD_LOG", "/var/log/jobgraph-dockerd.log"))
DAEMON_START_TIMEOUT_S = 60
# Bumped when the build steps below change in a way the recipe files do not show.
_BUILDER_VERSION = "1"

Log = Callable[[str], None]


class DockerUnavailable(JobGraphError):
    """No Docker daemon can be used here (the reason says why)."""


class ImageBuildError(JobGraphError):
    """The stand-in Lambda image could not be built."""


def _quiet(message: str) -> None:
    del message


def _run(args: list[str], *, timeout: float = 60, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=check, **kwargs)


def docker_cli() -> str:
    cli = shutil.which("docker")
    if cli is None:
        raise DockerUnavailable("no docker command on PATH (Debian: apt-get install docker.io)")
    return cli


def daemon_answers() -> bool:
    try:
        return _run([docker_cli(), "info", "--format", "{{.ServerVersion}}"], timeout=20, check=False).returncode == 0
    except (DockerUnavailable, subprocess.TimeoutExpired):
        return False


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def apt_install(packages: list[str], log: Log) -> None:
    """``apt-get install`` (after one ``apt-get update``), for the Debian tools this module needs."""
    if not _is_root() or shutil.which("apt-get") is None:
        raise DockerUnavailable(f"{' '.join(packages)} missing and cannot be installed here (needs root and apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    log(f"installing {' '.join(packages)} (apt-get)")
    try:
        _run(["apt-get", "update", "-qq"], timeout=600, env=env)
        _run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages], timeout=1200, env=env)
    except subprocess.CalledProcessError as exc:
        raise DockerUnavailable(f"apt-get install {' '.join(packages)} failed: {exc.stderr.strip()[-500:]}") from None


def _live_pid(pidfile: Path) -> int | None:
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def ensure_docker(*, install: bool = False, log: Log = _quiet, log_file: Path = DOCKERD_LOG) -> str:
    """A Docker daemon that answers, started if needed; returns how (``running``/``started``).

    Raises DockerUnavailable with the reason when none can be had (no dockerd and ``install`` is off,
    not root, the daemon exits or does not answer within a minute).
    """
    if daemon_answers():
        return "running"
    if shutil.which("dockerd") is None:
        if not install:
            raise DockerUnavailable(
                "no Docker daemon answers and dockerd is not installed (make docker-up installs it)"
            )
        apt_install(["docker.io"], log)
        if daemon_answers():  # a package that starts its service itself
            return "started"
    if not _is_root():
        raise DockerUnavailable("no Docker daemon answers, and starting dockerd needs root")
    pid = _live_pid(Path("/var/run/docker.pid"))
    process = None
    if pid is None:
        log(f"starting dockerd (log: {log_file})")
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(log_file, "ab") as output:
            # its own session: Ctrl-C in the terminal that ran `make` must not take the daemon down
            process = subprocess.Popen(
                [shutil.which("dockerd")],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
    else:
        log(f"dockerd (pid {pid}) is starting; waiting for it")
    deadline = time.monotonic() + DAEMON_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if daemon_answers():
            return "started"
        if process is not None and process.poll() is not None:
            raise DockerUnavailable(f"dockerd exited with code {process.returncode}: {_tail(log_file)}")
        time.sleep(0.5)
    raise DockerUnavailable(f"dockerd did not answer within {DAEMON_START_TIMEOUT_S} s: {_tail(log_file)}")


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


def local_invoke_network(name: str = NETWORK) -> str:
    """The internal network's gateway address (created if missing); checked to be a private address."""
    cli = docker_cli()
    inspected = _run([cli, "network", "inspect", name], check=False)
    if inspected.returncode != 0:
        _run([cli, "network", "create", "--internal", "--label", "org.jobgraph.purpose=sam-local-invoke", name])
        inspected = _run([cli, "network", "inspect", name])
    (network,) = json.loads(inspected.stdout)
    if not network.get("Internal"):
        raise DockerUnavailable(
            f"docker network {name} exists but is not internal; remove it (docker network rm {name})"
        )
    gateways = [c.get("Gateway") for c in (network.get("IPAM") or {}).get("Config") or [] if c.get("Gateway")]
    if not gateways:
        raise DockerUnavailable(f"docker network {name} has no gateway address")
    gateway = ipaddress.ip_address(gateways[0])
    if not gateway.is_private or gateway.is_loopback:
        raise DockerUnavailable(f"docker network {name}: gateway {gateway} is not a private address")
    return str(gateway)


def docker_arch() -> str:
    """Lambda's name for this machine's architecture (the images here run natively only)."""
    return {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}[platform.machine().lower()]


def official_image(arch: str) -> str:
    return f"{OFFICIAL_REPOSITORY}:{RUNTIME_PYTHON}-{arch}"


def image_labels(tag: str) -> dict[str, str] | None:
    """The labels of a local image, or None when there is no image with that tag."""
    inspected = _run([docker_cli(), "image", "inspect", tag], check=False)
    if inspected.returncode != 0:
        return None
    (image,) = json.loads(inspected.stdout)
    return (image.get("Config") or {}).get("Labels") or {}


def registry_resolves(host: str = "public.ecr.aws") -> bool:
    """Whether the registry's name resolves: a name lookup, no connection to it."""
    try:
        socket.getaddrinfo(host, 443, proto=socket.IPPROTO_TCP)
    except OSError:
        return False
    return True


@dataclass(frozen=True)
class ImageChoice:
    kind: str  # "official" or "local"
    image: str
    reason: str
    pull: bool = False  # SAM pulls the official image (not on this machine yet)

    def sam_args(self) -> list[str]:
        """Options for `sam local invoke`: the image to run and whether SAM may pull."""
        if self.kind == "official":
            return [] if self.pull else ["--skip-pull-image"]
        return ["--invoke-image", self.image, "--skip-pull-image"]


def choose_image(mode: str, arch: str) -> ImageChoice:
    """``official`` | ``local`` | ``auto`` (official when present or its registry resolves, else local)."""
    official = official_image(arch)
    if mode not in ("auto", "official", "local"):
        raise ValueError(f"LAMBDA_IMAGE must be auto, official or local, not {mode!r}")
    if mode == "local":
        return ImageChoice("local", STANDIN_IMAGE, "LAMBDA_IMAGE=local")
    present = image_labels(official) is not None
    if mode == "official":
        return ImageChoice("official", official, "LAMBDA_IMAGE=official", pull=not present)
    if present:
        return ImageChoice("official", official, f"{official} is on this machine")
    if registry_resolves():
        return ImageChoice("official", official, "public.ecr.aws resolves: SAM pulls the official image", pull=True)
    return ImageChoice("local", STANDIN_IMAGE, "no container registry reachable: stand-in image")


def recipe_hash(recipe_dir: Path, arch: str) -> str:
    digest = hashlib.sha256(f"{_BUILDER_VERSION}:{DEBIAN_SUITE}:{arch}".encode())
    for path in sorted(p for p in recipe_dir.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(path.relative_to(recipe_dir).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


_WHEEL_PLATFORMS = (
    "manylinux_2_34",
    "manylinux_2_28",
    "manylinux_2_17",
    "manylinux2014",
    "manylinux_2_5",
    "manylinux1",
)


def _build_rootfs(recipe_dir: Path, rootfs: Path, arch: str, mirror: str, log: Log) -> None:
    if shutil.which("debootstrap") is None:
        apt_install(["debootstrap"], log)
    debian_arch = {"x86_64": "amd64", "arm64": "arm64"}[arch]
    log(f"debootstrap {DEBIAN_SUITE} (minbase + python{RUNTIME_PYTHON}) from {mirror}")
    started = time.monotonic()
    _run(
        ["debootstrap", "--variant=minbase", f"--arch={debian_arch}", f"--include=python{RUNTIME_PYTHON}",
         DEBIAN_SUITE, str(rootfs), mirror],
        timeout=1800,
    )  # fmt: skip
    log(f"debootstrap done in {time.monotonic() - started:.0f} s")
    for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for path in (rootfs / cache).glob("*"):
            if path.is_file():
                path.unlink()
    site = rootfs / f"usr/local/lib/python{RUNTIME_PYTHON}/dist-packages"
    wheel_arch = {"x86_64": "x86_64", "arm64": "aarch64"}[arch]
    log(f"pip: {', '.join(_requirements(recipe_dir))} -> {site.relative_to(rootfs)}")
    platforms = [arg for tag in _WHEEL_PLATFORMS for arg in ("--platform", f"{tag}_{wheel_arch}")]
    _run(
        [sys.executable, "-m", "pip", "install", "--quiet",
         "--disable-pip-version-check", "--no-compile", "--only-binary=:all:", "--implementation", "cp",
         "--python-version", RUNTIME_PYTHON, *platforms, "--target", str(site),
         "-r", str(recipe_dir / "requirements.txt")],
        timeout=900,
    )  # fmt: skip
    # bytecode compiled by the image's own interpreter, as the official image ships it (faster cold starts)
    inside = "/" + site.relative_to(rootfs).as_posix()
    _run(["chroot", str(rootfs), f"python{RUNTIME_PYTHON}", "-m", "compileall", "-q", inside], timeout=600)
    runtime = rootfs / "var/runtime"
    runtime.mkdir(parents=True, exist_ok=True)
    for name, mode in (("bootstrap", 0o755), ("bootstrap.py", 0o644)):
        shutil.copyfile(recipe_dir / name, runtime / name)
        (runtime / name).chmod(mode)
    for folder in ("var/task", "opt"):
        (rootfs / folder).mkdir(parents=True, exist_ok=True)


def _requirements(recipe_dir: Path) -> list[str]:
    lines = (recipe_dir / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


@dataclass(frozen=True)
class StandinImage:
    tag: str
    recipe: str
    action: str  # "cached" (tag present), "imported" (from the cached tarball) or "built"
    seconds: float


def ensure_standin_image(
    recipe_dir: Path,
    cache_dir: Path,
    *,
    tag: str = STANDIN_IMAGE,
    arch: str | None = None,
    mirror: str | None = None,
    log: Log = _quiet,
) -> StandinImage:
    """The stand-in Lambda base image under ``tag``, built (or re-imported) only when missing or stale."""
    started = time.monotonic()
    arch = arch or docker_arch()
    recipe = recipe_hash(recipe_dir, arch)
    labels = image_labels(tag)
    if labels is not None and labels.get(RECIPE_LABEL) == recipe:
        return StandinImage(tag, recipe, "cached", time.monotonic() - started)
    if labels is not None:
        log(f"{tag} was built from another recipe ({labels.get(RECIPE_LABEL)}); rebuilding ({recipe})")
    tarball = cache_dir / f"lambda-python{RUNTIME_PYTHON}-{DEBIAN_SUITE}-{arch}-{recipe}.tar"
    action = "imported"
    if not tarball.is_file():
        action = "built"
        if not _is_root():
            raise ImageBuildError("building the stand-in image (debootstrap, chroot) needs root")
        cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="rootfs-", dir=cache_dir) as scratch:
            rootfs = Path(scratch, "rootfs")
            try:
                _build_rootfs(recipe_dir, rootfs, arch, mirror or DEFAULT_DEBIAN_MIRROR, log)
                partial = tarball.with_suffix(".tar.partial")
                _run(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(partial), "."], timeout=600)
                partial.replace(tarball)
            except subprocess.CalledProcessError as exc:
                detail = (exc.stderr or exc.stdout or "").strip()[-800:]
                raise ImageBuildError(f"{' '.join(map(str, exc.cmd[:3]))} failed: {detail}") from None
        for stale in cache_dir.glob(f"lambda-python{RUNTIME_PYTHON}-*.tar"):
            if stale != tarball:
                stale.unlink()
    log(f"docker import {tarball.name} -> {tag}")
    changes = [
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "ENV LANG=C.UTF-8",
        "ENV TZ=:/etc/localtime",
        "ENV LAMBDA_TASK_ROOT=/var/task",
        "ENV LAMBDA_RUNTIME_DIR=/var/runtime",
        "WORKDIR /var/task",
        f"LABEL {RECIPE_LABEL}={recipe}",
    ]
    arguments = [arg for change in changes for arg in ("--change", change)]
    try:
        _run([docker_cli(), "import", *arguments, str(tarball), tag], timeout=600)
        # fail here, not in the first invocation, if the runtime cannot even start
        _run(
            [docker_cli(), "run", "--rm", "--network", "none", "--entrypoint", f"python{RUNTIME_PYTHON}", tag,
             "-c", "import awslambdaric.bootstrap, boto3"],
            timeout=120,
        )  # fmt: skip
    except subprocess.CalledProcessError as exc:
        raise ImageBuildError(f"{' '.join(map(str, exc.cmd[:2]))} failed: {exc.stderr.strip()[-800:]}") from None
    return StandinImage(tag, recipe, action, time.monotonic() - started)
