"""The seed's MOSN scenario on a real kubelet node (make demo MESH=mosn, tools/mosn/demo.sh; docs/mosn.md).

    .venv/bin/python examples/mosn/demo.py --kubeconfig K --node realnode-0 --out out/mosn-demo [--traffic-rate 20]

1. the seed's SidecarSet as printed (examples/sidecarsets/mosn.yaml with the write-up's ``postStar``) through
   ``playbooks/inject.yml``: the error it reports, with its field path; then the corrected ``postStart``,
   images ``meshops/mosn:v1`` (tools/mosn/images.sh) and ``meshops/mesh-sidecar:empty``, namespace NS;
2. the seed's ``test-app`` Deployment (examples/manifests/test-app.yaml; image ``meshops/demo-app:1``, no
   registry here) on the real node (``schedulerName: meshops-real`` + nodeSelector), injected offline;
3. traffic through MOSN on every pod's IP, port 15001 (examples/demo/traffic.py: keep-alive and new
   connections, never retried);
4. ``playbooks/rollout.yml`` v1 -> v2; checks: 0 failed requests, same pod uids, restarts +2, v2 answering,
   the old twin on the empty image, answered by v1 then v2.

Writes OUT/result.json; exit 0 when every check passed, 1 otherwise, 2 when a step could not run.
"""

import argparse
import copy
import glob
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
SEED_SIDECARSET = os.path.join(ROOT, "examples", "sidecarsets", "mosn.yaml")
SEED_APP = os.path.join(ROOT, "examples", "manifests", "test-app.yaml")
V1, V2, EMPTY, APP = "meshops/mosn:v1", "meshops/mosn:v2", "meshops/mesh-sidecar:empty", "meshops/demo-app:1"
TWINS = ("mosn-1", "mosn-2")
WORKING = "kruise.io/sidecarset-working-hotupgrade-container"
PORT = 15001


class StepFailed(Exception):
    pass


def say(msg):
    print("mosn-demo: %s" % msg, flush=True)


def wait_for(what, predicate, timeout, interval=0.5):
    """``kubeclient.wait_for``, a timeout being a failed step."""
    try:
        return kubeclient.wait_for(predicate, timeout, interval, what, retry_on=(ApiException, OSError, ValueError, KeyError))
    except kubeclient.WaitTimeout as exc:
        raise StepFailed(str(exc)) from None


def seed_as_printed(raw):
    """The write-up's SidecarSet: ``lifecycle.postStar`` where Kubernetes spells ``postStart``."""
    typo = copy.deepcopy(raw)
    life = typo["spec"]["containers"][0]["lifecycle"]
    life["postStar"] = life.pop("postStart")
    return typo


def ours(raw, image, namespace):
    """The corrected seed with the images built here and the demo's namespace."""
    doc = copy.deepcopy(raw)
    doc["spec"]["namespace"] = namespace
    doc["spec"]["containers"][0]["image"] = image
    doc["spec"]["containers"][0]["upgradeStrategy"]["hotUpgradeEmptyImage"] = EMPTY
    return doc


def answer(ip, timeout=5.0):
    conn = http.client.HTTPConnection(ip, PORT, timeout=timeout)
    try:
        conn.request("GET", "/", headers={"Connection": "close"})
        resp = conn.getresponse()
        resp.read()
        return resp.status, resp.getheader("x-sidecar-build")
    finally:
        conn.close()


def restarts(pod):
    """The sum of the pod's container restart counts."""
    return sum(s.get("restartCount", 0) for s in pod["status"].get("containerStatuses") or [])


def build_order(records):
    """Builds in the order they first answered (t_done): ['mosn-v1', 'mosn-v2']. While the old MOSN drains
    its keep-alive connections both processes answer, interleaved; that overlap is not counted twice."""
    order = []
    for rec in sorted(records, key=lambda r: r["t_done"]):
        if rec["ok"] and rec["build"] not in order:
            order.append(rec["build"])
    return order


class Demo:
    def __init__(self, args):
        self.args = args
        self.kube = kubeclient.KubeClient(args.kubeconfig, quiet_tls=True)  # loopback apiserver, self-signed
        self.core = self.kube.core
        self.apps = self.kube.apps
        self.ns = args.namespace
        self.out = os.path.abspath(args.out)
        os.makedirs(self.out, exist_ok=True)
        self.result = {"ok": False, "namespace": self.ns, "node": args.node, "checks": {}}
        self.traffic = None

    def env(self):
        env = dict(os.environ)
        env.update(self.kube.env,
                   ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections"),
                   ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", PYTHONWARNINGS="ignore", PYTHONDONTWRITEBYTECODE="1")
        return env

    def playbook(self, name, extra, log_name, timeout):
        cmd = [os.path.join(VENV_BIN, "ansible-playbook"), os.path.join(ROOT, "playbooks", name)]
        for key, value in extra.items():
            cmd += ["-e", "%s=%s" % (key, value)]
        log_path = os.path.join(self.out, log_name)
        t0 = time.monotonic()
        with open(log_path, "w", encoding="utf-8") as log:
            proc = subprocess.run(cmd, cwd=ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT, timeout=timeout, check=False)
        with open(log_path, encoding="utf-8") as log:
            text = log.read()
        return proc.returncode, round(time.monotonic() - t0, 1), text

    def write(self, name, doc):
        path = os.path.join(self.out, name)
        with open(path, "w", encoding="utf-8") as handle:
            yaml.safe_dump(doc, handle, sort_keys=False)
        return path

    def pods(self):
        items = self.core.list_namespaced_pod(self.ns, label_selector="app=test-app").items
        return self.kube.plain([p for p in items if not p.metadata.deletion_timestamp])

    @staticmethod
    def ready(pod):
        sts = (pod.get("status") or {}).get("containerStatuses") or []
        return len(sts) == len(pod["spec"]["containers"]) and all(s.get("ready") for s in sts)

    # ------------------------------------------------------------------ steps
    def sidecarsets(self):
        with open(SEED_SIDECARSET, encoding="utf-8") as handle:
            raw = yaml.safe_load(handle)
        src = os.path.join(self.out, "manifests")
        os.makedirs(src, exist_ok=True)
        with open(SEED_APP, encoding="utf-8") as handle:
            app = yaml.safe_load(handle)
        app["metadata"]["namespace"] = self.ns
        spec = app["spec"]["template"]["spec"]
        app["spec"]["replicas"] = self.args.replicas
        spec["containers"][0].update(image=APP, imagePullPolicy="IfNotPresent")
        spec["containers"][0]["ports"] = [{"containerPort": 8080}]
        spec["schedulerName"] = "meshops-real"
        spec["nodeSelector"] = {"meshops.io/node-kind": "real", "kubernetes.io/hostname": self.args.node}
        with open(os.path.join(src, "test-app.yaml"), "w", encoding="utf-8") as handle:
            yaml.safe_dump(app, handle, sort_keys=False)
        typo = self.write("sidecarset-as-printed.yaml", seed_as_printed(ours(raw, V1, self.ns)))
        rc, _secs, text = self.playbook("inject.yml", {"sidecarset": typo, "src": src, "dest": os.path.join(self.out, "typo-out")},
                                        "inject-as-printed.log", 300)
        lines = [ln.strip() for ln in text.splitlines() if "postStar" in ln]
        found = [ln for ln in lines if "lifecycle.postStar" in ln]
        self.result["typo"] = {"rc": rc, "message": found[0] if found else lines[:3]}
        self.result["checks"]["typo_reported_with_field_path"] = rc != 0 and bool(found)
        say("the seed as printed (lifecycle.postStar): inject.yml exit %d: %s" % (
            rc, (found[0][:300] if found else "NO postStar error reported")))
        self.v1_path = self.write("sidecarset-v1.yaml", ours(raw, V1, self.ns))
        self.v2_path = self.write("sidecarset-v2.yaml", ours(raw, V2, self.ns))
        dest = os.path.join(self.out, "injected")
        rc, secs, text = self.playbook("inject.yml", {"sidecarset": self.v1_path, "src": src, "dest": dest}, "inject.log", 300)
        if rc != 0:
            raise StepFailed("inject.yml with the corrected seed failed (exit %d):\n%s" % (rc, text[-2000:]))
        say("corrected seed (postStart, images %s / %s): test-app injected offline in %.1fs" % (V1, EMPTY, secs))
        with open(os.path.join(dest, "test-app.yaml"), encoding="utf-8") as handle:
            self.deployment = yaml.safe_load(handle)

    def deploy(self):
        try:
            self.kube.delete_namespace(self.ns, wait=180)
        except kubeclient.WaitTimeout as exc:
            raise StepFailed(str(exc)) from None
        self.kube.create_namespace(self.ns)
        t0 = time.monotonic()
        self.apps.create_namespaced_deployment(self.ns, self.deployment)

        def all_ready():
            pods = self.pods()
            return pods if len(pods) == self.args.replicas and all(self.ready(p) for p in pods) else None

        pods = wait_for("%d test-app pod(s) 3/3 Ready on %s" % (self.args.replicas, self.args.node), all_ready, 240, 1)
        self.before = {p["metadata"]["name"]: p for p in pods}
        for p in pods:
            names = [c["name"] for c in p["spec"]["containers"]]
            say("pod %s %s on %s, IP %s, containers %s, Ready after %.0fs (postStart: sleep 30)" % (
                p["metadata"]["name"], "%d/%d" % (len(names), len(names)), p["spec"].get("nodeName"), p["status"].get("podIP"),
                ",".join(names), time.monotonic() - t0))
            # Ready says the containers started, not that the app behind MOSN listens yet (the seed's test-app has no
            # readiness probe; MOSN answers 502 until it does): the first 200 may take a moment on a loaded machine
            deadline, status, build = time.monotonic() + 30, None, None
            while True:
                try:
                    status, build = answer(p["status"]["podIP"])
                except OSError as exc:
                    status, build = exc.__class__.__name__, None
                if (status, build) == (200, "mosn-v1") or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            if status != 200 or build != "mosn-v1":
                raise StepFailed("pod %s answers %s %s, not 200 mosn-v1 (30 s after Ready)" % (p["metadata"]["name"], status, build))
            say("pod %s answers 200 mosn-v1, %.1fs after Ready" % (p["metadata"]["name"], time.monotonic() - deadline + 30))

    def start_traffic(self):
        targets = ",".join("%s:%d" % (p["status"]["podIP"], PORT) for p in self.before.values())
        self.records = os.path.join(self.out, "records")
        os.makedirs(self.records, exist_ok=True)
        for old in glob.glob(os.path.join(self.records, "*.jsonl")):
            os.unlink(old)
        self.traffic_out = os.path.join(self.out, "traffic.json")
        cmd = [sys.executable, os.path.join(ROOT, "examples", "demo", "traffic.py"), "--targets", targets,
               "--rate", str(self.args.traffic_rate), "--max-duration", "900", "--keepalive-workers", "2",
               "--close-workers", "2", "--out", self.traffic_out, "--records-dir", self.records]
        env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "examples", "mesh-sidecar"))
        self.traffic_log = open(os.path.join(self.out, "traffic.log"), "w", encoding="utf-8")  # pylint: disable=consider-using-with
        self.traffic = subprocess.Popen(cmd, env=env, stdout=self.traffic_log, stderr=subprocess.STDOUT)  # pylint: disable=consider-using-with
        say("traffic: %s req/s per pod (2 keep-alive + 2 new-connection workers) to %s" % (self.args.traffic_rate, targets))
        time.sleep(self.args.warmup)

    def stop_traffic(self):
        if not self.traffic:
            return None
        self.traffic.send_signal(signal.SIGTERM)
        self.traffic.wait(30)
        self.traffic_log.close()
        self.traffic = None
        with open(self.traffic_out, encoding="utf-8") as handle:
            return json.load(handle)

    def rollout(self):
        say("rollout: playbooks/rollout.yml %s -> %s" % (V1, V2))
        report = os.path.join(self.out, "rollout.json")
        extra = {"rollout_sidecarset": self.v2_path, "rollout_namespace": self.ns, "rollout_report_path": report,
                 "rollout_timeout": 300}
        rc, secs, _text = self.playbook("rollout.yml", extra, "rollout.log", 900)
        self.result["rollout"] = {"rc": rc, "seconds": secs}
        say("rollout finished in %.0fs (exit %d); log %s" % (secs, rc, os.path.join(self.out, "rollout.log")))
        time.sleep(self.args.cooldown)

    def verify(self, traffic):
        checks = self.result["checks"]
        checks["rollout_ok"] = self.result["rollout"]["rc"] == 0
        total = (traffic or {}).get("total") or {}
        checks["zero_failed_requests"] = total.get("requests", 0) > 0 and total.get("failed") == 0
        now = {p["metadata"]["name"]: p for p in self.pods()}
        checks["same_pod_uids"] = sorted((n, p["metadata"]["uid"]) for n, p in self.before.items()) == sorted(
            (n, p["metadata"]["uid"]) for n, p in now.items())
        rows = []
        ok_pods = True
        for name, p in sorted(now.items()):
            old = self.before.get(name) or p
            working = json.loads((p["metadata"].get("annotations") or {}).get(WORKING, "{}")).get("mosn")
            other = TWINS[0] if working == TWINS[1] else TWINS[1]
            spec = {c["name"]: c["image"] for c in p["spec"]["containers"]}
            st = {s["name"]: s for s in p["status"].get("containerStatuses") or []}
            status, build = answer(p["status"]["podIP"])
            row = {"pod": name, "restarts": "%d -> %d" % (restarts(old), restarts(p)), "working": working,
                   "working_image": spec.get(working), "other": other, "other_image": spec.get(other),
                   "other_status_image": (st.get(other) or {}).get("image"), "answers": "%s %s" % (status, build)}
            good = (restarts(p) == restarts(old) + 2 and spec.get(working) == V2 and spec.get(other) == EMPTY
                    and (st.get(other) or {}).get("image", "").endswith(EMPTY) and status == 200 and build == "mosn-v2")
            ok_pods = ok_pods and good
            rows.append(row)
            say("pod %s: restarts %s, working %s on %s, %s on %s, answers %s -> %s" % (
                name, row["restarts"], working, spec.get(working), other, spec.get(other), row["answers"], "ok" if good else "FAILED"))
        checks["restarts_plus_2_v2_answering_old_twin_empty"] = ok_pods and bool(rows)
        records = []
        for path in glob.glob(os.path.join(self.records, "*.jsonl")):
            with open(path, encoding="utf-8") as handle:
                records += [json.loads(line) for line in handle if line.strip()]
        order = build_order(records)
        checks["answered_by_v1_then_v2"] = order[:1] == ["mosn-v1"] and order[-1:] == ["mosn-v2"]
        self.result.update(pods=rows, traffic=total, order=order)
        self.result["ok"] = all(checks.values())
        for key, value in checks.items():
            say("check %-45s %s" % (key, "ok" if value else "FAILED"))
        node = self.core.read_node(self.args.node)
        kind = (node.metadata.labels or {}).get("meshops.io/node-kind", "simulated")
        say("traffic: %d requests, %d failed, answered by %s (node %s: %s, kubelet %s, containerd %s)" % (
            total.get("requests", 0), total.get("failed", -1), " then ".join(order) or "nobody", self.args.node, kind,
            node.status.node_info.kubelet_version, node.status.node_info.container_runtime_version))

    def cleanup(self):
        if self.args.keep:
            say("kept namespace %s (--keep)" % self.ns)
            return
        try:
            self.kube.delete_namespace(self.ns)
        except ApiException:
            pass

    def run(self):
        try:
            self.sidecarsets()
            self.deploy()
            self.start_traffic()
            self.rollout()
            self.verify(self.stop_traffic())
        except (StepFailed, ApiException, OSError, subprocess.TimeoutExpired) as exc:
            say("FAILED: %s" % exc)
            self.result["error"] = str(exc)
            self.stop_traffic()
            return 2
        finally:
            with open(os.path.join(self.out, "result.json"), "w", encoding="utf-8") as handle:
                json.dump(self.result, handle, indent=1, sort_keys=True, default=str)
            self.cleanup()
        return 0 if self.result["ok"] else 1


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--node", required=True, help="the real node (label meshops.io/node-kind=real)")
    parser.add_argument("--namespace", default="mosn-demo")
    parser.add_argument("--out", default=os.path.join(ROOT, "out", "mosn-demo"))
    parser.add_argument("--replicas", type=int, default=1, help="the seed's test-app has 1")
    parser.add_argument("--traffic-rate", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of traffic before the rollout")
    parser.add_argument("--cooldown", type=float, default=5.0, help="seconds of traffic after it")
    parser.add_argument("--keep", action="store_true", help="leave the namespace for exploring")
    return Demo(parser.parse_args(argv)).run()


if __name__ == "__main__":
    sys.exit(main())
