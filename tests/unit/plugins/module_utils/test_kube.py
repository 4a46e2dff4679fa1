"""The I/O layer with a fake client: optimistic writes, transient-failure retries, the pod watch's errors."""

import time

import pytest

from ansible_collections.meshops.sidecarset.plugins.module_utils.kube import (
    KubeClient,
    KubeError,
    PodWatch,
    backoff_delays,
    is_transient,
    parse_warning,
    read_modify_write,
)


class FakeClient:
    """Pods in a dict; ``failures`` is a list of exceptions raised by the next calls (``None`` = succeed)."""

    def __init__(self, pod, failures=()):
        self.pod = pod
        self.failures = list(failures)
        self.calls = []

    def _maybe_fail(self, verb):
        self.calls.append(verb)
        if self.failures:
            exc = self.failures.pop(0)
            if exc is not None:
                raise exc

    def get_pod(self, namespace, name):
        self._maybe_fail("get")
        return dict(self.pod, metadata=dict(self.pod["metadata"]))

    def patch_pod(self, namespace, name, body):
        self._maybe_fail("patch")
        if body["metadata"]["resourceVersion"] != self.pod["metadata"]["resourceVersion"]:
            raise KubeError(409, "conflict")
        rv = int(self.pod["metadata"]["resourceVersion"]) + 1
        annotations = dict(self.pod["metadata"].get("annotations") or {})
        annotations.update((body["metadata"].get("annotations") or {}))
        self.pod = {"metadata": {"name": name, "resourceVersion": str(rv), "annotations": annotations}}
        return self.pod


def pod(rv="1", version="1"):
    return {"metadata": {"name": "p", "resourceVersion": rv, "annotations": {"version": version}}}


def bump(current):
    """Plan "version + 1" from what is stored; nothing when it was bumped already (version 2)."""
    version = int(current["metadata"]["annotations"]["version"])
    return None if version >= 2 else {"metadata": {"annotations": {"version": str(version + 1)}}}


def test_transient_failures_are_retried_with_backoff_and_versions_bump_once():
    client = FakeClient(pod(), failures=[KubeError(0, "connection refused"), KubeError(503, "unavailable"), None, None])
    slept = []
    after, wrote, attempts = read_modify_write(client, "ns", "p", bump, transient=[0.1, 0.2, 0.4], sleep=slept.append)
    assert wrote and after["metadata"]["annotations"]["version"] == "2"
    assert slept == [0.1, 0.2]
    assert client.calls == ["get", "get", "get", "patch"]


def test_a_write_that_landed_but_whose_answer_was_lost_is_not_applied_twice():
    client = FakeClient(pod())
    real_patch = client.patch_pod

    def lost_answer(namespace, name, body):
        real_patch(namespace, name, body)            # the server stored it ...
        client.patch_pod = real_patch
        raise KubeError(0, "connection reset")        # ... but the answer never arrived

    client.patch_pod = lost_answer
    after, wrote, dummy = read_modify_write(client, "ns", "p", bump, pod=pod(), transient=[0], sleep=lambda s: None)
    assert after["metadata"]["annotations"]["version"] == "2" and wrote is False   # re-planned: nothing left to do
    assert client.pod["metadata"]["resourceVersion"] == "2"                          # one write in all


def test_transient_retries_are_bounded_and_other_errors_are_not_retried():
    client = FakeClient(pod(), failures=[KubeError(500, "boom")] * 5)
    with pytest.raises(KubeError) as info:
        read_modify_write(client, "ns", "p", bump, transient=[0, 0], sleep=lambda s: None)
    assert info.value.status == 500 and client.calls == ["get", "get", "get"]
    client = FakeClient(pod(), failures=[KubeError(403, "forbidden")])
    with pytest.raises(KubeError) as info:
        read_modify_write(client, "ns", "p", bump, transient=[0, 0], sleep=lambda s: None)
    assert info.value.status == 403 and client.calls == ["get"]


def test_backoff_and_transient_classification():
    delays = backoff_delays(total=30.0, first=0.25, cap=4.0)
    assert delays[:5] == [0.25, 0.5, 1.0, 2.0, 4.0] and max(delays) == 4.0 and sum(delays) <= 30.0
    assert all(is_transient(KubeError(s, "x")) for s in (0, 429, 500, 502, 503, 504))
    assert not any(is_transient(KubeError(s, "x")) for s in (400, 401, 403, 404, 409, 410, 422))
    assert not is_transient(ValueError("a bug"))


def test_parse_warning():
    assert parse_warning('299 - "spec.template.spec.containers[0].foo: unknown field"') == \
        "spec.template.spec.containers[0].foo: unknown field"
    assert parse_warning("plain text") == "plain text"
    assert parse_warning("") is None


class WatchClient:
    """list_pods answers; watch_pods fails with ``error`` every time."""

    def __init__(self, error):
        self.error = error

    def list_pods(self, namespace, label_selector=None, from_cache=False):
        return [pod()], "1"

    def watch_pods(self, namespace, resource_version, label_selector=None, timeout_seconds=30):
        raise self.error


@pytest.mark.parametrize("status,fatal", [(403, True), (401, True), (0, False), (503, False)])
def test_pod_watch_reports_its_failure(status, fatal):
    watch = PodWatch(WatchClient(KubeError(status, "watch failed with %d" % status)), "ns").start()
    try:
        deadline = time.monotonic() + 5
        while watch.error is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert watch.error is not None and watch.error.status == status
        assert (watch.fatal_error() is not None) is fatal
    finally:
        watch.stop()


class RecordingApi:
    """Stands in for kubernetes.client.ApiClient: records the request, answers 200 with a Warning header."""

    class Response:
        status = 200
        headers = {"Warning": '299 - "spec.template.spec.foo: unknown field"'}

        @staticmethod
        def read():
            return b"{}"

    def __init__(self):
        self.calls = []

    def param_serialize(self, method, path, query_params=None, header_params=None, body=None, auth_settings=None):
        self.calls.append((method, path, list(query_params or [])))
        return (method, path)

    def call_api(self, *args, **kwargs):
        return self.Response()


def test_workload_writes_ask_for_strict_validation_and_collect_warnings():
    api = RecordingApi()
    client = KubeClient(api)
    client.replace_workload("CronJob", "ns", "nightly", {"kind": "CronJob"})
    method, path, query = api.calls[0]
    assert (method, path) == ("PUT", "/apis/batch/v1/namespaces/ns/cronjobs/nightly")
    assert ("fieldValidation", "Strict") in query
    assert client.warnings == ["spec.template.spec.foo: unknown field"]


class CutStreamApi(RecordingApi):
    """A watch answer whose stream delivers one event, then the connection is cut (urllib3's ProtocolError)."""

    class Response:
        status = 200
        headers = {}

        class response:  # pylint: disable=invalid-name
            @staticmethod
            def stream(amt=None, decode_content=False):
                from urllib3.exceptions import ProtocolError  # pylint: disable=import-outside-toplevel

                yield b'{"type": "MODIFIED", "object": {"metadata": {"name": "p", "resourceVersion": "7"}}}\n'
                raise ProtocolError("Connection broken: IncompleteRead(0 bytes read)")

            @staticmethod
            def release_conn():
                return None

    def call_api(self, *args, **kwargs):
        return self.Response()


def test_a_cut_watch_stream_is_a_kube_error_so_the_watch_resumes():
    client = KubeClient(CutStreamApi())
    events = []
    with pytest.raises(KubeError) as info:
        for event in client.watch_pods("ns", "5"):
            events.append(event)
    assert events == [("MODIFIED", {"metadata": {"name": "p", "resourceVersion": "7"}})]
    assert info.value.status == 0 and "interrupted" in info.value.message and is_transient(info.value)


class ScriptedWatchClient:
    """list_pods answers the next listing; each watch_pods call plays the next script ``(events, error, live)``: the
    events, then ``error`` raised (a cut stream) unless ``None``, then, if ``live``, a stream with nothing more to
    say (else the server ends it). Records the resourceVersion of every watch."""

    def __init__(self, listings, scripts):
        self.listings, self.scripts = list(listings), list(scripts)
        self.lists, self.watched = 0, []

    def list_pods(self, namespace, label_selector=None, from_cache=False):
        self.lists += 1
        return self.listings.pop(0)

    def watch_pods(self, namespace, resource_version, label_selector=None, timeout_seconds=30):
        self.watched.append(resource_version)
        events, error, live = self.scripts.pop(0) if self.scripts else ([], None, True)
        yield from events
        if error is not None:
            raise error
        if live:
            time.sleep(5)


def named(name, rv):
    return {"metadata": {"name": name, "resourceVersion": rv}}


def test_pod_watch_resumes_from_its_last_version_and_relists_on_410():
    client = ScriptedWatchClient(
        listings=[([named("a", "5")], "5"), ([named("a", "9"), named("b", "10")], "10")],
        scripts=[
            ([("MODIFIED", named("a", "7"))], KubeError(0, "watch interrupted: connection reset"), False),  # cut
            ([("ERROR", {"kind": "Status", "code": 410, "reason": "Expired"})], None, False),               # compacted
            ([("ADDED", named("c", "11"))], None, True),
        ])
    watch = PodWatch(client, "ns").start()
    try:
        deadline = time.monotonic() + 10
        while "c" not in watch.pods and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sorted(watch.pods) == ["a", "b", "c"]
        # re-watched from the last version seen (7), not from the start (5) and not by listing again; after the
        # 410 re-listed once and watched from the new list's version
        assert client.watched == ["5", "7", "10"] and client.lists == 2
        assert watch.error is None and watch.resource_version == "11"
    finally:
        watch.stop()


class ThrottledListClient(WatchClient):
    """list_pods answers 429 ``throttled`` times, then the pods; the watch fails (not under test here)."""

    def __init__(self, throttled, status=429):
        super().__init__(KubeError(503, "watch not under test"))
        self.throttled, self.status, self.lists = throttled, status, 0

    def list_pods(self, namespace, label_selector=None, from_cache=False):
        self.lists += 1
        if self.lists <= self.throttled:
            raise KubeError(self.status, "throttled" if self.status == 429 else "refused")
        return super().list_pods(namespace, label_selector, from_cache)


def test_the_first_list_of_a_pod_watch_retries_transient_failures_within_a_bound():
    slept = []
    watch = PodWatch(ThrottledListClient(2), "ns").start(transient=[0.1, 0.2, 0.4], sleep=slept.append)
    watch.stop()
    assert slept == [0.1, 0.2] and watch.client.lists == 3 and "p" in watch.pods
    with pytest.raises(KubeError) as info:  # bounded: the third 429 with two delays left over is re-raised
        PodWatch(ThrottledListClient(5), "ns").start(transient=[0, 0], sleep=lambda s: None)
    assert info.value.status == 429
    client = ThrottledListClient(1, status=403)
    with pytest.raises(KubeError):  # not transient: no retry
        PodWatch(client, "ns").start(transient=[0, 0], sleep=lambda s: None)
    assert client.lists == 1
