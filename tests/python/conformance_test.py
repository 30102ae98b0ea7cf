"""The API-only Kubernetes conformance tests touching Secrets (reference/k8s-api.md §16),
reproduced with the official Python client against a running `coffer serve`:

- [sig-node] Secrets should fail to create secret due to empty secret key
- [sig-node] Secrets should patch a secret
- [sig-storage] Secrets should be immutable if `immutable` field is set
- [sig-auth] ServiceAccounts lifecycle (label-selector watch sees ADDED, PATCH, LIST, DELETED)
"""
import base64
import os
import threading
import time

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

config.load_kube_config(config_file=os.environ["KUBECONFIG"])
v1 = client.CoreV1Api()
NS = "default"


def b64(s):
    return base64.b64encode(s.encode()).decode()


def expect_invalid(fn, *args):
    try:
        fn(*args)
    except ApiException as e:
        assert e.status == 422, f"expected 422 Invalid, got {e.status}: {e.body}"
        return e
    raise AssertionError("expected 422 Invalid")


# should fail to create secret due to empty secret key
expect_invalid(v1.create_namespaced_secret, NS, client.V1Secret(
    metadata=client.V1ObjectMeta(name="secret-emptykey-test"), data={"": b64("value-1\n")}))

# should patch a secret
v1.create_namespaced_secret(NS, client.V1Secret(
    metadata=client.V1ObjectMeta(name="patch-me", labels={"testsecret-constant": "true"}),
    data={"key": b64("value")}, type="Opaque"))
found = v1.list_secret_for_all_namespaces(label_selector="testsecret-constant=true")
assert [s.metadata.name for s in found.items] == ["patch-me"], found.items
patch = {"metadata": {"labels": {"testsecret": "true"}}, "data": {"key": b64(b64("value1"))}}
v1.patch_namespaced_secret("patch-me", NS, patch)
got = v1.read_namespaced_secret("patch-me", NS)
assert got.metadata.labels["testsecret"] == "true"
assert base64.b64decode(base64.b64decode(got.data["key"])).decode() == "value1"
v1.delete_collection_namespaced_secret(NS, label_selector="testsecret=true")
left = v1.list_secret_for_all_namespaces(label_selector="testsecret-constant=true")
assert not left.items, left.items

# should be immutable if `immutable` field is set
s = v1.create_namespaced_secret(NS, client.V1Secret(
    metadata=client.V1ObjectMeta(name="immutable"),
    data={f"data-{i}": b64(f"value-{i}") for i in (1, 2, 3)}))
s.data["data-4"] = b64("value-4")
s = v1.replace_namespaced_secret("immutable", NS, s)
s.immutable = True
s = v1.replace_namespaced_secret("immutable", NS, s)
s.data["data-5"] = b64("value-5")
expect_invalid(v1.replace_namespaced_secret, "immutable", NS, s)
s = v1.read_namespaced_secret("immutable", NS)
s.immutable = False
expect_invalid(v1.replace_namespaced_secret, "immutable", NS, s)
s = v1.read_namespaced_secret("immutable", NS)
s.metadata.labels = {"label1": "value1"}
v1.replace_namespaced_secret("immutable", NS, s)
v1.delete_namespaced_secret("immutable", NS)

# ServiceAccounts lifecycle
events = []
rv = v1.list_namespaced_service_account(NS).metadata.resource_version


def lifecycle():
    time.sleep(0.5)
    v1.create_namespaced_service_account(NS, client.V1ServiceAccount(
        metadata=client.V1ObjectMeta(name="sa-life", labels={"test": "life"})))
    p = v1.patch_namespaced_service_account("sa-life", NS, {"automountServiceAccountToken": False})
    assert p.automount_service_account_token is False
    assert [x.metadata.name for x in v1.list_namespaced_service_account(NS, label_selector="test=life").items] == ["sa-life"]
    v1.delete_namespaced_service_account("sa-life", NS)


t = threading.Thread(target=lifecycle)
t.start()
for ev in watch.Watch().stream(v1.list_namespaced_service_account, NS, label_selector="test=life",
                               resource_version=rv, timeout_seconds=10):
    events.append(ev["type"])
    if ev["type"] == "DELETED":
        break
t.join()
assert events[0] == "ADDED" and events[-1] == "DELETED", events

print("conformance: all checks passed")
