"""Container images for the real node, built here without Docker or a registry, as docker-archive tars.

Each tar lands in ``<cache>/images/<name>-<hash12>.tar``, the hash covering every input of the image
(sources, package lists, build options), so an image is rebuilt only when one of them changes. The
references, ``localhost/wpclone/<name>:<hash12>``, are what containerd lists after ``ctr images import``.

- pause: the pod sandbox (testenv/go/pause, a static Go program), for containerd's ``sandbox_image``.
- busybox: Debian's static busybox and its applets, for the tests' plain pods.
- wordpress: Debian's WordPress, Apache and PHP (mmdebstrap), laid out to honour the official
  ``wordpress`` image's contract (testenv/images/wordpress).
- wpclone: the repository's Dockerfile built with buildah over a python base made by mmdebstrap.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import io
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from testenv import binaries

NAMES = ("pause", "busybox", "wordpress", "wpclone")
REPOSITORY = "localhost/wpclone"
ROOT = Path(__file__).resolve().parents[1]
PAUSE_MODULE = ROOT / "testenv" / "go" / "pause"
WORDPRESS_FILES = ROOT / "testenv" / "images" / "wordpress"
BUSYBOX = Path("/bin/busybox")
# Bumped when the way images are assembled here changes, so every cached tar is rebuilt.
FORMAT = "1"
KEEP = 3  # tars kept per image (the newest): other checkouts sharing the cache may still use older ones
EPOCH = "1970-01-01T00:00:00Z"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SUITE = "bookworm"
# Merged /usr through usr-is-merged, not the usrmerge package, which drags perl (25 MB) into every image.
MERGED_USR = "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr"
# The machine's trusted CAs, lent to the wpclone build's RUN steps (an egress proxy may re-sign TLS).
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# Documentation, manual pages and translations: nothing in a container reads them.
SLIM = ("--dpkgopt=path-exclude=/usr/share/doc/*", "--dpkgopt=path-include=/usr/share/doc/*/copyright",
        "--dpkgopt=path-exclude=/usr/share/man/*", "--dpkgopt=path-exclude=/usr/share/info/*",
        "--dpkgopt=path-exclude=/usr/share/locale/*", "--dpkgopt=path-include=/usr/share/locale/locale.alias")
WORDPRESS_PACKAGES = ("apache2", "libapache2-mod-php8.2", "php8.2-mysql", "php8.2-gd", "php8.2-curl", "php8.2-xml",
                      "php8.2-mbstring", "php8.2-zip", "php8.2-intl", "php8.2-sqlite3", "wordpress",
                      "wordpress-theme-twentytwentythree", "ca-certificates",
                      "php8.2-cli")  # compiles WordPress into opcache's file cache
# passwd: the Dockerfile's groupadd and useradd.
PYTHON_PACKAGES = ("python3", "python3-venv", "python-is-python3", "ca-certificates", "passwd")
# The wpclone image's build context: what the Dockerfile copies, and the files that shape the build.
WPCLONE_INPUTS = ("Dockerfile", ".dockerignore", "pyproject.toml", "constraints.txt", "README.md", "engine", "common",
                  "operator", "api", "cli")
SKIPPED = ("__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache")


# ---- input hashes (cheap: no build) ----

def _files(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            for folder, subfolders, names in os.walk(path):
                subfolders[:] = [name for name in subfolders if name not in SKIPPED]
                yield from (Path(folder) / name for name in names if not name.endswith(".pyc"))
        else:
            yield path


def input_hash(recipe: Iterable[str], paths: Iterable[Path] = (), root: Path = ROOT) -> str:
    """sha256 over the recipe's words and each file's name (relative to root), executable bit and content."""
    digest = hashlib.sha256()
    for word in (FORMAT, *recipe):
        digest.update(word.encode() + b"\0")
    named = sorted((str(path.relative_to(root)) if path.is_relative_to(root) else str(path), path)
                   for path in _files(paths))
    for name, path in named:
        executable = b"x" if os.stat(path).st_mode & 0o111 else b"-"
        digest.update(name.encode() + b"\0" + executable + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _wordpress_command(files: str) -> list[str]:
    hook = f'sh {shlex.quote(files + "/customize.sh")} "$1" {shlex.quote(files)}'
    # --skip=cleanup/run: Apache's pid and lock folders live in /run (the hook leaves only those there).
    return ["mmdebstrap", "--quiet", "--variant=apt", MERGED_USR, "--skip=cleanup/run", *SLIM,
            f"--include={','.join(WORDPRESS_PACKAGES)}", f"--customize-hook={hook}", SUITE]


def _python_command() -> list[str]:
    # pip (in the venvs the Dockerfile makes) trusts the system's CAs, as Debian's own pip does.
    pip_conf = f'printf "[global]\\ncert = {CA_BUNDLE}\\n" > "$1/etc/pip.conf"'
    return ["mmdebstrap", "--quiet", "--variant=apt", MERGED_USR, *SLIM, f"--include={','.join(PYTHON_PACKAGES)}",
            f"--customize-hook={pip_conf}", SUITE]


def _buildah_build_args(base: Path) -> list[str]:
    return ["--format", "docker", "--isolation", "chroot", "--build-arg", f"PYTHON_IMAGE=docker-archive:{base}"]


def _hash(name: str) -> str:
    if name == "pause":
        return input_hash(["pause", "go build -trimpath -ldflags=-s -w", "CGO_ENABLED=0"], [PAUSE_MODULE])
    if name == "busybox":
        if not BUSYBOX.exists():
            raise RuntimeError(f"{BUSYBOX} is missing: install Debian's busybox-static (make deps)")
        return input_hash(["busybox"], [BUSYBOX])
    if name == "wordpress":
        # The checkout's path is no input: the same files give the same image anywhere.
        return input_hash(["wordpress", *_wordpress_command("FILES")], [WORDPRESS_FILES])
    if name == "python":
        return input_hash(["python", *_python_command()])
    if name == "wpclone":
        return input_hash(["wpclone", *_buildah_build_args(Path("BASE")), _hash("python")],
                          [ROOT / path for path in WPCLONE_INPUTS])
    raise ValueError(f"unknown image {name!r}; known: {', '.join(NAMES)}")


def ref(name: str) -> str:
    """The image's reference, e.g. localhost/wpclone/pause:0123456789ab (hashes inputs, builds nothing)."""
    return f"{REPOSITORY}/{name}:{_hash(name)[:12]}"


def _ref_of(name: str, tar: Path) -> str:
    """The reference inside a built tar (its name carries the tag), whatever the inputs hash to by now."""
    return f"{REPOSITORY}/{name}:{tar.stem.rsplit('-', 1)[1]}"


def images_dir() -> Path:
    return binaries.cache_root() / "images"


def tar_path(name: str) -> Path:
    return images_dir() / f"{name}-{_hash(name)[:12]}.tar"


# ---- docker-archive writing ----

@dataclass(frozen=True)
class Entry:
    """One member of a layer: a directory (neither source nor link), a file (source or data) or a symlink."""
    name: str
    mode: int = 0o755
    source: Path | None = None
    data: bytes | None = None
    link: str | None = None


def write_layer(path: Path, entries: Iterable[Entry]) -> None:
    """An uncompressed layer tar, owned by root, with fixed times (the same entries give the same bytes)."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as layer:
        for entry in entries:
            info = tarfile.TarInfo(entry.name)
            info.mode = entry.mode
            data = entry.source.read_bytes() if entry.source is not None else entry.data
            if entry.link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, entry.link
            elif data is not None:
                info.size = len(data)
            else:
                info.type = tarfile.DIRTYPE
            layer.addfile(info, None if data is None else io.BytesIO(data))


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _architecture() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


@contextlib.contextmanager
def _atomic(out: Path) -> Iterator[Path]:
    """A temporary name beside out, renamed to out only once complete: no half-written tar looks finished."""
    temporary = out.with_name(f".{out.name}.{os.getpid()}.partial")
    try:
        yield temporary
        os.replace(temporary, out)
    finally:
        temporary.unlink(missing_ok=True)


def write_docker_archive(out: Path, layer: Path, image_ref: str, config: dict[str, object]) -> None:
    """A one-layer docker-archive (what `docker save` writes): manifest.json, the image config, the layer."""
    diff_id = _sha256_file(layer)
    image_config = {
        "architecture": _architecture(), "os": "linux", "created": EPOCH, "config": config,
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]},
        "history": [{"created": EPOCH, "created_by": "testenv/images.py"}],
    }
    config_bytes = json.dumps(image_config, sort_keys=True).encode()
    config_name = f"{hashlib.sha256(config_bytes).hexdigest()}.json"
    layer_name = f"{diff_id}/layer.tar"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [image_ref], "Layers": [layer_name]}]).encode()
    with _atomic(out) as temporary, tarfile.open(temporary, "w") as archive:
        for name, data in ((config_name, config_bytes), ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            archive.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo(layer_name)
        info.size, info.mode = layer.stat().st_size, 0o644
        with layer.open("rb") as stream:
            archive.addfile(info, stream)


def _run(command: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
    """Run quietly; on failure show the command's output, which says why."""
    result = subprocess.run(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stdout)
        raise subprocess.CalledProcessError(result.returncode, command)


# ---- the builders: each writes the tar of image_ref to out, with a scratch folder work ----

def _build_pause(image_ref: str, out: Path, work: Path) -> None:
    binary = work / "pause"
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false"}
    _run(["go", "build", "-trimpath", "-ldflags=-s -w", "-o", str(binary), "."], cwd=PAUSE_MODULE, env=env)
    write_layer(work / "layer.tar", [Entry("pause", source=binary)])
    # 65535: the user of the upstream pause image; the sandbox needs no privilege.
    write_docker_archive(out, work / "layer.tar", image_ref,
                         {"Entrypoint": ["/pause"], "User": "65535:65535", "Env": [f"PATH={PATH}"]})


def _build_busybox(image_ref: str, out: Path, work: Path) -> None:
    applets = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True, check=True).stdout.split()
    entries = [Entry("bin"), Entry("bin/busybox", source=BUSYBOX),
               *(Entry(f"bin/{applet}", 0o777, link="busybox") for applet in sorted(set(applets) - {"busybox"})),
               Entry("tmp", 0o1777), Entry("etc"),
               # Names for uid/gid 0 and nobody: `ls -l`, `id` and `chown root` look them up.
               Entry("etc/passwd", 0o644, data=b"root:x:0:0:root:/root:/bin/sh\n"
                                                b"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"),
               Entry("etc/group", 0o644, data=b"root:x:0:\nnogroup:x:65534:\n")]
    write_layer(work / "layer.tar", entries)
    write_docker_archive(out, work / "layer.tar", image_ref, {"Cmd": ["sh"], "Env": [f"PATH={PATH}"]})


def _mmdebstrap(command: list[str], work: Path) -> Path:
    rootfs = work / "rootfs.tar"
    _run([*command, str(rootfs)])
    return rootfs


def _build_wordpress(image_ref: str, out: Path, work: Path) -> None:
    rootfs = _mmdebstrap(_wordpress_command(str(WORDPRESS_FILES)), work)
    write_docker_archive(out, rootfs, image_ref, {
        "Entrypoint": ["docker-entrypoint.sh"], "Cmd": ["apache2-foreground"], "WorkingDir": "/var/www/html",
        "ExposedPorts": {"80/tcp": {}}, "Env": [f"PATH={PATH}"],
    })


def _build_python(image_ref: str, out: Path, work: Path) -> None:
    rootfs = _mmdebstrap(_python_command(), work)
    write_docker_archive(out, rootfs, image_ref, {"Cmd": ["python3"], "Env": [f"PATH={PATH}", "LANG=C.UTF-8"]})


def _buildah(*args: str) -> list[str]:
    # Storage of its own under the cache: the machine's default storage stays untouched.
    store = binaries.cache_root() / "buildah"
    return ["buildah", "--storage-driver", "vfs", "--root", str(store / "storage"), "--runroot", str(store / "run"),
            *args]


def _buildah_clean() -> None:
    # buildah's own removal, never rm -rf: an interrupted RUN step may leave /proc or /dev mounted inside.
    _run(_buildah("rm", "--all"))
    _run(_buildah("rmi", "--all", "--force"))


def _build_wpclone(image_ref: str, out: Path, work: Path) -> None:
    base = _ensure("python")
    _buildah_clean()
    try:
        # Build time only: the bundle replaces the base's own file of the same name, so no trace stays in the image.
        trust = ["--volume", f"{CA_BUNDLE}:{CA_BUNDLE}:ro"] if CA_BUNDLE.exists() else []
        _run(_buildah("bud", *_buildah_build_args(base), *trust, "--tag", image_ref,
                      "--file", str(ROOT / "Dockerfile"), str(ROOT)))
        with _atomic(out) as temporary:
            _run(_buildah("push", "--quiet", image_ref, f"docker-archive:{temporary}:{image_ref}"))
    finally:
        _buildah_clean()


BUILDERS: dict[str, Callable[[str, Path, Path], None]] = {
    "pause": _build_pause, "busybox": _build_busybox, "wordpress": _build_wordpress, "python": _build_python,
    "wpclone": _build_wpclone,
}


def _prune(name: str, keep: Path) -> None:
    older = sorted((path for path in images_dir().glob(f"{name}-*.tar") if path != keep),
                   key=lambda path: path.stat().st_mtime, reverse=True)
    for path in older[KEEP - 1:]:
        path.unlink(missing_ok=True)


def _ensure(name: str) -> Path:
    """The image's tar, built if missing; built again if an input changed while it was being built."""
    while True:
        tag = _hash(name)[:12]
        out = images_dir() / f"{name}-{tag}.tar"
        if out.exists():
            return out
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix=f".{name}-", dir=images_dir()) as work:
            BUILDERS[name](f"{REPOSITORY}/{name}:{tag}", out, Path(work))
        print(f"[testenv] built image {name} in {time.monotonic() - started:.0f}s "
              f"({out.stat().st_size / 1e6:.0f} MB, {out})", flush=True)
        _prune(name, out)


@contextlib.contextmanager
def _lock() -> Iterator[None]:
    """One builder at a time per cache: two test sessions starting together share the work."""
    images_dir().mkdir(parents=True, exist_ok=True)
    with (images_dir() / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        # Holding the lock, any other hidden entry is the partial tar or scratch folder of a killed build.
        for stale in images_dir().glob(".*"):
            if stale.is_dir():
                shutil.rmtree(stale)
            elif stale.name != ".lock":
                stale.unlink()
        yield


TOOLS = {"pause": ("go",), "busybox": (), "wordpress": ("mmdebstrap",), "wpclone": ("mmdebstrap", "buildah")}


def build(names: Iterable[str] = NAMES) -> dict[str, Path]:
    """Build the images that are missing from the cache; return the tar of each."""
    wanted = list(dict.fromkeys(names))
    for name in wanted:
        if name not in NAMES:
            raise ValueError(f"unknown image {name!r}; known: {', '.join(NAMES)}")
        missing = [tool for tool in TOOLS[name] if shutil.which(tool) is None]
        if missing and not tar_path(name).exists():
            raise RuntimeError(f"building image {name} needs {', '.join(missing)}: make deps")
    with _lock():
        return {name: _ensure(name) for name in wanted}


def import_into(ctr: list[str], names: Iterable[str] = NAMES) -> None:
    """Import each image into the containerd behind `ctr` (a command prefix with address and namespace),
    building it first if needed; images containerd already lists are skipped."""
    tars = build(names)
    listed = set(subprocess.run([*ctr, "images", "ls", "-q"], capture_output=True, text=True,
                                check=True).stdout.split())
    for name, tar in tars.items():
        if _ref_of(name, tar) in listed:
            continue
        started = time.monotonic()
        subprocess.run([*ctr, "images", "import", str(tar)], check=True, stdout=subprocess.DEVNULL)
        print(f"[testenv] imported image {name} in {time.monotonic() - started:.0f}s", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testenv.images",
                                     description="Build the node's images (those missing) and print each "
                                                 "reference and tar.")
    parser.add_argument("words", nargs="*", metavar="[build] NAME", help=f"images: {', '.join(NAMES)} (default: all)")
    args = parser.parse_args(argv)
    names = [word for word in args.words if word != "build"] or list(NAMES)
    unknown = [name for name in names if name not in NAMES]
    if unknown:
        parser.error(f"unknown image(s) {', '.join(unknown)}; known: {', '.join(NAMES)}")
    for name, tar in build(names).items():
        print(f"{_ref_of(name, tar)}  {tar}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
