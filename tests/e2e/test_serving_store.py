"""spec.deploy from an object store, without KServe (docs/serving.md, "On a cluster"): the
operator's Deployment runs ``kubenas serve --model-url`` on the best trial's model in the
store (moto's S3 server on this machine's loopback, which pods reach at the same
address), with the credentials of the artifacts' Secret as env and no volume; the
serving pod answers V2 infer requests whose predictions over the digits test split score
the best trial's reported test accuracy, and it writes nothing to the store."""
from __future__ import annotations

from tests.e2e.test_artifacts import BOTH_FORMATS, small
from tests.e2e.test_cluster import apply, finish
from tests.e2e.test_deploy import deployed, serves_best


def test_deploy_serves_the_best_model_from_an_object_store(installed, namespace, s3_store):
    fs = s3_store
    # A bucket of this test's own: moto's store is one per process, so the artifacts tests'
    # bucket is still there when this test runs after them in the same session.
    bucket = f"serve-{namespace}"
    fs.mkdir(bucket)
    body = small("e2e-store", {"url": f"s3://{bucket}/serve", "credentialsSecret": "s3-creds"}, BOTH_FORMATS)
    body["spec"]["deploy"] = {"kind": "Deployment"}
    apply(installed, namespace, body)
    exp = finish(installed, namespace, "e2e-store")
    best = exp["status"]["bestTrial"]
    assert best["model"].startswith(f"s3://{bucket}/serve/e2e-store_"), best
    shown = deployed(installed, namespace, "e2e-store", ("Deployed", "DeployRefused"))
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
    _, meta = serves_best(installed, namespace, "e2e-store", best)
    assert meta["platform"] == "onnxruntime_onnx", meta
    fs.invalidate_cache()
    assert sorted(fs.find(f"{bucket}/serve")) == stored, "the serving pod wrote to the store"
