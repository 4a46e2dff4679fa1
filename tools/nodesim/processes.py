"""Process mode of the node simulator: containers whose image is mapped to a local command run as
real processes on 127.0.0.1 (opt-in with the config key ``processes:``; docs/nodesim.md).

Each pod gets a *port block* (``basePort + stride * index``, index = the lowest free slot) and a
directory with one sub-directory per volume (shared by the pod's containers). Commands, env values
and exec hook/probe commands may use template variables (``{python}``, ``{port}``, ``{port1}``,
``{<name>_port}``, ``{pod_dir}``, ``{pod_name}``, ``{namespace}``, ``{pod_uid}``, ``{node}``,
``{index}``, ``{config_dir}``); a value equal to a volume's ``mountPath`` (or below it) is
rewritten to the pod's directory of that volume.

Threads: the simulator's main loop owns every ``Handle``; one waiter thread per process and one
thread per exec command (hook, probe) block on the OS and hand their result back to the main loop
with ``post(fn, *args)``. Nothing here touches the simulator's model.
"""

import fnmatch
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

LOG = logging.getLogger("nodesim.processes")

_TEMPLATE_RE = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
_FIELD_RE = re.compile(r"^metadata\.(annotations|labels)\['([^']*)'\]$")
PASS_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")
MAX_OUTPUT = 4096


def _as_list(value, what):
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise ValueError("processes: %s must be a list, got %r" % (what, value))
    return [str(v) for v in value]


def _as_env(value, what):
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError("processes: %s must be a mapping, got %r" % (what, value))
    return {str(k): "" if v is None else str(v) for k, v in value.items()}


class ProcessConfig:
    """The parsed ``processes:`` config mapping."""

    KEYS = {"basePort", "stride", "maxPods", "ports", "dir", "cwd", "env", "overrideEnv", "aliases",
            "images", "hookTimeout", "stopGrace"}
    IMAGE_KEYS = {"image", "command", "args", "env", "overrideEnv", "cwd"}

    def __init__(self, data, config_dir=None):
        data = dict(data or {})
        unknown = set(data) - self.KEYS
        if unknown:
            raise ValueError("unknown processes keys: %s" % ", ".join(sorted(unknown)))
        self.base_port = int(os.environ.get("NODESIM_PROCESS_BASE_PORT") or data.get("basePort", 20000))
        self.stride = int(data.get("stride", 10))
        self.max_pods = int(data.get("maxPods", 100))
        if self.stride < 1 or self.max_pods < 1 or not 1024 <= self.base_port <= 65535 - self.stride * self.max_pods:
            raise ValueError("processes: basePort/stride/maxPods give ports outside 1024-65535")
        ports = data.get("ports") or {}
        if not isinstance(ports, dict) or any(not 0 <= int(v) < self.stride for v in ports.values()):
            raise ValueError("processes: ports must map names to offsets below stride (%d)" % self.stride)
        self.ports = {str(k): int(v) for k, v in ports.items()}
        self.dir = data.get("dir")
        self.cwd = data.get("cwd")
        self.env = _as_env(data.get("env"), "env")
        self.override_env = _as_env(data.get("overrideEnv"), "overrideEnv")
        self.aliases = {"python": "{python}", "python3": "{python}"}
        self.aliases.update(_as_env(data.get("aliases"), "aliases"))
        self.hook_timeout = float(data.get("hookTimeout", 120))
        self.stop_grace = data.get("stopGrace")  # None: the pod's terminationGracePeriodSeconds
        self.config_dir = config_dir or os.getcwd()
        self.images = []
        for entry in data.get("images") or []:
            if not isinstance(entry, dict) or "image" not in entry:
                raise ValueError("processes: every images entry needs an 'image' pattern: %r" % (entry,))
            bad = set(entry) - self.IMAGE_KEYS
            if bad:
                raise ValueError("processes: unknown keys %s in images entry %r" % (", ".join(sorted(bad)), entry["image"]))
            self.images.append({
                "image": str(entry["image"]),
                "command": _as_list(entry.get("command"), "command"),
                "args": _as_list(entry.get("args"), "args"),
                "env": _as_env(entry.get("env"), "env"),
                "overrideEnv": _as_env(entry.get("overrideEnv"), "overrideEnv"),
                "cwd": entry.get("cwd"),
            })

    def image_spec(self, image):
        """The first images entry whose pattern matches, or None (the container stays simulated)."""
        for entry in self.images:
            if fnmatch.fnmatchcase(image or "", entry["image"]):
                return entry
        return None


class PodBlock:
    """Per-pod resources: the port block, the directory, the volume directories."""

    def __init__(self, key, uid, node, index, root, cfg, volumes):
        self.key = key
        self.uid = uid
        self.node = node
        self.index = index
        self.dir = os.path.join(root, "p%d-%s" % (index, uid[:6]))
        self.base = cfg.base_port + cfg.stride * index
        self.ports = {name: self.base + off for name, off in cfg.ports.items()}
        self.volumes = {}
        for i, name in enumerate(volumes):
            self.volumes[name] = os.path.join(self.dir, "v%d" % i)
        self.handles = set()
        self.gone = False

    def variables(self, cfg):
        ns, name = self.key
        out = {"python": sys.executable, "pod_dir": self.dir, "pod_name": name, "namespace": ns,
               "pod_uid": self.uid, "node": self.node, "index": str(self.index), "config_dir": cfg.config_dir,
               "port": str(self.base)}
        for k in range(cfg.stride):
            out["port%d" % k] = str(self.base + k)
        for pname, port in self.ports.items():
            out["%s_port" % pname] = str(port)
        return out


class Handle:
    """One running process (a container instance)."""

    def __init__(self, block, container, gen, popen, image):
        self.block = block
        self.container = container
        self.gen = gen
        self.popen = popen
        self.pid = popen.pid
        self.image = image
        self.started = time.monotonic()
        self.rc = None
        self.stopping = False
        self.on_exit = []

    @property
    def alive(self):
        return self.rc is None


def expand(text, variables):
    return _TEMPLATE_RE.sub(lambda m: variables.get(m.group(1), m.group(0)), str(text))


def resolve_field(path, pod_meta):
    """Downward API fieldRef value from the pod (None: unsupported path)."""
    match = _FIELD_RE.match(path or "")
    if match:
        return str(((pod_meta.get(match.group(1)) or {}).get(match.group(2))) or "")
    simple = {
        "metadata.name": pod_meta.get("name"), "metadata.namespace": pod_meta.get("namespace"),
        "metadata.uid": pod_meta.get("uid"), "spec.nodeName": pod_meta.get("nodeName"),
        "status.podIP": pod_meta.get("podIP"), "status.hostIP": pod_meta.get("hostIP"),
        "spec.serviceAccountName": pod_meta.get("serviceAccountName"),
    }
    if path in simple:
        return str(simple[path] or "")
    return None


class ProcessManager:
    def __init__(self, cfg, post, root=None):
        self.cfg = cfg
        self.post = post
        self.created_root = False
        root = root or (os.path.expandvars(cfg.dir) if cfg.dir else None)
        if not root:
            root = tempfile.mkdtemp(prefix="nodesim-")
            self.created_root = True
        os.makedirs(root, exist_ok=True)
        self.root = os.path.abspath(root)
        self.status_path = os.path.join(self.root, "pods.json")
        self.blocks = {}  # (ns, name, uid) -> PodBlock
        self.handles = set()
        self.status_dirty = True
        LOG.info("process mode: directory %s, ports from %d (%d per pod)", self.root, cfg.base_port, cfg.stride)

    # ----------------------------------------------------------------- pods
    def block(self, key, uid, node, volumes):
        bkey = key + (uid,)
        blk = self.blocks.get(bkey)
        if blk is None:
            used = {b.index for b in self.blocks.values()}
            free = next((i for i in range(self.cfg.max_pods) if i not in used), None)
            if free is None:
                raise RuntimeError("no free port block (processes.maxPods=%d)" % self.cfg.max_pods)
            blk = PodBlock(key, uid, node, free, self.root, self.cfg, volumes)
            if os.path.isdir(blk.dir):
                shutil.rmtree(blk.dir, ignore_errors=True)
            for path in blk.volumes.values():
                os.makedirs(path, mode=0o777, exist_ok=True)
            self.blocks[bkey] = blk
            self.status_dirty = True
        return blk

    def release(self, key, uid):
        """The pod is gone: its block is freed once its last process exited."""
        blk = self.blocks.get(key + (uid,))
        if blk is None:
            return
        blk.gone = True
        for handle in list(blk.handles):
            self.stop(handle, grace=5.0)
        self._maybe_free(blk)

    def _maybe_free(self, blk):
        if blk.gone and not blk.handles:
            self.blocks.pop(blk.key + (blk.uid,), None)
            shutil.rmtree(blk.dir, ignore_errors=True)
            self.status_dirty = True

    # ----------------------------------------------------------------- commands
    def argv(self, spec, container_spec, variables, mounts):
        """Kubernetes semantics: the container's command replaces the image's entrypoint (and its
        default args), the container's args replace the image's args."""
        command = container_spec.get("command")
        args = container_spec.get("args")
        if command:
            argv = list(command) + list(args or [])
        else:
            argv = list(spec.get("command") or []) + list(args if args is not None else (spec.get("args") or []))
        return self.exec_argv(argv, variables, mounts)

    def exec_argv(self, argv, variables, mounts):
        argv = [str(a) for a in argv]
        if argv and argv[0] in self.cfg.aliases:
            argv[0] = self.cfg.aliases[argv[0]]
        return [self.rewrite(expand(a, variables), mounts) for a in argv]

    @staticmethod
    def rewrite(value, mounts):
        for mount_path, real in mounts:
            if value == mount_path or value.startswith(mount_path.rstrip("/") + "/"):
                return real + value[len(mount_path.rstrip("/")):]
        return value

    @staticmethod
    def mounts(blk, container_spec):
        out = []
        for mount in container_spec.get("volumeMounts") or []:
            real = blk.volumes.get(mount.get("name"))
            if real and mount.get("mountPath"):
                if mount.get("subPath"):
                    real = os.path.join(real, mount["subPath"])
                    os.makedirs(real, exist_ok=True)
                out.append((mount["mountPath"], real))
        out.sort(key=lambda m: -len(m[0]))  # the most specific mount first
        return out

    def env(self, spec, container_spec, variables, mounts, pod_meta):
        env = {k: os.environ[k] for k in PASS_ENV if k in os.environ}
        env.update(self.cfg.env)
        env.update(spec["env"])
        for item in container_spec.get("env") or []:
            name = item.get("name")
            if not name:
                continue
            if "value" in item:
                env[name] = "" if item["value"] is None else str(item["value"])
                continue
            field = ((item.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
            value = resolve_field(field, pod_meta) if field else None
            if value is None:
                LOG.debug("env %s: unsupported valueFrom %r, set to ''", name, item.get("valueFrom"))
                value = ""
            env[name] = value
        env.update(spec["overrideEnv"])
        env.update(self.cfg.override_env)
        return {k: self.rewrite(expand(v, variables), mounts) for k, v in env.items()}

    def cwd(self, spec, variables, blk):
        cwd = spec.get("cwd") or self.cfg.cwd
        return os.path.expandvars(expand(cwd, variables)) if cwd else blk.dir

    def prepare(self, blk, spec, container_spec, pod_meta):
        """(argv, env, cwd, mounts) of a new container instance, env resolved from the pod *now*."""
        variables = blk.variables(self.cfg)
        mounts = self.mounts(blk, container_spec)
        argv = self.argv(spec, container_spec, variables, mounts)
        env = self.env(spec, container_spec, variables, mounts, pod_meta)
        return {"argv": argv, "env": env, "cwd": self.cwd(spec, variables, blk), "mounts": mounts,
                "variables": variables}

    # ----------------------------------------------------------------- processes
    def start(self, blk, container, gen, image, prepared, on_exit):
        """Start a container's process; ``on_exit(handle, rc)`` runs in the main loop when it exits
        (unless a stop() registered its own callbacks). Raises OSError if it cannot be started."""
        if not prepared["argv"]:
            raise OSError("no command for image %s (set command: in the processes entry)" % image)
        log_path = os.path.join(blk.dir, "%s.log" % container)
        with open(log_path, "ab") as log:
            log.write(("--- %s start %s\n" % (time.strftime("%H:%M:%S"), json.dumps(prepared["argv"]))).encode())
            log.flush()
            # Same process group as nodesim (up.sh starts it in its own session): a group kill of
            # nodesim cannot leave a container process behind.
            popen = subprocess.Popen(  # pylint: disable=consider-using-with
                prepared["argv"], env=prepared["env"], cwd=prepared["cwd"], stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, close_fds=True,
            )
        handle = Handle(blk, container, gen, popen, image)
        handle.on_exit.append(on_exit)
        blk.handles.add(handle)
        self.handles.add(handle)
        self.status_dirty = True
        threading.Thread(target=self._wait, args=(handle,), name="wait-%d" % handle.pid, daemon=True).start()
        LOG.info("%s/%s %s: started pid %d: %s", blk.key[0], blk.key[1], container, handle.pid,
                 " ".join(prepared["argv"]))
        return handle

    def _wait(self, handle):
        rc = handle.popen.wait()
        self.post(self._exited, handle, rc)

    def _exited(self, handle, rc):
        """Main loop: a process ended."""
        handle.rc = rc
        handle.block.handles.discard(handle)
        self.handles.discard(handle)
        self.status_dirty = True
        LOG.info("%s/%s %s: pid %d exited %d%s", handle.block.key[0], handle.block.key[1], handle.container,
                 handle.pid, rc, " (stopped)" if handle.stopping else "")
        callbacks, handle.on_exit = handle.on_exit, []
        for callback in callbacks:
            try:
                callback(handle, rc)
            except Exception:  # pylint: disable=broad-except
                LOG.exception("exit callback of pid %d failed", handle.pid)
        self._maybe_free(handle.block)

    def stop(self, handle, grace, then=None, after=None):
        """SIGTERM now, SIGKILL after ``grace`` seconds; ``then(handle, rc)`` runs once it exited
        (replacing the crash callback). ``after(delay, fn, *args)`` schedules on the main loop."""
        if not handle.alive:
            if then:
                then(handle, handle.rc)
            return
        if not handle.stopping:
            handle.stopping = True
            handle.on_exit = []  # not a crash any more
            self._signal(handle, signal.SIGTERM)
            if after is not None:
                after(grace, self._kill, handle)
            else:
                timer = threading.Timer(grace, lambda: self.post(self._kill, handle))
                timer.daemon = True
                timer.start()
        if then:
            handle.on_exit.append(then)

    def _kill(self, handle):
        if handle.alive:
            LOG.warning("%s/%s %s: pid %d still running after its grace period; SIGKILL",
                        handle.block.key[0], handle.block.key[1], handle.container, handle.pid)
            self._signal(handle, signal.SIGKILL)

    @staticmethod
    def _signal(handle, sig):
        if handle.popen.returncode is None:
            try:
                handle.popen.send_signal(sig)
            except OSError:
                pass

    def run_exec(self, argv, env, cwd, timeout, callback, *args):
        """Run a hook/probe command in a thread; ``callback(*args, rc, output)`` in the main loop
        (rc -1: could not run or timed out)."""

        def work():
            try:
                proc = subprocess.run(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, timeout=timeout, check=False)
                rc, out = proc.returncode, proc.stdout[-MAX_OUTPUT:].decode("utf-8", "replace")
            except subprocess.TimeoutExpired as exc:
                rc, out = -1, "timed out after %gs: %s" % (timeout, (exc.output or b"")[-MAX_OUTPUT:].decode("utf-8", "replace"))
            except OSError as exc:
                rc, out = -1, str(exc)
            self.post(callback, *(args + (rc, out)))

        threading.Thread(target=work, name="exec", daemon=True).start()

    # ----------------------------------------------------------------- status file
    @staticmethod
    def containers_of(blk):
        out = {}
        for handle in sorted(blk.handles, key=lambda h: h.started):  # the newest instance wins
            out[handle.container] = {"pid": handle.pid, "image": handle.image, "stopping": handle.stopping}
        return out

    def write_status(self):
        """Atomically rewrite ``<dir>/pods.json`` (pods, their ports, directories and processes)."""
        if not self.status_dirty:
            return
        self.status_dirty = False
        pods = {}
        for blk in self.blocks.values():
            if blk.gone:
                continue
            pods["%s/%s" % blk.key] = {
                "namespace": blk.key[0], "name": blk.key[1], "uid": blk.uid, "node": blk.node,
                "index": blk.index, "base_port": blk.base, "ports": dict(blk.ports), "dir": blk.dir,
                "volumes": dict(blk.volumes), "containers": self.containers_of(blk),
            }
        tmp = self.status_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump({"pods": pods, "updated": time.time()}, handle, indent=1, sort_keys=True)
        os.replace(tmp, self.status_path)

    # ----------------------------------------------------------------- shutdown
    def shutdown(self, timeout=8.0):
        """Stop every process (SIGTERM, then SIGKILL after ``timeout``); called after the main loop."""
        live = [h for h in self.handles if h.popen.returncode is None]
        for handle in live:
            self._signal(handle, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for handle in live:
            try:
                handle.popen.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._signal(handle, signal.SIGKILL)
        for handle in live:
            try:
                handle.popen.wait(2.0)
            except subprocess.TimeoutExpired:
                pass
        if live:
            LOG.info("stopped %d processes", len(live))
        if self.created_root:
            shutil.rmtree(self.root, ignore_errors=True)
        else:
            try:
                os.unlink(self.status_path)
            except OSError:
                pass
