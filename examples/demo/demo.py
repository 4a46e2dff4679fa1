"""The demo scenario, against a running local control plane (tools/demo.sh starts and stops it), on
a real kubelet node (``--real-node``) or on the node simulator's process mode (``--process-dir``).

    .venv/bin/python examples/demo/demo.py --kubeconfig K (--real-node NODE | --process-dir D) --out OUT

1. a fresh namespace and a 5-replica Deployment ``demo-app`` (image ``meshops/demo-app:1``, label
   ``mesh-sidecar: enabled``); on a real node its pods ask for it (``schedulerName: meshops-real``, a
   nodeSelector and a toleration of the real nodes' taint, docs/real-nodes.md);
2. ``playbooks/inject.yml`` online: the sample SidecarSet (examples/demo/sidecarset.yaml, v1,
   HotUpgrade) is injected into the Deployment, which replaces its pods;
3. once the 5 injected pods are Ready: traffic through every pod's sidecar (examples/demo/traffic.py):
   on a real node to each pod's own IP, port 15001; in process mode to the loopback ports of the
   simulator's ``pods.json``;
4. ``playbooks/rollout.yml`` from v1 to v2 with maxUnavailable 2 (report in OUT/rollout.json);
5. traffic stopped; checks: 0 failed requests, every pod answers on v2 from its working slot with
   the other slot on the empty image (spec, the kubelet's status, and in process mode the process
   that runs), the same pod UIDs as before the rollout.

Writes OUT/result.json and prints a summary ending with the traffic line and the node kind; exit 0
when every check passed, 1 otherwise, 2 when a step could not run. Every wait is bounded.
"""

import argparse
import copy
import http.client
import json
import os
import signal
import subprocess
import sys
import time

import yaml
from kubernetes.client.rest import ApiException

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import kubeclient  # noqa: E402  pylint: disable=wrong-import-position  # tools/kubeclient.py: the repository's raw client
VENV_BIN = os.path.dirname(sys.executable)
SIDECAR = "mesh-sidecar"
TWINS = (SIDECAR + "-1", SIDECAR + "-2")
WORKING = "kruise.io/sidecarset-working-hotupgrade-container"
EMPTY_IMAGE = "meshops/mesh-sidecar:empty"
V1, V2 = "meshops/mesh-sidecar:v1", "meshops/mesh-sidecar:v2"
DEPLOYMENT = "demo-app"
SIDECAR_PORT = 15001   # MESH_SIDECAR_LISTEN of examples/demo/sidecarset.yaml
KIND_LABEL = "meshops.io/node-kind"


class StepFailed(Exception):
    pass


def same_image(reported, image):
    """A kubelet on containerd reports ``docker.io/<image>`` for an image written as ``<image>``."""
    return reported in (image, "docker.io/" + image)


def say(msg):
    print("demo: %s" % msg, flush=True)


def wait_for(what, predicate, timeout, interval=0.5):
    """``kubeclient.wait_for``, a timeout being a failed step."""
    try:
        return kubeclient.wait_for(predicate, timeout, interval, what, retry_on=(ApiException, OSError, ValueError, KeyError))
    except kubeclient.WaitTimeout as exc:
        raise StepFailed(str(exc)) from None


class Demo:
    def __init__(self, args):
        self.args = args
        self.kube = kubeclient.KubeClient(args.kubeconfig, quiet_tls=True)  # loopback apiserver, self-signed
        self.core = self.kube.core
        self.apps = self.kube.apps
        self.ns = args.namespace
        self.out = os.path.abspath(args.out)
        os.makedirs(self.out, exist_ok=True)
        self.status_file = os.path.join(args.process_dir, "pods.json") if args.process_dir else None
        self.result = {"ok": False, "namespace": self.ns, "checks": {}, "node_kind": None}

    def node_kind(self):
        """What the pods run on, for the closing line: the real node's kubelet and runtime, or process mode."""
        if not self.args.real_node:
            return "simulated (node simulator, process mode: real processes on 127.0.0.1)"
        node = self.core.read_node(self.args.real_node)
        info = node.status.node_info
        kind = (node.metadata.labels or {}).get(KIND_LABEL, "unlabelled")
        return "%s (node %s: kubelet %s, %s)" % (kind, self.args.real_node, info.kubelet_version, info.container_runtime_version)

    # ------------------------------------------------------------------ helpers
    def env(self):
        env = dict(os.environ)
        env.update(
            self.kube.env,
            ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections"),
            ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", PYTHONWARNINGS="ignore", PYTHONDONTWRITEBYTECODE="1",
        )
        return env

    def playbook(self, name, extra, log_name, timeout):
        cmd = [os.path.join(VENV_BIN, "ansible-playbook"), os.path.join(ROOT, "playbooks", name)]
        for key, value in extra.items():
            cmd += ["-e", "%s=%s" % (key, value)]
        log_path = os.path.join(self.out, log_name)
        t0 = time.monotonic()
        with open(log_path, "w", encoding="utf-8") as log:
            proc = subprocess.run(cmd, cwd=ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT,
                                  timeout=timeout, check=False)
        return proc.returncode, round(time.monotonic() - t0, 1), log_path

    def pods(self):
        items = self.core.list_namespaced_pod(self.ns, label_selector="app=%s" % DEPLOYMENT).items
        return self.kube.plain(items)

    def proc_status(self):
        """The simulator's process table (process mode); empty on a real node."""
        if not self.status_file:
            return {}
        with open(self.status_file, encoding="utf-8") as handle:
            return json.load(handle)["pods"]

    def endpoint(self, pod, procs):
        """Where the pod's sidecar listens: its own IP on a real node, its loopback port in process mode."""
        if self.args.real_node:
            return pod["status"].get("podIP"), SIDECAR_PORT
        entry = procs.get("%s/%s" % (self.ns, pod["metadata"]["name"])) or {}
        return "127.0.0.1", (entry.get("ports") or {}).get("sidecar")

    @staticmethod
    def ready(pod):
        return any(c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions") or [])

    def injected_ready(self):
        """The 5 injected pods when the Deployment finished replacing its pods, else None."""
        dep = self.apps.read_namespaced_deployment(DEPLOYMENT, self.ns)
        st = dep.status
        if (st.observed_generation or 0) < dep.metadata.generation or (st.updated_replicas or 0) != self.args.replicas \
                or (st.ready_replicas or 0) != self.args.replicas or (st.replicas or 0) != self.args.replicas:
            return None
        pods = self.pods()
        if len(pods) != self.args.replicas or any(p["metadata"].get("deletionTimestamp") for p in pods):
            return None
        if not all(self.ready(p) and {c["name"] for c in p["spec"]["containers"]} >= set(TWINS) for p in pods):
            return None
        if self.args.real_node:
            return pods if all(p["status"].get("podIP") for p in pods) else None
        procs = self.proc_status()
        for p in pods:
            entry = procs.get("%s/%s" % (self.ns, p["metadata"]["name"]))
            if not entry or entry["uid"] != p["metadata"]["uid"] or "sidecar" not in entry["ports"]:
                return None
        return pods

    @staticmethod
    def get(where, timeout=5.0):
        """GET / at ``where`` = (host, port): (status, x-sidecar-build, x-sidecar-version)."""
        conn = http.client.HTTPConnection(where[0], where[1], timeout=timeout)
        try:
            conn.request("GET", "/", headers={"Connection": "close"})
            resp = conn.getresponse()
            resp.read()
            return resp.status, resp.getheader("x-sidecar-build"), resp.getheader("x-sidecar-version")
        finally:
            conn.close()

    # ------------------------------------------------------------------ steps
    def setup(self):
        self.result["node_kind"] = self.node_kind()
        say("pods run on %s" % self.result["node_kind"])
        say("namespace %s, Deployment %s (%d replicas, image meshops/demo-app:1)" % (self.ns, DEPLOYMENT, self.args.replicas))
        try:
            if self.kube.delete_namespace(self.ns, wait=120):
                say("deleted the namespace left by an earlier run")
            self.kube.create_namespace(self.ns)
            self.kube.wait_default_service_account(self.ns, timeout=60)  # the pods need it
        except kubeclient.WaitTimeout as exc:
            raise StepFailed(str(exc)) from None
        pod_spec = {
            # >= MESH_SIDECAR_DRAIN_SECONDS (5 in the demo SidecarSet) + 10
            "terminationGracePeriodSeconds": 20,
            "containers": [{"name": "app", "image": "meshops/demo-app:1", "imagePullPolicy": "IfNotPresent"}],
        }
        if self.args.real_node:
            # the real nodes' scheduler profile, node and taint (tools/realnode/lib.sh); images are imported, never pulled
            pod_spec.update(schedulerName="meshops-real", nodeSelector={KIND_LABEL: "real", "kubernetes.io/hostname": self.args.real_node},
                            tolerations=[{"key": KIND_LABEL, "operator": "Equal", "value": "real", "effect": "NoSchedule"}])
        self.apps.create_namespaced_deployment(self.ns, {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": DEPLOYMENT, "namespace": self.ns},
            "spec": {
                "replicas": self.args.replicas,
                "selector": {"matchLabels": {"app": DEPLOYMENT}},
                "template": {"metadata": {"labels": {"app": DEPLOYMENT, "mesh-sidecar": "enabled"}}, "spec": pod_spec},
            },
        })

    def inject(self):
        say("injecting examples/demo/sidecarset.yaml (mesh-sidecar v1, HotUpgrade) into Deployment/%s" % DEPLOYMENT)
        rc, secs, log = self.playbook("inject.yml", {
            "mode": "online", "sidecarset": os.path.join(HERE, "sidecarset.yaml"),
            "inject_namespace": self.ns, "inject_workloads": "Deployment/%s" % DEPLOYMENT,
        }, "inject.log", 300)
        self.result["inject"] = {"rc": rc, "seconds": secs, "log": log}
        if rc != 0:
            raise StepFailed("playbooks/inject.yml failed (exit %d), see %s" % (rc, log))
        pods = wait_for("%d injected pods Ready" % self.args.replicas, self.injected_ready, 240, 1.0)
        procs = self.proc_status()
        self.before = {}
        for p in pods:
            name = p["metadata"]["name"]
            where = self.endpoint(p, procs)
            # the app behind the sidecar may still be starting (no readiness probe on it): wait for a 200
            status, build, version = wait_for("pod %s's sidecar on %s:%d to answer 200" % ((name,) + where),
                                              lambda where=where: self.answered(where), 30)
            if status != 200 or build != "v1":
                raise StepFailed("pod %s: the sidecar answered %s build %s (want 200 v1)" % (name, status, build))
            self.before[name] = {"uid": p["metadata"]["uid"], "endpoint": "%s:%d" % where, "node": p["spec"].get("nodeName")}
        say("%d pods injected and Ready in %.0fs, every sidecar answers on v1: %s" % (
            len(pods), secs, ", ".join("%s=%s" % (n, v["endpoint"]) for n, v in sorted(self.before.items()))))

    def answered(self, where):
        """The sidecar's answer at ``where`` when it is a 200, else ``None`` (ask again)."""
        answer = self.get(where)
        return answer if answer and answer[0] == 200 else None

    def start_traffic(self):
        targets = ",".join(v["endpoint"] for v in self.before.values())
        env = self.env()
        env["PYTHONPATH"] = os.path.join(ROOT, "examples", "mesh-sidecar")
        self.traffic_out = os.path.join(self.out, "traffic.json")
        started = os.path.join(self.out, "traffic.started")
        if os.path.exists(started):
            os.unlink(started)
        cmd = [sys.executable, os.path.join(HERE, "traffic.py"), "--targets", targets, "--rate", str(self.args.rate),
               "--max-duration", str(self.args.max_traffic), "--out", self.traffic_out, "--started-file", started]
        if self.args.records:
            cmd += ["--records-dir", self.out]
        self.traffic_log = open(os.path.join(self.out, "traffic.log"), "w", encoding="utf-8")  # pylint: disable=consider-using-with
        self.traffic = subprocess.Popen(cmd, env=env, stdout=self.traffic_log, stderr=subprocess.STDOUT)  # pylint: disable=consider-using-with
        wait_for("the traffic to start", lambda: os.path.exists(started) or self.traffic.poll() is not None, 30, 0.1)
        say("traffic: %g req/s through each of the %d sidecars (keep-alive and one-shot connections, no retries)" % (
            self.args.rate, len(self.before)))
        time.sleep(self.args.warmup)

    def stop_traffic(self):
        if getattr(self, "traffic", None) is None:
            return None
        if self.traffic.poll() is None:
            self.traffic.send_signal(signal.SIGTERM)
        try:
            self.traffic.wait(60)
        except subprocess.TimeoutExpired:
            self.traffic.kill()
            self.traffic.wait(10)
        self.traffic_log.close()
        self.traffic = None
        try:
            with open(self.traffic_out, encoding="utf-8") as handle:
                return json.load(handle)
        except (OSError, ValueError):
            return None

    def rollout(self):
        with open(os.path.join(HERE, "sidecarset.yaml"), encoding="utf-8") as handle:
            doc = yaml.safe_load(handle)
        v2 = copy.deepcopy(doc)
        v2["spec"]["containers"][0]["image"] = V2
        v2_path = os.path.join(self.out, "sidecarset-v2.yaml")
        with open(v2_path, "w", encoding="utf-8") as handle:
            yaml.safe_dump(v2, handle, sort_keys=False)
        report = os.path.join(self.out, "rollout.json")
        say("rollout: playbooks/rollout.yml, %s -> %s, maxUnavailable %s" % (V1, V2, self.args.max_unavailable))
        rc, secs, log = self.playbook("rollout.yml", {
            "rollout_sidecarset": v2_path, "rollout_namespace": self.ns,
            "rollout_max_unavailable": self.args.max_unavailable, "rollout_report_path": report,
            "rollout_timeout": 180,
        }, "rollout.log", 900)
        self.result["rollout"] = {"rc": rc, "seconds": secs, "log": log, "report_path": report}
        try:
            with open(report, encoding="utf-8") as handle:
                self.result["rollout"]["report"] = json.load(handle)
        except (OSError, ValueError):
            self.result["rollout"]["report"] = None
        say("rollout finished in %.0fs (exit %d); log %s" % (secs, rc, log))
        time.sleep(self.args.cooldown)

    def verify(self, traffic):
        checks = self.result["checks"]
        checks["rollout_ok"] = self.result.get("rollout", {}).get("rc") == 0
        checks["traffic_ran"] = bool(traffic) and traffic["total"]["requests"] > 0
        checks["zero_failed_requests"] = bool(traffic) and traffic["total"]["failed"] == 0
        # A readiness probe may flap on a starved machine (every probe is a new Python process): give
        # the pods a bounded moment to be Ready again, and report how long it took.
        t0 = time.monotonic()
        deadline = t0 + 30
        while True:
            pods = [p for p in self.pods() if not p["metadata"].get("deletionTimestamp")]
            if all(self.ready(p) for p in pods) or time.monotonic() > deadline:
                break
            time.sleep(1)
        self.result["waited_for_ready_s"] = round(time.monotonic() - t0, 1)
        now = {p["metadata"]["name"]: p for p in pods}
        checks["same_pod_uids"] = sorted((n, v["uid"]) for n, v in self.before.items()) == sorted(
            (n, p["metadata"]["uid"]) for n, p in now.items())
        procs = self.proc_status()
        rows = []
        all_v2 = True
        for name, p in sorted(now.items()):
            ann = p["metadata"].get("annotations") or {}
            working = json.loads(ann.get(WORKING, "{}")).get(SIDECAR)
            images = {c["name"]: c["image"] for c in p["spec"]["containers"]}
            statuses = {c["name"]: c for c in p.get("status", {}).get("containerStatuses") or []}
            other = TWINS[1] if working == TWINS[0] else TWINS[0]
            entry = procs.get("%s/%s" % (self.ns, name)) or {}
            if self.args.real_node:   # what runs is what the kubelet reports running
                running = {c: s.get("image") for c, s in statuses.items() if (s.get("state") or {}).get("running")}
            else:
                running = {c: i.get("image") for c, i in (entry.get("containers") or {}).items()}
            try:
                status, build, version = self.get(self.endpoint(p, procs))
            except (OSError, TypeError) as exc:
                status, build, version = None, str(exc), None
            wstatus = statuses.get(working) or {}
            ostatus = statuses.get(other) or {}
            problems = [text for bad, text in (
                (working not in TWINS, "no working slot annotation"),
                (images.get(working) != V2, "working slot spec image %s" % images.get(working)),
                (images.get(other) != EMPTY_IMAGE, "other slot spec image %s" % images.get(other)),
                (not same_image(wstatus.get("image"), V2) or not wstatus.get("ready"), "working slot status %s ready=%s" % (
                    wstatus.get("image"), wstatus.get("ready"))),
                (not same_image(ostatus.get("image"), EMPTY_IMAGE), "other slot status image %s" % ostatus.get("image")),
                (not same_image(running.get(working), V2), "working slot runs %s" % running.get(working)),
                (not same_image(running.get(other), EMPTY_IMAGE), "other slot runs %s" % running.get(other)),
                (status != 200 or build != "v2", "sidecar answers %s %s" % (status, build)),
                (not self.ready(p), "pod not Ready"),
            ) if bad]
            ok = not problems
            all_v2 = all_v2 and ok
            rows.append({"pod": name, "uid": p["metadata"]["uid"], "working": working, "working_image": images.get(working),
                         "other": other, "other_image": images.get(other), "answers": "%s %s (version %s)" % (status, build, version),
                         "restarts": {c: statuses.get(c, {}).get("restartCount") for c in TWINS}, "ok": ok,
                         "problems": problems, "processes": entry.get("containers")})
        checks["every_pod_v2_working_other_empty"] = all_v2 and len(rows) == self.args.replicas
        self.result["pods"] = rows
        self.result["traffic"] = traffic
        self.result["ok"] = all(checks.values())

    def report(self):
        rep = (self.result.get("rollout") or {}).get("report") or {}
        print("", flush=True)
        print("=== rollout report (%s) ===" % (self.result.get("rollout") or {}).get("report_path"))
        if rep:
            summary = rep.get("result") if isinstance(rep.get("result"), dict) else {
                k: v for k, v in rep.items() if not isinstance(v, (list, dict))}
            print(json.dumps(summary, sort_keys=True))
            for i, batch in enumerate(rep.get("batches") or []):
                if isinstance(batch, dict):
                    pods = batch.get("pods") or []
                    names = [p.get("name", p) if isinstance(p, dict) else p for p in pods]
                    keys = {k: v for k, v in batch.items() if not isinstance(v, (list, dict))}
                    print("batch %d: %s %s" % (i + 1, json.dumps(keys, sort_keys=True), ", ".join(map(str, names))))
        else:
            print("(no report)")
        print("=== pods after the rollout ===")
        for row in self.result.get("pods") or []:
            print("%-32s %s  working=%s (%s)  other=%s (%s)  answers %s  %s" % (
                row["pod"], row["uid"][:8], row["working"], row["working_image"], row["other"], row["other_image"],
                row["answers"], "OK" if row["ok"] else "WRONG: " + "; ".join(row["problems"])))
        traffic = self.result.get("traffic")
        print("=== traffic ===")
        if traffic:
            t = traffic["total"]
            print("%d requests in %.1fs, %d failed %s, answered by builds %s, p50 %.1f ms, p99 %.1f ms, max %.1f ms; ran on %s" % (
                t["requests"], t["duration_s"], t["failed"], t["errors"] or "", t["by_build"], t["p50_ms"], t["p99_ms"], t["max_ms"],
                self.result["node_kind"]))
        else:
            print("(no traffic result)")
        print("=== checks ===")
        for key, value in self.result["checks"].items():
            print("%-36s %s" % (key, "PASS" if value else "FAIL"))
        print("demo: %s (details: %s)" % ("SUCCESS" if self.result["ok"] else "FAILED", os.path.join(self.out, "result.json")), flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--kubeconfig", required=True)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--real-node", help="a Ready real node (label meshops.io/node-kind=real, tools/realnode)")
    where.add_argument("--process-dir", help="the node simulator's process directory (pods.json): process mode")
    parser.add_argument("--out", required=True, help="directory for logs, reports and result.json")
    parser.add_argument("--namespace", default="mesh-demo")
    parser.add_argument("--replicas", type=int, default=5)
    parser.add_argument("--max-unavailable", default="2")
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second per pod")
    parser.add_argument("--max-traffic", type=float, default=600.0, help="traffic hard limit, seconds")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--cooldown", type=float, default=3.0)
    parser.add_argument("--records", action="store_true", help="keep every request record (JSON lines)")
    args = parser.parse_args(argv)
    demo = Demo(args)
    code = 1
    try:
        demo.setup()
        demo.inject()
        demo.start_traffic()
        demo.rollout()
        traffic = demo.stop_traffic()
        demo.verify(traffic)
        code = 0 if demo.result["ok"] else 1
    except (StepFailed, ApiException, subprocess.TimeoutExpired, OSError) as exc:
        demo.result["error"] = str(exc)
        say("FAILED: %s" % exc)
        code = 2
    finally:
        leftover = demo.stop_traffic()
        if leftover and not demo.result.get("traffic"):
            demo.result["traffic"] = leftover
    with open(os.path.join(demo.out, "result.json"), "w", encoding="utf-8") as handle:
        json.dump(demo.result, handle, indent=1, sort_keys=True, default=str)
    demo.report()
    return code


if __name__ == "__main__":
    sys.exit(main())
