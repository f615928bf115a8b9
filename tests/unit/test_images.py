"""The pure parts of testenv/images.py: input hashes, references and the docker-archive writer (nothing is built)."""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
from pathlib import Path

import pytest

from testenv import images


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_the_input_hash_follows_every_input_file_and_only_those(tmp_path: Path) -> None:
    root = tree(tmp_path / "a", {"Dockerfile": "FROM x\n", "operator/main.py": "print(1)\n"})
    paths = [root / "Dockerfile", root / "operator"]
    before = images.input_hash(["recipe"], paths, root)
    assert images.input_hash(["recipe"], paths, root) == before

    (root / "operator" / "__pycache__").mkdir()
    (root / "operator" / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"\0")
    (root / "operator" / "other.pyc").write_bytes(b"\0")
    assert images.input_hash(["recipe"], paths, root) == before, "bytecode is no input"

    (root / "operator" / "main.py").write_text("print(2)\n")
    changed = images.input_hash(["recipe"], paths, root)
    assert changed != before
    (root / "operator" / "new.py").write_text("")
    assert images.input_hash(["recipe"], paths, root) not in (before, changed)
    assert images.input_hash(["another recipe"], paths, root) != images.input_hash(["recipe"], paths, root)


def test_the_input_hash_sees_the_executable_bit_but_not_where_the_checkout_is(tmp_path: Path) -> None:
    first = tree(tmp_path / "one", {"entrypoint.sh": "exec \"$@\"\n"})
    second = tree(tmp_path / "two", {"entrypoint.sh": "exec \"$@\"\n"})
    assert images.input_hash([], [first], first) == images.input_hash([], [second], second)
    (second / "entrypoint.sh").chmod(0o755)
    assert images.input_hash([], [first], first) != images.input_hash([], [second], second)


def test_references_name_the_repository_and_twelve_hex_of_the_hash() -> None:
    for name in ("pause", "wordpress", "wpclone"):
        assert re.fullmatch(rf"localhost/wpclone/{name}:[0-9a-f]{{12}}", images.ref(name))
    assert len({images.ref(name) for name in ("pause", "wordpress", "wpclone")}) == 3
    with pytest.raises(ValueError):
        images.ref("nginx")


def test_the_wpclone_image_follows_its_python_base(monkeypatch: pytest.MonkeyPatch) -> None:
    before = images.ref("wpclone")
    monkeypatch.setattr(images, "PYTHON_PACKAGES", (*images.PYTHON_PACKAGES, "python3-yaml"))
    assert images.ref("wpclone") != before


def test_tars_live_in_the_cache_named_like_their_reference(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WPCLONE_CACHE", str(tmp_path))
    path = images.tar_path("pause")
    assert path.parent == tmp_path / "images"
    assert path.name == f"pause-{images.ref('pause').rsplit(':', 1)[1]}.tar"


def test_layers_are_written_the_same_way_every_time(tmp_path: Path) -> None:
    source = tmp_path / "tool"
    source.write_bytes(b"\x7fELF")
    entries = [images.Entry("bin"), images.Entry("bin/tool", source=source), images.Entry("bin/sh", 0o777, link="tool"),
               images.Entry("tmp", 0o1777), images.Entry("etc/passwd", 0o644, data=b"root:x:0:0::/:/bin/sh\n")]
    images.write_layer(tmp_path / "one.tar", entries)
    images.write_layer(tmp_path / "two.tar", entries)
    assert (tmp_path / "one.tar").read_bytes() == (tmp_path / "two.tar").read_bytes()
    with tarfile.open(tmp_path / "one.tar") as layer:
        members = {member.name: member for member in layer}
        assert members["bin"].isdir() and members["tmp"].mode == 0o1777
        assert members["bin/sh"].issym() and members["bin/sh"].linkname == "tool"
        assert layer.extractfile("bin/tool").read() == b"\x7fELF"  # type: ignore[union-attr]
        assert {member.uid for member in members.values()} == {0}


def test_the_docker_archive_references_its_layer_by_the_layers_sha256(tmp_path: Path) -> None:
    images.write_layer(tmp_path / "layer.tar", [images.Entry("pause", data=b"binary")])
    config = {"Entrypoint": ["/pause"]}
    images.write_docker_archive(tmp_path / "image.tar", tmp_path / "layer.tar", "localhost/wpclone/pause:0123", config)

    with tarfile.open(tmp_path / "image.tar") as archive:
        (manifest,) = json.load(archive.extractfile("manifest.json"))  # type: ignore[arg-type]
        assert manifest["RepoTags"] == ["localhost/wpclone/pause:0123"]
        config_bytes = archive.extractfile(manifest["Config"]).read()  # type: ignore[union-attr]
        (layer_name,) = manifest["Layers"]
        layer_bytes = archive.extractfile(layer_name).read()  # type: ignore[union-attr]
    assert layer_bytes == (tmp_path / "layer.tar").read_bytes()
    assert manifest["Config"] == f"{hashlib.sha256(config_bytes).hexdigest()}.json"
    image_config = json.loads(config_bytes)
    diff_id = hashlib.sha256(layer_bytes).hexdigest()
    assert image_config["rootfs"] == {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]}
    assert layer_name == f"{diff_id}/layer.tar"
    assert image_config["config"] == config and image_config["os"] == "linux"


def test_an_interrupted_write_leaves_no_tar_behind(tmp_path: Path) -> None:
    out = tmp_path / "image.tar"
    with pytest.raises(RuntimeError), images._atomic(out) as temporary:
        temporary.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_the_command_line_refuses_unknown_images() -> None:
    with pytest.raises(SystemExit):
        images.main(["build", "nginx"])


def test_a_build_clears_what_killed_ones_left_and_follows_inputs_changed_meanwhile(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WPCLONE_CACHE", str(tmp_path))
    hashes = iter(["a" * 64, "b" * 64, "b" * 64])  # the inputs change while the first build runs
    monkeypatch.setattr(images, "_hash", lambda name: next(hashes))
    built: list[str] = []

    def builder(image_ref: str, out: Path, work: Path) -> None:
        built.append(image_ref)
        out.write_bytes(b"tar")

    monkeypatch.setitem(images.BUILDERS, "pause", builder)
    monkeypatch.setitem(images.TOOLS, "pause", ())  # no tool check (it would hash the inputs once more)
    (tmp_path / "images" / ".wordpress-x1y2").mkdir(parents=True)  # what a killed build left
    (tmp_path / "images" / ".wordpress-0123.tar.99.partial").write_bytes(b"half")
    tars = images.build(["pause"])
    assert [path.name for path in (tmp_path / "images").glob(".*")] == [".lock"]
    assert built == [f"localhost/wpclone/pause:{'a' * 12}", f"localhost/wpclone/pause:{'b' * 12}"]
    assert tars == {"pause": tmp_path / "images" / f"pause-{'b' * 12}.tar"}
