"""spec.deploy from an object store, without KServe (docs/serving.md, "On a cluster"): the
operator's Deployment runs ``kubenas serve --model-url`` on the best trial's model in the
store (moto's S3 server on this machine's loopback, which pods reach at the same
address), with the credentials of the artifacts' Secret as env and no volume; the
serving pod answers V2 infer requests whose predictions over the digits test split score
the best trial's reported test accuracy, and it writes nothing to the store."""
from __future__ import annotations

from tests.e2e.test_artifacts import finish, s3_endpoint, small  # noqa: F401 - a fixture
from tests.e2e.test_cluster import apply
from tests.e2e.test_deploy import SERVE_PORT, digits_test_split, http, serving_pod
from tests.waiting import wait_until


def test_deploy_serves_the_best_model_from_an_object_store(installed, namespace, s3_endpoint,  # noqa: F811
                                                           monkeypatch):
    import s3fs

    creds = {"AWS_ACCESS_KEY_ID": "e2e", "AWS_SECRET_ACCESS_KEY": "e2e-secret", "AWS_DEFAULT_REGION": "us-east-1",
             "AWS_ENDPOINT_URL": s3_endpoint}
    for var, value in creds.items():
        monkeypatch.setenv(var, value)
    s3fs.S3FileSystem.clear_instance_cache()
    fs = s3fs.S3FileSystem()
    # A bucket of this test's own: moto's store is one per process, so the artifacts tests'
    # bucket is still there when this test runs after them in the same session.
    bucket = f"serve-{namespace}"
    fs.mkdir(bucket)
    installed.kubectl("create", "secret", "generic", "s3-creds", "-n", namespace,
                      *[f"--from-literal={k}={v}" for k, v in creds.items()])
    body = small("e2e-store", {"url": f"s3://{bucket}/serve", "credentialsSecret": "s3-creds"})
    body["spec"]["trial"]["export"] = {"formats": ["torchscript", "onnx"]}
    body["spec"]["deploy"] = {"kind": "Deployment"}
    apply(installed, namespace, body)
    exp = finish(installed, namespace, "e2e-store")
    best = exp["status"]["bestTrial"]
    assert best["model"].startswith(f"s3://{bucket}/serve/e2e-store_"), best

    def deployed():
        status = installed.get_json("nasexperiment", "e2e-store", "-n", namespace).get("status") or {}
        return status.get("deployment") if (status.get("deployment") or {}).get("reason") in (
            "Deployed", "DeployRefused") else None

    shown = wait_until(deployed, 120, "status.deployment", interval=2)
    assert shown["reason"] == "Deployed" and shown["kind"] == "Deployment", shown
    assert shown["trial"] == best["name"] and shown["model"] == best["model"], shown
    dep = installed.get_json("deployment", "e2e-store-serve", "-n", namespace)
    pod_spec = dep["spec"]["template"]["spec"]
    container = pod_spec["containers"][0]
    onnx_url = best["model"].rpartition("/")[0] + "/model.onnx"
    assert container["command"][container["command"].index("--model-url") + 1] == onnx_url, container["command"]
    assert {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"] if "valueFrom" in e} \
        .get("AWS_SECRET_ACCESS_KEY") == "s3-creds", container["env"]
    assert [v["name"] for v in pod_spec["volumes"]] == ["tmp"], pod_spec["volumes"]
    assert pod_spec["automountServiceAccountToken"] is False
    stored = sorted(fs.find(f"{bucket}/serve"))

    pod = wait_until(lambda: serving_pod(installed, namespace, "e2e-store"), 180, "a running serving pod",
                     interval=2)
    base = f"http://{pod['status']['podIP']}:{SERVE_PORT}"
    wait_until(lambda: http(f"{base}/v2/health/ready")[0] == 200, 180, "the serving pod to be ready", interval=2)
    code, meta = http(f"{base}/v2/models/e2e-store")
    assert code == 200 and meta["versions"] == [best["name"]] and meta["platform"] == "onnxruntime_onnx", meta
    x, y = digits_test_split()
    code, answer = http(f"{base}/v2/models/e2e-store/infer", {"inputs": [
        {"name": meta["inputs"][0]["name"], "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]})
    assert code == 200, answer
    predicted = next(o for o in answer["outputs"] if o["name"] == "predicted_class")["data"]
    accuracy = sum(int(p) == int(t) for p, t in zip(predicted, y)) / len(y)
    assert abs(accuracy - best["metrics"]["testAccuracy"]) <= 0.005, (accuracy, best["metrics"])
    fs.invalidate_cache()
    assert sorted(fs.find(f"{bucket}/serve")) == stored, "the serving pod wrote to the store"
