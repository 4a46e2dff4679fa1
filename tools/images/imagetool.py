"""Build the test images locally (no registry, no pull) and import them into containerd.

    python3 tools/images/imagetool.py build            # all images, cached (a second run builds nothing)
    python3 tools/images/imagetool.py import --address /path/containerd.sock [--namespace k8s.io]
    python3 tools/images/imagetool.py list             # name, cache key, Dockerfile

Tools, all from Debian: ``debootstrap`` (the Python 3.11 base rootfs, standing in for ``python:3.11-slim``),
``umoci`` (OCI layout: one base layer shared by every image, one layer per image, the image config),
``skopeo`` (an OCI archive naming every image ``docker.io/<repo>:<tag>``), ``gcc`` (the pause binary),
``ctr`` (``ctr -n k8s.io image import``). The Dockerfiles next to the sources stay the description of each
image: the small subset of Dockerfile they use (FROM, ARG, ENV, COPY, RUN useradd, USER, WORKDIR, ENTRYPOINT,
CMD) is read here, anything else is refused.

Cache (``MESHOPS_IMAGES_CACHE``, default ``~/.cache/meshops-sidecarset/images``), keyed by a hash of the
inputs: the base rootfs by suite, packages and this tool's format version; each image by its parsed
Dockerfile, build args, the bytes and modes of every copied file and its base key; the archive by the keys
of all images. Pure functions (parsing, keys, mirror lookup) are unit-tested in tests/unit/tools.
"""

import argparse
import fcntl
import glob
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FORMAT = "meshops-images-1"          # bump when the way images are built changes: everything is rebuilt
REGISTRY = "docker.io"

# What FROM lines may name. python:3.11-slim is Debian bookworm with CPython 3.11: the same Python minor
# from the Debian archive, a `python` command as the official image has (/usr/local/bin/python there).
BASES = {
    "python:3.11-slim": {
        "suite": "bookworm",
        "variant": "minbase",
        "include": ["python3-minimal", "libpython3.11-stdlib", "ca-certificates"],
        "remove": ["usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale", "var/cache/apt/archives",
                   "var/lib/apt/lists", "var/log"],
        "links": {"usr/bin/python": "python3"},
    },
    "scratch": None,
}

K8S_MODULE = "k8s.io/kubernetes"

# name (repo:tag) -> how to build it. Context and Dockerfile paths are relative to the checkout.
IMAGES = [
    {"name": "meshops/mesh-sidecar:v1", "dockerfile": "examples/mesh-sidecar/Dockerfile", "context": "examples/mesh-sidecar",
     "args": {"BUILD": "v1"}},
    {"name": "meshops/mesh-sidecar:v2", "dockerfile": "examples/mesh-sidecar/Dockerfile", "context": "examples/mesh-sidecar",
     "args": {"BUILD": "v2"}},
    {"name": "meshops/mesh-sidecar:empty", "dockerfile": "examples/mesh-sidecar/Dockerfile.empty", "context": "examples/mesh-sidecar"},
    {"name": "meshops/mesh-sidecar:broken", "dockerfile": "tools/images/mesh-sidecar-broken.Dockerfile",
     "context": "examples/mesh-sidecar"},
    {"name": "meshops/mesh-sidecar:stuck", "dockerfile": "tools/images/mesh-sidecar-stuck.Dockerfile",
     "context": "examples/mesh-sidecar"},
    {"name": "meshops/demo-app:1", "dockerfile": "examples/demo/Dockerfile.app", "context": "examples/mesh-sidecar"},
    {"name": "meshops/pause", "pause": True},     # tag: the TAG of Kubernetes' build/pause/Makefile
]

# A second set, built and imported on its own (`--set mosn`, tools/mosn/images.sh, docs/mosn.md): the MOSN
# proxy built from its Go module outside the checkout, so its context is the staging directory that
# tools/mosn/images.sh fills (the binary and the two configs) in MOSN's cache.
MOSN_CONTEXT = os.environ.get("MESHOPS_MOSN_CONTEXT") or os.path.join(
    os.path.expanduser("~"), ".cache", "meshops-sidecarset", "mosn-v1.6.1", "context")
IMAGE_SETS = {
    "default": IMAGES,
    "mosn": [
        {"name": "meshops/mosn:v1", "dockerfile": "examples/mosn/Dockerfile", "context": MOSN_CONTEXT, "args": {"BUILD": "v1"}},
        {"name": "meshops/mosn:v2", "dockerfile": "examples/mosn/Dockerfile", "context": MOSN_CONTEXT, "args": {"BUILD": "v2"}},
    ],
}

SKIP_NAMES = ("__pycache__",)
SKIP_SUFFIXES = (".pyc", ".pyo")


class ImageError(Exception):
    pass


def say(msg):
    print("images: %s" % msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- pure parts
def logical_lines(text):
    """Dockerfile lines with backslash continuations joined and comments/blank lines dropped."""
    out, cur = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not cur and (not line or line.startswith("#")):
            continue
        if cur and line.startswith("#"):
            continue
        if line.endswith("\\"):
            cur += line[:-1].strip() + " "
            continue
        cur += line
        if cur.strip():
            out.append(cur.strip())
        cur = ""
    if cur.strip():
        out.append(cur.strip())
    return out


def substitute(value, variables):
    """$NAME and ${NAME} from variables (ARG and ENV seen so far); unknown names become ''."""
    def repl(match):
        name = match.group(1) or match.group(2)
        return variables.get(name, "")
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", repl, value)


def _json_or_fail(instr, rest):
    try:
        value = json.loads(rest)
    except ValueError:
        value = None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ImageError("%s must use the JSON (exec) form, got: %s" % (instr, rest))
    return value


def _kv_pairs(rest):
    """ENV/ARG/LABEL key=value pairs (shell-like quoting); the legacy 'ENV key value' form too."""
    words = shlex.split(rest)
    if words and "=" not in words[0]:
        return [(words[0], " ".join(words[1:]))]
    pairs = []
    for word in words:
        if "=" not in word:
            raise ImageError("expected key=value, got %r" % word)
        key, value = word.split("=", 1)
        pairs.append((key, value))
    return pairs


def parse_useradd(argv):
    """The user and group a ``useradd`` line creates: {'name', 'uid', 'gid', 'home', 'shell'}."""
    if not argv or argv[0] != "useradd":
        raise ImageError("only 'RUN useradd ...' is supported, got: %s" % " ".join(argv))
    user = {"uid": None, "gid": None, "home": None, "shell": "/bin/sh", "create_home": False}
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg in ("--uid", "-u"):
            user["uid"] = int(argv[i + 1])
            i += 2
        elif arg in ("--gid", "-g"):
            user["gid"] = int(argv[i + 1])
            i += 2
        elif arg in ("--shell", "-s"):
            user["shell"] = argv[i + 1]
            i += 2
        elif arg in ("--home-dir", "-d"):
            user["home"] = argv[i + 1]
            i += 2
        elif arg in ("--no-create-home", "-M", "--system", "-r", "--no-log-init", "-l"):
            i += 1
        elif arg in ("--create-home", "-m"):
            user["create_home"] = True
            i += 1
        elif arg.startswith("-"):
            raise ImageError("useradd option %s is not supported" % arg)
        else:
            user["name"] = arg
            i += 1
    if not user.get("name") or user["uid"] is None:
        raise ImageError("useradd needs a name and --uid: %s" % " ".join(argv))
    if user["gid"] is None:
        user["gid"] = user["uid"]           # USERGROUPS_ENAB: a group of the same name and id
    if user["home"] is None:
        user["home"] = "/home/" + user["name"]
    return user


def parse_dockerfile(text, build_args=None):
    """The image a Dockerfile describes, as a dict: from, env (ordered pairs), copies, users, user,
    workdir, entrypoint, cmd, labels. Only single-stage files with the instructions listed above."""
    build_args = dict(build_args or {})
    image = {"from": None, "env": [], "copies": [], "users": [], "user": "", "workdir": "", "entrypoint": None,
             "cmd": None, "labels": {}}
    args, variables = {}, {}
    for line in logical_lines(text):
        instr, _sep, rest = line.partition(" ")
        instr, rest = instr.upper(), rest.strip()
        if instr == "FROM":
            if image["from"] is not None:
                raise ImageError("multi-stage Dockerfiles are not supported")
            image["from"] = substitute(rest, args).split()[0]
        elif instr == "ARG":
            name, _sep, default = rest.partition("=")
            name = name.strip()
            args[name] = build_args.get(name, default.strip().strip('"'))
            variables[name] = args[name]
        elif image["from"] is None:
            raise ImageError("%s before FROM" % instr)
        elif instr == "ENV":
            for key, value in _kv_pairs(rest):
                value = substitute(value, variables)
                image["env"] = [(k, v) for k, v in image["env"] if k != key] + [(key, value)]
                variables[key] = value
        elif instr == "LABEL":
            for key, value in _kv_pairs(rest):
                image["labels"][key] = substitute(value, variables)
        elif instr == "COPY":
            words = [substitute(w, variables) for w in shlex.split(rest)]
            if any(w.startswith("--") for w in words):
                raise ImageError("COPY options are not supported: %s" % rest)
            if len(words) != 2:
                raise ImageError("COPY takes one source and one destination: %s" % rest)
            src, dst = words
            if os.path.isabs(src) or ".." in src.split("/"):
                raise ImageError("COPY source must stay inside the context: %s" % src)
            if not os.path.isabs(dst):
                dst = os.path.join(image["workdir"] or "/", dst)
            image["copies"].append((src.rstrip("/") or ".", os.path.normpath(dst)))
        elif instr == "RUN":
            image["users"].append(parse_useradd(shlex.split(substitute(rest, variables))))
        elif instr == "USER":
            image["user"] = substitute(rest, variables)
        elif instr == "WORKDIR":
            path = substitute(rest, variables)
            image["workdir"] = path if os.path.isabs(path) else os.path.join(image["workdir"] or "/", path)
        elif instr == "ENTRYPOINT":
            image["entrypoint"] = _json_or_fail(instr, rest)
            image["cmd"] = None           # Docker: ENTRYPOINT resets an inherited CMD
        elif instr == "CMD":
            image["cmd"] = _json_or_fail(instr, rest)
        else:
            raise ImageError("Dockerfile instruction %s is not supported by tools/images" % instr)
    if image["from"] is None:
        raise ImageError("no FROM line")
    if image["from"] not in BASES:
        raise ImageError("FROM %s: only %s can be built locally" % (image["from"], ", ".join(sorted(BASES))))
    return image


def split_name(name):
    repo, _sep, tag = name.rpartition(":")
    if not repo or "/" in tag:
        return name, "latest"
    return repo, tag


def full_name(name):
    """docker.io/<repo>:<tag>, the name kubelet and containerd resolve 'meshops/x:v1' to."""
    repo, tag = split_name(name)
    first = repo.split("/")[0]
    if "." not in first and ":" not in first and first != "localhost":
        repo = REGISTRY + "/" + repo
    return "%s:%s" % (repo, tag)


def digest_json(obj):
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def base_key(base_name):
    base = BASES[base_name]
    return digest_json({"format": FORMAT, "base": base_name, "spec": base}) if base else "scratch"


def file_digests(context, copies):
    """{source path: [sha256, mode]} of every file a COPY takes from the context (sorted, skipping caches)."""
    out = {}
    for src, _dst in copies:
        top = os.path.join(context, src)
        if not os.path.exists(top):
            raise ImageError("COPY source %s does not exist in %s" % (src, context))
        for path in sorted(walk_files(top)):
            rel = os.path.relpath(path, context)
            with open(path, "rb") as handle:
                out[rel] = [hashlib.sha256(handle.read()).hexdigest(), os.stat(path).st_mode & 0o7777]
    return out


def walk_files(top):
    if os.path.isfile(top):
        yield top
        return
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_NAMES)
        for name in sorted(filenames):
            if not name.endswith(SKIP_SUFFIXES):
                yield os.path.join(dirpath, name)


def image_key(parsed, files, base):
    return digest_json({"format": FORMAT, "image": parsed, "files": files, "base": base})


def oci_config_args(parsed):
    """umoci config flags for the parsed image (env in order, user, workdir, entrypoint, cmd, labels)."""
    argv = ["--clear=config.env", "--clear=config.entrypoint", "--clear=config.cmd"]
    for key, value in parsed["env"]:
        argv.append("--config.env=%s=%s" % (key, value))
    if parsed["user"]:
        argv.append("--config.user=%s" % parsed["user"])
    if parsed["workdir"]:
        argv.append("--config.workingdir=%s" % parsed["workdir"])
    for word in parsed["entrypoint"] or []:
        argv.append("--config.entrypoint=%s" % word)
    for word in parsed["cmd"] or []:
        argv.append("--config.cmd=%s" % word)
    for key, value in sorted(parsed["labels"].items()):
        argv.append("--config.label=%s=%s" % (key, value))
    return argv


def passwd_lines(users):
    """/etc/passwd and /etc/group lines for the users of RUN useradd."""
    passwd = ["%s:x:%d:%d::%s:%s" % (u["name"], u["uid"], u["gid"], u["home"], u["shell"]) for u in users]
    group = ["%s:x:%d:" % (u["name"], u["gid"]) for u in users]
    return passwd, group


def debian_mirror(sources_texts, suite):
    """The archive URI the machine's apt uses for ``suite`` (deb822 .sources or one-line sources.list)."""
    for text in sources_texts:
        if re.search(r"^\s*Types:", text, re.M):
            for stanza in re.split(r"\n\s*\n", text):
                fields = {}
                for line in stanza.splitlines():
                    if line.strip().startswith("#") or ":" not in line:
                        continue
                    key, _sep, value = line.partition(":")
                    fields[key.strip().lower()] = value.split()
                if "deb" in fields.get("types", []) and suite in fields.get("suites", []) and "main" in fields.get("components", []):
                    uris = fields.get("uris") or []
                    if uris:
                        return uris[0]
        else:
            for line in text.splitlines():
                words = re.sub(r"\[[^]]*\]", " ", line).split()
                if len(words) >= 4 and words[0] == "deb" and words[2] == suite and "main" in words[3:]:
                    return words[1]
    return None


def pause_tag(makefile_text):
    match = re.search(r"^TAG\s*\??=\s*(\S+)", makefile_text, re.M)
    if not match:
        raise ImageError("no TAG in build/pause/Makefile")
    return match.group(1)


def containerd_images(ls_output):
    """{ref: digest} from `ctr images ls` output."""
    out = {}
    for line in ls_output.splitlines()[1:]:
        words = line.split()
        if len(words) >= 3 and words[2].startswith("sha256:"):
            out[words[0]] = words[2]
    return out


# ----------------------------------------------------------------------------- the build
def cache_dir():
    return os.environ.get("MESHOPS_IMAGES_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "meshops-sidecarset", "images")


def run(argv, **kwargs):
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)
    if proc.returncode != 0:
        raise ImageError("%s failed (exit %d): %s" % (" ".join(argv[:3]), proc.returncode, (proc.stderr or proc.stdout)[-2000:]))
    return proc.stdout


def k8s_module_dir():
    version = os.environ.get("K8S_VERSION")
    if not version:
        with open(os.path.join(ROOT, "tools", "cluster", "versions.env")) as handle:
            match = re.search(r"^K8S_VERSION_DEFAULT=(\S+)", handle.read(), re.M)
        version = match.group(1)
    env = dict(os.environ, GOFLAGS="-modcacherw", GOTOOLCHAIN="local")
    out = run(["go", "mod", "download", "-json", "%s@%s" % (K8S_MODULE, version)], cwd=tempfile.gettempdir(), env=env)
    return json.loads(out)["Dir"]


class Plan:
    """Every image with its parsed description and cache key (inputs hashed, nothing built)."""

    def __init__(self, images=None, root=ROOT, pause_dir=None, image_set="default"):
        self.root = root
        self.set = image_set
        self.entries = []
        for spec in images or IMAGES:
            if spec.get("pause"):
                self.entries.append(self._pause(spec, pause_dir))
                continue
            path = os.path.join(root, spec["dockerfile"])
            with open(path) as handle:
                parsed = parse_dockerfile(handle.read(), spec.get("args"))
            context = os.path.join(root, spec["context"])
            files = file_digests(context, parsed["copies"])
            bkey = base_key(parsed["from"])
            self.entries.append({"name": full_name(spec["name"]), "parsed": parsed, "context": context, "files": files,
                                 "base": parsed["from"], "base_key": bkey, "key": image_key(parsed, files, bkey),
                                 "dockerfile": spec["dockerfile"]})
        self.key = digest_json({"format": FORMAT, "images": sorted((e["name"], e["key"]) for e in self.entries)})

    def _pause(self, spec, pause_dir):
        pause_dir = pause_dir or os.path.join(k8s_module_dir(), "build", "pause")
        with open(os.path.join(pause_dir, "Makefile")) as handle:
            tag = pause_tag(handle.read())
        with open(os.path.join(pause_dir, "linux", "pause.c"), "rb") as handle:
            source = handle.read()
        cflags = ["-Os", "-Wall", "-Werror", "-static", "-DVERSION=v%s-meshops" % tag]
        parsed = {"from": "scratch", "env": [], "copies": [], "users": [], "user": "65535:65535", "workdir": "",
                  "entrypoint": ["/pause"], "cmd": None, "labels": {}}
        gcc = run(["gcc", "--version"]).splitlines()[0] if shutil.which("gcc") else "no gcc"
        files = {"pause.c": [hashlib.sha256(source).hexdigest(), 0o644], "cflags": cflags, "gcc": gcc}
        return {"name": full_name("%s:%s" % (spec["name"], tag)), "parsed": parsed, "pause_src": os.path.join(pause_dir, "linux", "pause.c"),
                "cflags": cflags, "files": files, "base": "scratch", "base_key": "scratch",
                "key": image_key(parsed, files, "scratch"), "dockerfile": "(Kubernetes build/pause, gcc -static)"}

    @property
    def prefix(self):
        """images-<key> for the default set, images-<set>-<key> for the others (each set gc's only its own)."""
        return "images-" if self.set == "default" else "images-%s-" % self.set

    @property
    def archive(self):
        return os.path.join(cache_dir(), "%s%s.tar" % (self.prefix, self.key[:16]))

    @property
    def manifest(self):
        return os.path.join(cache_dir(), "%s%s.json" % (self.prefix, self.key[:16]))


def tag_of(entry):
    repo, tag = split_name(entry["name"])
    return "%s-%s-%s" % (repo.split("/")[-1], tag, entry["key"][:12])


class Builder:
    def __init__(self, plan):
        self.plan = plan
        self.cache = cache_dir()
        self.layout = os.path.join(self.cache, "oci")
        self.times = {}

    def timed(self, what, fn, *args):
        start = time.monotonic()
        result = fn(*args)
        self.times[what] = round(time.monotonic() - start, 2)
        return result

    def tags(self):
        if not os.path.isdir(self.layout):
            return set()
        return set(run(["umoci", "ls", "--layout", self.layout]).split())

    def build(self):
        if os.path.exists(self.plan.archive) and os.path.exists(self.plan.manifest):
            say("all %d images cached: %s" % (len(self.plan.entries), self.plan.archive))
            return False
        for tool in ("umoci", "skopeo"):
            if not shutil.which(tool):
                raise ImageError("%s is missing (tools/images/build.sh installs it from Debian)" % tool)
        os.makedirs(self.cache, exist_ok=True)
        if not os.path.isdir(os.path.join(self.layout, "blobs")):
            run(["umoci", "init", "--layout", self.layout])
        have = self.tags()
        for entry in self.plan.entries:
            if tag_of(entry) in have:
                continue
            if entry["base"] != "scratch":
                btag = "base-" + entry["base_key"][:12]
                if btag not in have:
                    self.timed("base " + entry["base"], self.build_base, entry["base"], btag)
                    have.add(btag)
            self.timed(entry["name"], self.build_image, entry)
            have.add(tag_of(entry))
        self.timed("archive", self.export)
        self.gc(have)
        return True

    def build_base(self, base_name, btag):
        base = BASES[base_name]
        if os.geteuid() != 0:
            raise ImageError("debootstrap needs root (the base rootfs of %s)" % base_name)
        texts = []
        for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.sources")) + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
            if os.path.isfile(path):
                with open(path) as handle:
                    texts.append(handle.read())
        mirror = os.environ.get("MESHOPS_DEBIAN_MIRROR") or debian_mirror(texts, base["suite"])
        rootfs = tempfile.mkdtemp(prefix="rootfs-", dir=self.cache)
        try:
            say("debootstrap %s (%s) for %s" % (base["suite"], ",".join(base["include"]), base_name))
            argv = ["debootstrap", "--variant=" + base["variant"], "--include=" + ",".join(base["include"]), base["suite"], rootfs]
            run(argv + ([mirror] if mirror else []))
            for rel in base["remove"]:
                path = os.path.join(rootfs, rel)
                if os.path.isdir(path):
                    for child in os.listdir(path):
                        full = os.path.join(path, child)
                        if os.path.isdir(full) and not os.path.islink(full):
                            shutil.rmtree(full)
                        else:
                            os.unlink(full)
            for rel, target in base["links"].items():
                path = os.path.join(rootfs, rel)
                if not os.path.lexists(path):
                    os.symlink(target, path)
            run(["umoci", "new", "--image", "%s:%s" % (self.layout, btag)])
            run(["umoci", "insert", "--image", "%s:%s" % (self.layout, btag), "--history.created_by=debootstrap " + base["suite"],
                 rootfs, "/"])
        finally:
            shutil.rmtree(rootfs, ignore_errors=True)

    def build_image(self, entry):
        say("building %s (%s)" % (entry["name"], entry["dockerfile"]))
        ref = "%s:%s" % (self.layout, tag_of(entry))
        parsed = entry["parsed"]
        stage = tempfile.mkdtemp(prefix="layer-", dir=self.cache)
        try:
            if entry["base"] == "scratch":
                run(["umoci", "new", "--image", ref])
            else:
                run(["umoci", "tag", "--image", "%s:base-%s" % (self.layout, entry["base_key"][:12]), tag_of(entry)])
            if entry.get("pause_src"):
                out = os.path.join(stage, "pause")
                run(["gcc"] + entry["cflags"] + ["-o", out, entry["pause_src"]])
                if shutil.which("strip"):
                    run(["strip", out])
                os.chmod(out, 0o755)
            for src, dst in parsed["copies"]:
                top = os.path.join(entry["context"], src)
                target = os.path.join(stage, dst.lstrip("/"))
                for path in walk_files(top):
                    rel = os.path.relpath(path, top)
                    out = os.path.normpath(os.path.join(target, rel)) if rel != "." else target
                    os.makedirs(os.path.dirname(out), exist_ok=True)
                    shutil.copy2(path, out)
            if parsed["users"]:
                self._users(entry, stage)
            for dirpath, dirnames, filenames in os.walk(stage):
                for name in dirnames + filenames:
                    os.lchown(os.path.join(dirpath, name), 0, 0)
            if os.listdir(stage):
                run(["umoci", "insert", "--image", ref, "--history.created_by=tools/images " + entry["dockerfile"], stage, "/"])
            run(["umoci", "config", "--image", ref, "--history.created_by=tools/images config"] + oci_config_args(parsed))
        finally:
            shutil.rmtree(stage, ignore_errors=True)

    def _users(self, entry, stage):
        """/etc/passwd and /etc/group of the base plus the RUN useradd users (read from the base layer)."""
        blines = {"etc/passwd": [], "etc/group": []}
        base_ref = "%s:base-%s" % (self.layout, entry["base_key"][:12])
        with open(os.path.join(self.layout, "index.json")) as handle:
            index = json.load(handle)
        digest = [m["digest"] for m in index["manifests"]
                  if (m.get("annotations") or {}).get("org.opencontainers.image.ref.name") == base_ref.rsplit(":", 1)[1]][0]
        with open(os.path.join(self.layout, "blobs", *digest.split(":"))) as handle:
            manifest = json.load(handle)
        for layer in manifest["layers"]:
            with tarfile.open(os.path.join(self.layout, "blobs", *layer["digest"].split(":")), "r:*") as tar:
                for member in tar:
                    name = member.name.lstrip("./")
                    if name in blines and member.isfile():
                        blines[name] = tar.extractfile(member).read().decode().splitlines()
        passwd, group = passwd_lines(entry["parsed"]["users"])
        os.makedirs(os.path.join(stage, "etc"), exist_ok=True)
        for rel, extra in (("etc/passwd", passwd), ("etc/group", group)):
            with open(os.path.join(stage, rel), "w") as handle:
                handle.write("\n".join(blines[rel] + extra) + "\n")
            os.chmod(os.path.join(stage, rel), 0o644)

    def export(self):
        """One OCI archive with every image under its docker.io name (blobs shared), plus a digest list."""
        out = tempfile.mkdtemp(prefix="export-", dir=self.cache)
        try:
            for entry in self.plan.entries:
                run(["skopeo", "copy", "-q", "oci:%s:%s" % (self.layout, tag_of(entry)), "oci:%s:%s" % (out, entry["name"])])
            with open(os.path.join(out, "index.json")) as handle:
                index = json.load(handle)
            digests = {m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"] for m in index["manifests"]}
            configs = {}
            for name, digest in digests.items():
                with open(os.path.join(out, "blobs", *digest.split(":"))) as handle:
                    manifest = json.load(handle)
                configs[name] = manifest["config"]["digest"]
            tmp = self.plan.archive + ".tmp"
            with tarfile.open(tmp, "w") as tar:
                for name in sorted(os.listdir(out)):
                    tar.add(os.path.join(out, name), arcname=name)
            os.replace(tmp, self.plan.archive)
            with open(self.plan.manifest + ".tmp", "w") as handle:
                json.dump({"key": self.plan.key, "manifests": digests, "configs": configs,
                           "images": {e["name"]: e["key"] for e in self.plan.entries}}, handle, indent=1, sort_keys=True)
            os.replace(self.plan.manifest + ".tmp", self.plan.manifest)
        finally:
            shutil.rmtree(out, ignore_errors=True)

    def gc(self, have):
        """Drop layout tags and archives of earlier inputs (one version of each image is kept)."""
        keep = {tag_of(e) for e in self.plan.entries} | {"base-" + e["base_key"][:12] for e in self.plan.entries if e["base"] != "scratch"}
        mine = tuple("%s-%s-" % (split_name(e["name"])[0].split("/")[-1], split_name(e["name"])[1]) for e in self.plan.entries)
        stale = [t for t in have if t not in keep and (t.startswith("base-") or t.startswith(mine))]
        for tag in stale:
            run(["umoci", "rm", "--image", "%s:%s" % (self.layout, tag)])
        if stale:
            run(["umoci", "gc", "--layout", self.layout])
        own = re.compile(re.escape(self.plan.prefix) + r"[0-9a-f]{16}\.(tar|json)$")
        for path in glob.glob(os.path.join(self.cache, "images-*.tar")) + glob.glob(os.path.join(self.cache, "images-*.json")):
            if own.match(os.path.basename(path)) and os.path.splitext(path)[0] != os.path.splitext(self.plan.archive)[0]:
                os.unlink(path)


def import_images(plan, address, namespace="k8s.io", ctr="ctr"):
    """ctr image import of the archive unless containerd has every image at the expected digest."""
    with open(plan.manifest) as handle:
        want = json.load(handle)["manifests"]
    base = [ctr, "--address", address, "--namespace", namespace]
    have = containerd_images(run(base + ["images", "ls"]))
    missing = sorted(n for n, d in want.items() if have.get(n) != d)
    if not missing:
        say("containerd at %s has all %d images" % (address, len(want)))
        return False
    say("importing %d images into %s (%s)" % (len(want), address, namespace))
    run(base + ["images", "import", plan.archive])
    have = containerd_images(run(base + ["images", "ls"]))
    still = sorted(n for n, d in want.items() if have.get(n) != d)
    if still:
        raise ImageError("after the import containerd still lacks %s" % ", ".join(still))
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("build")
    sub.add_parser("list")
    imp = sub.add_parser("import")
    imp.add_argument("--address", required=True)
    imp.add_argument("--namespace", default="k8s.io")
    sub.add_parser("archive", help="print the archive path (after build)")
    parser.add_argument("--set", default="default", choices=sorted(IMAGE_SETS),
                        help="which images: the real-node test images (default) or MOSN's (tools/mosn/images.sh)")
    args = parser.parse_args(argv)
    try:
        plan = Plan(IMAGE_SETS[args.set], image_set=args.set)
        if args.cmd == "list":
            for e in plan.entries:
                print("%s\t%s\t%s" % (e["name"], e["key"][:12], e["dockerfile"]))
            return 0
        if args.cmd == "archive":
            print(plan.archive)
            return 0 if os.path.exists(plan.archive) else 1
        os.makedirs(cache_dir(), exist_ok=True)
        with open(os.path.join(cache_dir(), ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if args.cmd == "build":
                start = time.monotonic()
                builder = Builder(plan)
                built = builder.build()
                print(json.dumps({"built": built, "archive": plan.archive, "seconds": round(time.monotonic() - start, 2),
                                  "steps": builder.times, "images": [e["name"] for e in plan.entries]}))
            else:
                if not os.path.exists(plan.manifest):
                    Builder(plan).build()
                start = time.monotonic()
                imported = import_images(plan, args.address, args.namespace)
                print(json.dumps({"imported": imported, "seconds": round(time.monotonic() - start, 2)}))
    except ImageError as exc:
        print("images: FAILED: %s" % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
