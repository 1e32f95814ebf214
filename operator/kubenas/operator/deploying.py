"""``spec.deploy``: the serving object for an experiment's model (docs/serving.md, "On a
cluster"). Pure: the manifests (a KServe InferenceService, or a Deployment + Service
running ``kubenas serve``) and the decision what to do with the one that exists; the
reconciler (reconcile.py) reads and writes.

Which trial: the one named by the experiment's annotation
``deploy.kubenas.io/trial`` (``kubenas deploy EXPERIMENT --trial NAME``), else the best trial. Either way only a
trial of this experiment whose model the operator itself located in ``spec.artifacts``
(status.model_location) is served, so the annotation selects among the experiment's own
models and grants nothing: the right to create the serving kind was checked on
``spec.deploy`` (admission, or the operator's policy check).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

from kubenas.cluster.objects import LABEL_COMPONENT, LABEL_EXPERIMENT, common_labels, owned_by_experiment
from kubenas.contract import artifacts as art

from .manifests import CONTAINER_SECURITY_CONTEXT, POD_SECURITY_CONTEXT, Settings, credential_env, quantities

# set by `kubenas deploy --trial`; the user's, so not under kubenas.io/ (the operator's, by admission)
DEPLOY_TRIAL_ANNOTATION = "deploy.kubenas.io/trial"
SERVED_TRIAL_ANNOTATION = "kubenas.io/trial"         # on the serving object and its pod template
SERVED_MODEL_ANNOTATION = "kubenas.io/model"
# Whose serving object it is when it has no ownerReference (deleteWithExperiment false).
EXPERIMENT_UID_ANNOTATION = "kubenas.io/experiment-uid"

KIND_AUTO, KIND_ISVC, KIND_DEPLOYMENT = "auto", "InferenceService", "Deployment"
ISVC_GROUP, ISVC_VERSION, ISVC_PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
SERVE_CONTAINER = "kserve-container"  # KServe's name for the predictor's container; the same here
SERVE_PORT = 8080                     # KServe's and `kubenas serve`'s HTTP port
MODEL_MOUNT = "/var/lib/kubenas/model"
MODEL_VOLUME = "model"
# On SIGTERM a serving pod keeps answering, not ready, this long before it stops accepting
# (kubenas serve --drain-seconds): the endpoints controller and every node's proxy take a
# terminating pod out of the Service meanwhile, so a roll drops no request.
DRAIN_SECONDS = 5
GRACEFUL_SECONDS = 30  # then the requests in flight get this long (kubenas serve --graceful-timeout)
DEFAULT_RESOURCES = {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}

# decisions
NOTHING, CREATE, REPLACE, KEEP, CONFLICT, WAIT = "nothing", "create", "replace", "keep", "conflict", "wait"


def serving_name(experiment: str, kind: str) -> str:
    """The InferenceService is named after the experiment (KServe's V2 model name is the
    InferenceService's); the Deployment and Service get ``-serve`` (no experiment's
    ``<name>-controller`` Deployment ends so)."""
    return experiment if kind == KIND_ISVC else f"{experiment}-serve"


def model_folder(location: str) -> str:
    """``pvc://claim/p/exp_uid/trial/model.pt`` -> ``pvc://claim/p/exp_uid/trial``."""
    return location.rpartition("/")[0]


def model_format(spec: dict) -> str:
    """KServe's model format: onnx when the trials export ONNX, else pytorch (TorchScript)."""
    formats = ((spec.get("trial") or {}).get("export") or {}).get("formats") or ["torchscript"]
    return "onnx" if "onnx" in formats else "pytorch"


def resolve_kind(deploy: dict, has_kserve: bool) -> str:
    kind = deploy.get("kind") or KIND_AUTO
    if kind == KIND_AUTO:
        return KIND_ISVC if has_kserve else KIND_DEPLOYMENT
    return kind


def service_url(name: str, namespace: str, kind: str) -> str:
    """The in-cluster URL: the Service's; KServe's predictor Service for an InferenceService."""
    host = f"{name}-predictor" if kind == KIND_ISVC else name
    return f"http://{host}.{namespace}.svc.cluster.local" + ("" if kind == KIND_ISVC else f":{SERVE_PORT}")


def _metadata(experiment: dict, spec: dict, name: str, trial: str, model: str) -> dict:
    meta = experiment["metadata"]
    out = {"name": name, "namespace": meta["namespace"], "labels": common_labels("serving", meta["name"]),
           "annotations": {SERVED_TRIAL_ANNOTATION: trial, SERVED_MODEL_ANNOTATION: model,
                           EXPERIMENT_UID_ANNOTATION: meta.get("uid") or ""}}
    if (spec.get("deploy") or {}).get("deleteWithExperiment"):
        out["ownerReferences"] = owned_by_experiment(experiment)
    else:  # kept when the experiment goes; still names it, without an owner (no garbage collection)
        out["ownerReferences"] = []
    return out


def inference_service(experiment: dict, spec: dict, trial: str, model: str) -> dict:
    """A KServe InferenceService serving ``model`` (the trial's model file location)."""
    deploy = spec.get("deploy") or {}
    name = serving_name(experiment["metadata"]["name"], KIND_ISVC)
    meta = _metadata(experiment, spec, name, trial, model)
    if not meta["ownerReferences"]:
        del meta["ownerReferences"]
    fmt = model_format(spec)
    location = art.model_location(model, "onnx" if fmt == "onnx" else "torchscript")
    predictor = {
        "minReplicas": int(deploy.get("replicas", 1)),
        "model": {
            "modelFormat": {"name": fmt},
            "protocolVersion": "v2",
            "storageUri": model_folder(location),
            "resources": quantities(deploy.get("resources") or DEFAULT_RESOURCES),
        },
    }
    return {"apiVersion": f"{ISVC_GROUP}/{ISVC_VERSION}", "kind": KIND_ISVC, "metadata": meta,
            "spec": {"predictor": predictor}}


def serve_command(experiment: str, deploy: dict, source: tuple[str, str] = ("--model-dir", MODEL_MOUNT)) -> list[str]:
    """``kubenas serve`` of the model at ``source``: ``--model-dir`` the mounted folder, or
    ``--model-url`` the model file in the object store."""
    return ["kubenas", "serve", *source, "--host", "0.0.0.0", "--port", str(SERVE_PORT),
            "--model-name", experiment, "--max-batch-size", str(int(deploy.get("maxBatchSize", 32))),
            "--max-batch-wait-ms", str(deploy.get("maxBatchWaitMs", 0)), "--drain-seconds", str(DRAIN_SECONDS),
            "--graceful-timeout", str(GRACEFUL_SECONDS)]


def _model_source(spec: dict, model: str) -> tuple[tuple[str, str], list, list, list]:
    """Where the serving pod reads ``model`` from: (kubenas serve's flag and value, env,
    volumes, volumeMounts). On a claim: the trial's folder mounted read-only by subPath (no
    other trial's or experiment's files). In an object store: the model file's URL, read
    once at start with the artifacts' credentials (their Secret's keys as env, as the
    trainer gets them); the pod writes nothing there."""
    artifacts = spec.get("artifacts") or {}
    if artifacts.get("url"):
        fmt = "onnx" if model_format(spec) == "onnx" else "torchscript"
        if art.scheme(model) not in art.URL_SCHEMES:
            raise ValueError(f"model {model} is not in the object store {artifacts['url']}")
        return ("--model-url", art.model_location(model, fmt)), credential_env(artifacts), [], []
    pvc = artifacts.get("persistentVolumeClaim")
    if not pvc:
        raise ValueError("spec.deploy kind Deployment serves a model kept in spec.artifacts (a "
                         "persistentVolumeClaim or an object store url)")
    prefix = f"{art.PVC_SCHEME}://{pvc['claimName']}/"
    if not model.startswith(prefix):
        raise ValueError(f"model {model} is not on claim {pvc['claimName']}")
    volumes = [{"name": MODEL_VOLUME, "persistentVolumeClaim": {"claimName": pvc["claimName"], "readOnly": True}}]
    mounts = [{"name": MODEL_VOLUME, "mountPath": MODEL_MOUNT, "readOnly": True,
               "subPath": model_folder(model)[len(prefix):]}]
    return ("--model-dir", MODEL_MOUNT), [], volumes, mounts


def serving_deployment(experiment: dict, spec: dict, trial: str, model: str, settings: Settings = Settings()) -> dict:
    """A Deployment running ``kubenas serve`` (the trainer image) on the trial's model
    (_model_source: the claim's folder mounted read-only, or the object store's file),
    no API token, the trainer's restricted security context. A new trial changes the pod
    template (its annotations): a rolling update that keeps every ready pod until its
    replacement is ready (maxUnavailable 0)."""
    deploy = spec.get("deploy") or {}
    source, env, volumes, mounts = _model_source(spec, model)
    exp_name = experiment["metadata"]["name"]
    name = serving_name(exp_name, KIND_DEPLOYMENT)
    meta = _metadata(experiment, spec, name, trial, model)
    selector = {LABEL_EXPERIMENT: meta["labels"][LABEL_EXPERIMENT], LABEL_COMPONENT: "serving"}
    probe = {"httpGet": {"path": "/v2/health/ready", "port": "http"}, "periodSeconds": 2, "failureThreshold": 3}
    container = {
        "name": SERVE_CONTAINER,
        "image": settings.trainer_image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": serve_command(exp_name, deploy, source),
        "env": [{"name": "HOME", "value": "/tmp"}, {"name": "PYTHONUNBUFFERED", "value": "1"}, *env],
        "ports": [{"name": "http", "containerPort": SERVE_PORT}],
        "readinessProbe": probe,
        "livenessProbe": {"httpGet": {"path": "/v2/health/live", "port": "http"}, "periodSeconds": 10,
                          "failureThreshold": 3},
        "resources": quantities(deploy.get("resources") or DEFAULT_RESOURCES),
        "volumeMounts": [*mounts, {"name": "tmp", "mountPath": "/tmp"}],
        "securityContext": copy.deepcopy(CONTAINER_SECURITY_CONTEXT),
    }
    template_meta = {"labels": meta["labels"],
                     "annotations": {SERVED_TRIAL_ANNOTATION: trial, SERVED_MODEL_ANNOTATION: model}}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
        "spec": {
            "replicas": int(deploy.get("replicas", 1)),
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "revisionHistoryLimit": 2,
            "selector": {"matchLabels": selector},
            "template": {"metadata": template_meta, "spec": {
                "automountServiceAccountToken": False,
                "securityContext": copy.deepcopy(POD_SECURITY_CONTEXT),
                "containers": [container],
                "volumes": [*volumes, {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}],
                "enableServiceLinks": False,
                # SIGTERM: --drain-seconds answering while not ready, then --graceful-timeout for
                # the requests in flight, within the grace period
                "terminationGracePeriodSeconds": DRAIN_SECONDS + GRACEFUL_SECONDS + 5,
            }},
        },
    }


def serving_service(experiment: dict, spec: dict, trial: str, model: str) -> dict:
    """The ClusterIP Service in front of :func:`serving_deployment`'s pods."""
    name = serving_name(experiment["metadata"]["name"], KIND_DEPLOYMENT)
    meta = _metadata(experiment, spec, name, trial, model)
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": {
        "selector": {LABEL_EXPERIMENT: meta["labels"][LABEL_EXPERIMENT], LABEL_COMPONENT: "serving"},
        "ports": [{"name": "http", "port": SERVE_PORT, "targetPort": "http"}]}}


def serving_ownership(obj: dict, experiment: dict) -> str:
    """Whose a serving object is: OURS when it names this experiment's uid (its
    ownerReference, or without one the experiment-uid annotation the operator wrote),
    else what cluster.objects.ownership says (STALE or FOREIGN)."""
    from kubenas.cluster.objects import OURS, ownership
    from kubenas.contract import API_VERSION, EXPERIMENT_KIND

    owner = {**experiment, "apiVersion": experiment.get("apiVersion", API_VERSION),
             "kind": experiment.get("kind", EXPERIMENT_KIND)}
    uid = (experiment.get("metadata") or {}).get("uid")
    noted = ((obj.get("metadata") or {}).get("annotations") or {}).get(EXPERIMENT_UID_ANNOTATION)
    if uid and noted == uid:
        return OURS
    return ownership(obj, owner)


def needed_rights(deploy: dict) -> list[tuple[str, str]]:
    """The (API group, resource) the author of ``spec.deploy`` must be allowed to create
    in the namespace (as deploy/admission.yaml checks): the kind asked for, both for auto."""
    kind = deploy.get("kind") or KIND_AUTO
    rights = {KIND_DEPLOYMENT: ("apps", "deployments"), KIND_ISVC: (ISVC_GROUP, ISVC_PLURAL)}
    return list(rights.values()) if kind == KIND_AUTO else [rights[kind]]


def chosen_trial(experiment: dict) -> str | None:
    """The trial to serve: the deploy-trial annotation's, else the best trial."""
    named = ((experiment.get("metadata") or {}).get("annotations") or {}).get(DEPLOY_TRIAL_ANNOTATION)
    return named or ((experiment.get("status") or {}).get("bestTrial") or {}).get("name")


@dataclass(frozen=True)
class Decision:
    action: str       # NOTHING, CREATE, REPLACE, KEEP, CONFLICT, WAIT
    message: str = ""


def decide(deploy: dict | None, succeeded: bool, trial: str | None, model: str | None,
           existing: dict | None, whose: str | None) -> Decision:
    """What to do with the serving object: ``existing`` is the object of that name, and
    ``whose`` its ownership (kubenas.cluster.objects: OURS, FOREIGN, STALE)."""
    from kubenas.cluster.objects import FOREIGN, STALE

    if deploy is None or not deploy.get("enabled", True) or not succeeded or not trial:
        return Decision(NOTHING)
    if not model:
        return Decision(WAIT, f"trial {trial} has no model in spec.artifacts to serve (spec.artifacts.models "
                              f"keeps it, and the trial must have Succeeded)")
    if existing is None:
        return Decision(CREATE)
    if whose == STALE:
        return Decision(WAIT, "an earlier serving object of the same name is being removed")
    if whose == FOREIGN:
        return Decision(CONFLICT)
    served = ((existing.get("metadata") or {}).get("annotations") or {})
    if served.get(SERVED_TRIAL_ANNOTATION) == trial and served.get(SERVED_MODEL_ANNOTATION) == model:
        return Decision(KEEP)
    return Decision(REPLACE)
