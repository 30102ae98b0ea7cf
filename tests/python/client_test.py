"""The official Python `kubernetes` client against a running `coffer serve`.

Run by crates/coffer/tests/e2e_python.rs with KUBECONFIG set; exits non-zero on the first
failed assertion. Mirrors what users of the client do with Secrets: create, read, list with a
selector, patch, replace (and a stale replace), watch, delete.
"""
import base64
import os
import sys
import threading
import time

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

config.load_kube_config(config_file=os.environ["KUBECONFIG"])
v1 = client.CoreV1Api()
NS = "default"


def expect_status(code, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except ApiException as e:
        assert e.status == code, f"expected {code}, got {e.status}: {e.body}"
        return e
    raise AssertionError(f"expected HTTP {code}, call succeeded")


body = client.V1Secret(
    metadata=client.V1ObjectMeta(name="py1", labels={"app": "py"}),
    string_data={"k": "v"},
    type="Opaque",
)
created = v1.create_namespaced_secret(NS, body)
assert created.data == {"k": base64.b64encode(b"v").decode()}, created.data
assert created.string_data is None
assert created.metadata.uid and created.metadata.resource_version

read = v1.read_namespaced_secret("py1", NS)
assert base64.b64decode(read.data["k"]) == b"v"

listed = v1.list_namespaced_secret(NS, label_selector="app=py", limit=10)
assert [s.metadata.name for s in listed.items] == ["py1"], listed.items

dup = expect_status(409, v1.create_namespaced_secret, NS, client.V1Secret(metadata=client.V1ObjectMeta(name="py1")))
assert "already exists" in dup.body

dry = v1.create_namespaced_secret(NS, client.V1Secret(metadata=client.V1ObjectMeta(generate_name="gen-")), dry_run="All")
assert dry.metadata.name.startswith("gen-") and len(dry.metadata.name) == len("gen-") + 5
assert not [s for s in v1.list_namespaced_secret(NS).items if s.metadata.name.startswith("gen-")], "dry run stored nothing"

everywhere = v1.list_secret_for_all_namespaces(field_selector="metadata.name=py1")
assert [s.metadata.namespace for s in everywhere.items] == [NS]

patched = v1.patch_namespaced_secret("py1", NS, {"metadata": {"labels": {"x": "y"}}})
assert patched.metadata.labels == {"app": "py", "x": "y"}

current = v1.read_namespaced_secret("py1", NS)
stale_rv = current.metadata.resource_version
current.data = {"k": base64.b64encode(b"new").decode()}
replaced = v1.replace_namespaced_secret("py1", NS, current)
assert replaced.metadata.resource_version != stale_rv
current.metadata.resource_version = stale_rv
conflict = expect_status(409, v1.replace_namespaced_secret, "py1", NS, current)
assert "the object has been modified" in conflict.body

expect_status(404, v1.read_namespaced_secret, "nope", NS)

rv = v1.list_namespaced_secret(NS).metadata.resource_version
seen = []


def delete_later():
    time.sleep(1)
    v1.delete_namespaced_secret("py1", NS)


threading.Thread(target=delete_later).start()
for event in watch.Watch().stream(v1.list_namespaced_secret, NS, resource_version=rv, timeout_seconds=5):
    seen.append((event["type"], event["object"].metadata.name))
    if event["type"] == "DELETED":
        break
assert ("DELETED", "py1") in seen, seen

expect_status(404, v1.read_namespaced_secret, "py1", NS)
print("python client: all checks passed")
