"""The writer pool: per-pod FIFO of API writes (bind, status, delete), one in flight per pod, status snapshots coalesced."""

import collections
import logging
import threading
import time

from kubernetes.client.rest import ApiException

LOG = logging.getLogger("nodesim")


class Writer:
    """Per-pod FIFO of API operations executed by a thread pool, one in flight per key."""

    def __init__(self, kube, threads):
        self.kube = kube
        self.cv = threading.Condition()
        self.queues = {}
        self.ready = collections.deque()
        self.queued = set()
        self.inflight = set()
        self.stop = False
        self.errors = 0
        self.writes = 0
        self.threads = [threading.Thread(target=self._run, name="writer-%d" % i, daemon=True) for i in range(threads)]
        for t in self.threads:
            t.start()

    def submit(self, key, kind, payload):
        with self.cv:
            q = self.queues.setdefault(key, collections.deque())
            if kind == "status" and q and q[-1][0] == "status":
                q[-1] = (kind, payload)
            else:
                q.append((kind, payload))
            if key not in self.inflight and key not in self.queued:
                self.queued.add(key)
                self.ready.append(key)
                self.cv.notify()

    def pending(self):
        with self.cv:
            return sum(len(q) for q in self.queues.values()) + len(self.inflight)

    def _run(self):
        while True:
            with self.cv:
                while not self.ready and not self.stop:
                    self.cv.wait()
                if self.stop:
                    return
                key = self.ready.popleft()
                self.queued.discard(key)
                q = self.queues.get(key)
                if not q:
                    self.queues.pop(key, None)
                    continue
                op = q.popleft()
                self.inflight.add(key)
            try:
                self._execute(key, *op)
            finally:
                with self.cv:
                    self.inflight.discard(key)
                    q = self.queues.get(key)
                    if q:
                        self.queued.add(key)
                        self.ready.append(key)
                        self.cv.notify()
                    else:
                        self.queues.pop(key, None)

    def _drop(self, key):
        with self.cv:
            self.queues.pop(key, None)

    def _execute(self, key, kind, payload):
        # kubelet's status manager keeps re-sending a pod's latest status until the API server takes it; an
        # API server that restarts is gone for a few seconds, so status, bind and delete writes retry ~35 s
        # (events, best effort as in kubelet, ~3 s)
        for attempt in range(5 if kind == "event" else 40):
            try:
                payload_fn = payload[0]
                payload_fn(*payload[1:])
                self.writes += 1
                return
            except ApiException as exc:
                if exc.status == 404:
                    if kind in ("status", "delete", "bind"):
                        self._drop(key)
                    return
                if exc.status in (409, 422, 403, 400):
                    if kind != "event":
                        LOG.warning("%s %s: %s %s", kind, key, exc.status, (exc.body or exc.reason or "")[:300])
                    self.errors += 1
                    if kind == "bind":
                        self._drop(key)
                    return
                if exc.status in (429, 500, 503, 504):
                    time.sleep(min(1.0, 0.2 * (attempt + 1)))
                    continue
                LOG.warning("%s %s: %s", kind, key, exc)
                self.errors += 1
                return
            except Exception as exc:  # connection errors: retry
                LOG.warning("%s %s: %s (attempt %d)", kind, key, exc, attempt + 1)
                time.sleep(min(1.0, 0.2 * (attempt + 1)))
        self.errors += 1
