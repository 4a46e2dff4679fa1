"""The pure parts of tools/images/imagetool.py: Dockerfile subset, cache keys, names, mirror lookup."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir, os.pardir, "tools", "images"))

import imagetool  # noqa: E402  pylint: disable=wrong-import-position
from imagetool import ImageError, parse_dockerfile  # noqa: E402  pylint: disable=wrong-import-position

ROOT = imagetool.ROOT


def read(rel):
    with open(os.path.join(ROOT, rel)) as handle:
        return handle.read()


def test_the_reference_sidecar_dockerfile_as_the_image_config():
    image = parse_dockerfile(read("examples/mesh-sidecar/Dockerfile"), {"BUILD": "v2"})
    assert image["from"] == "python:3.11-slim"
    assert image["env"] == [("PYTHONDONTWRITEBYTECODE", "1"), ("PYTHONUNBUFFERED", "1"), ("PYTHONPATH", "/opt/mesh-sidecar"),
                            ("MESH_SIDECAR_BUILD", "v2")]
    assert image["copies"] == [("meshsidecar", "/opt/mesh-sidecar/meshsidecar")]
    assert image["users"] == [{"name": "mesh", "uid": 10001, "gid": 10001, "home": "/home/mesh", "shell": "/usr/sbin/nologin",
                               "create_home": False}]
    assert (image["user"], image["workdir"]) == ("10001", "/opt/mesh-sidecar")
    assert image["entrypoint"] == ["python", "-m", "meshsidecar"] and image["cmd"] == ["serve"]


def test_arg_default_and_the_empty_image():
    assert dict(parse_dockerfile(read("examples/mesh-sidecar/Dockerfile"))["env"])["MESH_SIDECAR_BUILD"] == "v1"
    empty = dict(parse_dockerfile(read("examples/mesh-sidecar/Dockerfile.empty"))["env"])
    assert empty["MESH_SIDECAR_EMPTY"] == "1" and empty["MESH_SIDECAR_BUILD"] == "empty"


def test_continuations_comments_and_substitution():
    text = "# c\nFROM scratch\nARG A=x\nENV B=${A}y \\\n    # inside\n    C=\"$B z\"\nWORKDIR /w\nWORKDIR sub\nCOPY f rel\n"
    image = parse_dockerfile(text)
    assert image["env"] == [("B", "xy"), ("C", "xy z")]
    assert image["workdir"] == "/w/sub" and image["copies"] == [("f", "/w/sub/rel")]


def test_entrypoint_resets_cmd_and_legacy_env_form():
    image = parse_dockerfile('FROM scratch\nENV K v w\nCMD ["a"]\nENTRYPOINT ["/e"]\n')
    assert image["env"] == [("K", "v w")] and image["entrypoint"] == ["/e"] and image["cmd"] is None


@pytest.mark.parametrize("text, message", [
    ("FROM debian:12\n", "only"),
    ("FROM scratch\nRUN apt-get install x\n", "useradd"),
    ("FROM scratch\nCMD serve\n", "JSON"),
    ("FROM scratch\nCOPY --chown=1 a b\n", "options"),
    ("FROM scratch\nCOPY ../x /x\n", "inside"),
    ("FROM scratch\nADD a /a\n", "ADD"),
    ("FROM scratch AS a\nFROM scratch\n", "multi-stage"),
    ("ENV A=1\nFROM scratch\n", "before FROM"),
    ("FROM scratch\nRUN useradd --uid 1 -G wheel x\n", "-G"),
])
def test_unsupported_dockerfiles_are_refused(text, message):
    with pytest.raises(ImageError, match=message):
        parse_dockerfile(text)


def test_names_resolve_like_containerd():
    assert imagetool.full_name("meshops/mesh-sidecar:v1") == "docker.io/meshops/mesh-sidecar:v1"
    assert imagetool.full_name("meshops/pause") == "docker.io/meshops/pause:latest"
    assert imagetool.full_name("localhost:5000/x:1") == "localhost:5000/x:1"
    assert imagetool.full_name("registry.k8s.io/pause:3.10") == "registry.k8s.io/pause:3.10"


def test_oci_config_flags_follow_the_dockerfile():
    image = parse_dockerfile(read("examples/mesh-sidecar/Dockerfile"))
    flags = imagetool.oci_config_args(image)
    assert flags[:3] == ["--clear=config.env", "--clear=config.entrypoint", "--clear=config.cmd"]
    assert "--config.env=MESH_SIDECAR_BUILD=v1" in flags and "--config.user=10001" in flags
    assert [f for f in flags if f.startswith("--config.entrypoint")] == [
        "--config.entrypoint=python", "--config.entrypoint=-m", "--config.entrypoint=meshsidecar"]
    assert imagetool.passwd_lines(image["users"]) == (["mesh:x:10001:10001::/home/mesh:/usr/sbin/nologin"], ["mesh:x:10001:"])


def test_cache_keys_change_with_every_input(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("print(1)\n")
    (tmp_path / "pkg" / "__pycache__").mkdir()
    (tmp_path / "pkg" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"x")
    image = parse_dockerfile("FROM python:3.11-slim\nCOPY pkg /opt/pkg\n")
    base = imagetool.base_key("python:3.11-slim")
    files = imagetool.file_digests(str(tmp_path), image["copies"])
    assert list(files) == ["pkg/a.py"]  # caches are not inputs
    key = imagetool.image_key(image, files, base)
    assert key == imagetool.image_key(image, imagetool.file_digests(str(tmp_path), image["copies"]), base)
    (tmp_path / "pkg" / "a.py").write_text("print(2)\n")
    assert imagetool.image_key(image, imagetool.file_digests(str(tmp_path), image["copies"]), base) != key
    os.chmod(tmp_path / "pkg" / "a.py", 0o755)
    changed_mode = imagetool.image_key(image, imagetool.file_digests(str(tmp_path), image["copies"]), base)
    other = parse_dockerfile("FROM python:3.11-slim\nCOPY pkg /opt/pkg\nENV X=1\n")
    assert imagetool.image_key(other, imagetool.file_digests(str(tmp_path), image["copies"]), base) != changed_mode
    assert imagetool.image_key(image, files, "other-base") != key
    assert imagetool.base_key("scratch") == "scratch"


def test_plan_of_the_repository_is_stable(tmp_path):
    pause = tmp_path / "pause"
    (pause / "linux").mkdir(parents=True)
    (pause / "Makefile").write_text("REGISTRY ?= x\nTAG ?= 3.10.2\n")
    (pause / "linux" / "pause.c").write_text("int main(void) { return 0; }\n")
    first = imagetool.Plan(pause_dir=str(pause))
    names = [e["name"] for e in first.entries]
    assert names == ["docker.io/meshops/mesh-sidecar:v1", "docker.io/meshops/mesh-sidecar:v2", "docker.io/meshops/mesh-sidecar:empty",
                     "docker.io/meshops/mesh-sidecar:broken", "docker.io/meshops/mesh-sidecar:stuck", "docker.io/meshops/demo-app:1",
                     "docker.io/meshops/pause:3.10.2"]
    assert len({e["key"] for e in first.entries}) == len(names)
    assert imagetool.Plan(pause_dir=str(pause)).key == first.key
    broken = first.entries[3]["parsed"]
    assert broken["entrypoint"][:2] == ["/bin/sh", "-c"] and "exit 1" in broken["entrypoint"][2]
    stuck = first.entries[4]["parsed"]
    assert ("MESH_SIDECAR_FAULT", "pause-before-ready=3600") in [tuple(pair) for pair in stuck["env"]]
    pause_image = next(e for e in first.entries if e["name"].startswith("docker.io/meshops/pause:"))["parsed"]
    assert pause_image["user"] == "65535:65535" and pause_image["entrypoint"] == ["/pause"]


def test_mirror_from_deb822_and_one_line_sources():
    deb822 = ("Types: deb\n# comment\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\n"
              "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main\n")
    assert imagetool.debian_mirror([deb822], "bookworm") == "http://mirror.example/debian"
    assert imagetool.debian_mirror([deb822], "bookworm-security") == "http://mirror.example/debian-security"
    legacy = "deb-src http://src.example/debian bookworm main\ndeb [arch=amd64] http://one.example/debian bookworm main contrib\n"
    assert imagetool.debian_mirror([legacy], "bookworm") == "http://one.example/debian"
    assert imagetool.debian_mirror(["Types: deb\nURIs: http://x\nSuites: trixie\nComponents: main\n"], "bookworm") is None


def test_pause_tag_and_ctr_listing():
    assert imagetool.pause_tag("REV = x\nTAG ?= 3.10.2\n") == "3.10.2"
    with pytest.raises(ImageError):
        imagetool.pause_tag("no tag here")
    out = ("REF TYPE DIGEST SIZE PLATFORMS LABELS\n"
           "docker.io/meshops/pause:3.10.2 application/vnd.oci.image.manifest.v1+json sha256:aa 1 MiB linux/amd64 -\n")
    assert imagetool.containerd_images(out) == {"docker.io/meshops/pause:3.10.2": "sha256:aa"}
