"""Container engines for ``make image-test``: which one builds, and how an image is run.

Building: Docker (with BuildKit, which ``RUN --mount`` needs) where its daemon answers,
else buildah. Running: ``docker run`` or ``podman run`` where they work; else the image's
root file system, mounted by buildah, is run by ``chroot`` in a mount namespace of its own,
as a user that is not root, read-only but for a tmpfs ``/tmp`` (``podman run`` fails inside
some virtual machines, where crun cannot set rlimits; the chroot needs only root).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# Where the RIE is put inside the running image, as AWS's instructions mount it.
RIE_IN_IMAGE = "/aws-lambda/aws-lambda-rie"
# The machine's CA bundle: a build behind a TLS-inspecting proxy needs it to reach the
# package index. It is mounted into the build's RUN steps only, never copied into a layer.
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
PROBE_TIMEOUT = 60.0


class MissingTool(Exception):
    """Something ``make image-test`` needs is not on this machine; the message names it."""


@dataclass(frozen=True)
class ImageConfig:
    """What running an image needs from its configuration."""

    env: dict[str, str]
    entrypoint: list[str]
    cmd: list[str]
    workdir: str


@dataclass(frozen=True)
class RunSpec:
    """One run of an image: the RIE as its entrypoint, ``command`` as its arguments."""

    image: str
    command: list[str]  # what follows the RIE: the image's ENTRYPOINT + CMD, or an override
    env: dict[str, str]  # the function's configuration, on top of the image's ENV
    rie: Path  # the RIE binary on this machine
    user: str = "993:993"  # Lambda's sandbox user is not root


def run(argv: Sequence[str], timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``argv``, its output captured; a failure raises with that output."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} exited with {done.returncode}:\n{done.stdout}{done.stderr}"
        )
    return done


def works(argv: Sequence[str]) -> bool:
    """True when ``argv`` exists and exits 0 within ``PROBE_TIMEOUT``."""
    try:
        done = subprocess.run(argv, capture_output=True, timeout=PROBE_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


class Engine:
    """Builds, inspects and runs images through one program (docker, podman); the
    subclasses say how it builds, and buildah how it runs without a working ``run``."""

    name = "engine"

    def __init__(self, program: str) -> None:
        self.program = program

    def build(
        self, dockerfile: Path, context: Path, tag: str, build_args: Mapping[str, str]
    ) -> None:
        """Build ``dockerfile`` in ``context`` as ``tag``."""
        run(self.build_argv(dockerfile, context, tag, build_args))

    def build_argv(
        self, dockerfile: Path, context: Path, tag: str, build_args: Mapping[str, str]
    ) -> list[str]:
        """The command building ``dockerfile`` in ``context`` as ``tag``."""
        args = [f"--build-arg={name}={value}" for name, value in build_args.items()]
        return [*self.build_command(), *args, "-f", str(dockerfile), "-t", tag, str(context)]

    def build_command(self) -> list[str]:
        raise NotImplementedError

    def exists(self, ref: str) -> bool:
        """True when image ``ref`` is in local storage."""
        return works([self.program, "image", "inspect", ref])

    def pull(self, ref: str) -> bool:
        """Pull ``ref``; False when it cannot be pulled (no registry reachable, say)."""
        return works([self.program, "pull", "-q", ref])

    def import_rootfs(self, rootfs: Path, tag: str, env: Mapping[str, str], cmd: str) -> None:
        """Make image ``tag`` of the directory ``rootfs``, with ``env`` and ``CMD [cmd]``."""
        changes = [f"--change=ENV {name}={value}" for name, value in env.items()]
        changes.append(f"--change=CMD [{json.dumps(cmd)}]")
        with subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE) as tar:
            subprocess.run(
                [self.program, "import", *changes, "-", tag], stdin=tar.stdout, check=True
            )
        if tar.returncode != 0:
            raise RuntimeError(f"tar of {rootfs} exited with {tar.returncode}")

    def inspect(self, ref: str) -> ImageConfig:
        """The configuration of image ``ref``."""
        document = json.loads(run([self.program, "image", "inspect", ref]).stdout)
        document = document[0] if isinstance(document, list) else document
        config = document.get("Config") or document["OCIv1"]["config"]
        return image_config(config)

    def size(self, ref: str) -> str:
        """The image's size as the engine tells it (e.g. ``247 MB``)."""
        return run([self.program, "images", "--format", "{{.Size}}", ref]).stdout.strip()

    @contextmanager
    def running(self, spec: RunSpec, log: Path) -> Iterator[subprocess.Popen[bytes]]:
        """The image running under the RIE, its output in ``log``; stopped on exit."""
        # The client passes the variables on by name.
        process = start_logged(self.run_argv(spec), {**os.environ, **spec.env}, log)
        try:
            yield process
        finally:
            stop(process)

    def runner(self, ref: str) -> str:
        """How images are run here (for the report)."""
        return f"{Path(self.program).name} run"

    def run_argv(self, spec: RunSpec) -> list[str]:
        """``<engine> run`` as AWS documents it for the RIE, on the host's network; the
        function's configuration is passed by name, from the client's environment."""
        return [
            self.program, "run", "--rm", "--network=host", "--read-only", "--tmpfs=/tmp",
            f"--user={spec.user}", f"--volume={spec.rie}:{RIE_IN_IMAGE}:ro",
            f"--entrypoint={RIE_IN_IMAGE}", *(f"--env={name}" for name in spec.env),
            spec.image, *spec.command,
        ]  # fmt: skip


class Docker(Engine):
    """The Docker client, with a daemon that answers (BuildKit builds ``RUN --mount``)."""

    name = "docker"

    def build_command(self) -> list[str]:
        return [self.program, "build", "-q"]


class Buildah(Engine):
    """buildah builds; images run by ``podman run`` where it works, else by chroot."""

    name = "buildah"

    def __init__(self, program: str, podman: str | None, ca_bundle: Path | None) -> None:
        super().__init__(program)
        self.podman = podman
        self.ca_bundle = ca_bundle
        self.podman_runs: bool | None = None  # probed once, on the first run

    def build_command(self) -> list[str]:
        ca = [f"--volume={self.ca_bundle}:{self.ca_bundle}:ro"] if self.ca_bundle else []
        return [self.program, "build", "-q", "--layers", "--isolation=chroot", *ca]

    def exists(self, ref: str) -> bool:
        return works([self.program, "inspect", "--type=image", ref])

    def import_rootfs(self, rootfs: Path, tag: str, env: Mapping[str, str], cmd: str) -> None:
        container = run([self.program, "from", "scratch"]).stdout.strip()
        try:
            target = run([self.program, "mount", container]).stdout.strip()
            run(["cp", "-a", f"{rootfs}/.", target])
            config = [f"--env={name}={value}" for name, value in env.items()]
            run([self.program, "config", *config, f"--cmd={json.dumps([cmd])}", container])
            run([self.program, "commit", "-q", container, tag])
        finally:
            run([self.program, "rm", container])

    def inspect(self, ref: str) -> ImageConfig:
        document = json.loads(run([self.program, "inspect", "--type=image", ref]).stdout)
        return image_config(document["OCIv1"]["config"])

    def runs_containers(self, ref: str) -> bool:
        """True when ``podman run`` works here (it does not in every virtual machine)."""
        if self.podman_runs is None:
            self.podman_runs = self.podman is not None and works(
                [self.podman, "run", "--rm", "--network=host", "--entrypoint=true", ref]
            )
        return self.podman_runs

    def runner(self, ref: str) -> str:
        if self.podman is not None and self.runs_containers(ref):
            return "podman run"
        why = "podman run does not work here" if self.podman else "podman is not installed"
        return f"chroot into the image's root file system ({why})"

    @contextmanager
    def running(self, spec: RunSpec, log: Path) -> Iterator[subprocess.Popen[bytes]]:
        if self.podman is not None and self.runs_containers(spec.image):
            with Engine(self.podman).running(spec, log) as process:
                yield process
            return
        with self.mounted(spec.image) as root:
            config = self.inspect(spec.image)
            argv = chroot_argv(root, spec, config.workdir or "/")
            process = start_logged(argv, {**config.env, **spec.env}, log)
            try:
                yield process
            finally:
                stop(process)

    @contextmanager
    def mounted(self, ref: str) -> Iterator[Path]:
        """A throw-away working container of ``ref``, its root file system mounted."""
        container = run([self.program, "from", "-q", "--pull=never", ref]).stdout.strip()
        try:
            root = Path(run([self.program, "mount", container]).stdout.strip())
            # The mount point of the RIE, in the working container's own layer (as a volume
            # mount point would be); the image is not changed.
            (root / RIE_IN_IMAGE.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
            (root / RIE_IN_IMAGE.lstrip("/")).touch()
            yield root
        finally:
            run([self.program, "rm", container])


# Runs in a new mount namespace (unshare --mount): the image's root file system bound on
# itself, the RIE, /proc, /dev and a tmpfs /tmp mounted in it, then made read-only; then the
# RIE started in it as the function's user. The namespace, and so every mount, ends with it.
CHROOT_SCRIPT = r"""
set -eu
root=$1 rie=$2 user=$3 workdir=$4
shift 4
mount --make-rprivate /
mount --bind "$root" "$root"
mount --bind "$rie" "$root/aws-lambda/aws-lambda-rie"
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
mount -t tmpfs -o mode=1777,size=512m tmpfs "$root/tmp"
mount -o remount,bind,ro "$root"
exec unshare --root="$root" --wd="$workdir" --setgid="${user#*:}" --setuid="${user%%:*}" -- "$@"
"""


def chroot_argv(root: Path, spec: RunSpec, workdir: str) -> list[str]:
    """The command running ``spec`` in the image's root file system ``root`` by chroot."""
    unshare = shutil.which("unshare") or "unshare"
    return [
        unshare, "--mount", "--propagation=private", "sh", "-c", CHROOT_SCRIPT, "sh",
        str(root), str(spec.rie), spec.user, workdir, RIE_IN_IMAGE, *spec.command,
    ]  # fmt: skip


def start_logged(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``argv`` started in a session of its own, its output (both streams) in ``log``."""
    with open(log, "wb") as output:
        return subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop ``process`` and everything in its session (the RIE and the runtime under it)."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, 15)
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()
        except ProcessLookupError:
            process.wait()


def image_config(config: Mapping[str, object]) -> ImageConfig:
    """An ``ImageConfig`` from an OCI or Docker image configuration document."""

    def strings(value: object) -> list[str]:
        return [str(item) for item in value] if isinstance(value, list) else []

    env = dict(item.partition("=")[::2] for item in strings(config.get("Env")))
    return ImageConfig(
        env=env,
        entrypoint=strings(config.get("Entrypoint")),
        cmd=strings(config.get("Cmd")),
        workdir=str(config.get("WorkingDir") or ""),
    )


def choose_engine() -> Engine:
    """Docker where its daemon answers, else buildah; ``MissingTool`` when neither is here."""
    docker = shutil.which("docker")
    if docker is not None and works([docker, "info"]):
        return Docker(docker)
    buildah = shutil.which("buildah")
    if buildah is not None:
        if shutil.which("podman") is None and os.geteuid() != 0:
            raise MissingTool(
                "buildah is here but neither podman nor root is: the chroot fallback that "
                "runs the image needs root"
            )
        ca_bundle = HOST_CA_BUNDLE if HOST_CA_BUNDLE.is_file() else None
        return Buildah(buildah, shutil.which("podman"), ca_bundle)
    client = f" ({docker} is installed but its daemon does not answer)" if docker else ""
    raise MissingTool(
        "no container engine: make image-test needs buildah (apt-get install buildah) or "
        f"Docker with a running daemon{client}"
    )
