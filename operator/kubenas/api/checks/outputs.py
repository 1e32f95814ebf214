"""What an experiment leaves behind: spec.artifacts (where its models are kept) and
spec.deploy (serving the best one)."""
from __future__ import annotations

from kubenas.contract import artifacts as artifacts_contract

from ..issues import Issue, shown
from ..quantities import parse_quantity


def artifacts_issues(spec: dict) -> list[Issue]:
    """spec.artifacts: one destination, credentials only where a store reads them, and
    topK/maxBytes only with models: top (no setting accepted and ignored)."""
    art = spec.get("artifacts")
    if art is None:
        return []
    issues = []
    if bool(art.get("url")) == bool(art.get("persistentVolumeClaim")):
        issues.append(Issue("spec.artifacts", "needs exactly one of persistentVolumeClaim (a volume) or url "
                            "(an object store): set one"))
    path = (art.get("persistentVolumeClaim") or {}).get("path") or ""
    if any(part in (".", "..") for part in path.split("/")):
        issues.append(Issue("spec.artifacts.persistentVolumeClaim.path", f"{shown(path)} may not contain '.' or "
                            "'..' segments: name a folder inside the volume, like results/nas"))
    volumes = spec["trial"]["template"].get("volumes") or []
    if any(isinstance(v, dict) and v.get("name") == artifacts_contract.VOLUME_NAME for v in volumes):
        issues.append(Issue("spec.trial.template.volumes", f"the volume name {artifacts_contract.VOLUME_NAME} "
                            "is the artifacts volume the operator adds: rename your volume"))
    url = art.get("url") or ""
    if url:
        proto = artifacts_contract.scheme(url)
        if proto not in artifacts_contract.URL_SCHEMES:
            issues.append(Issue("spec.artifacts.url", f"{shown(url)}: use s3://, gs:// or az://"))
        elif art.get("credentialsSecret") and not artifacts_contract.CREDENTIAL_VARIABLES[proto]:
            issues.append(Issue("spec.artifacts.credentialsSecret", f"{proto}:// reads no credentials from a "
                                "Secret (it uses Workload Identity or the node's default credentials): remove it"))
    elif art.get("credentialsSecret"):
        issues.append(Issue("spec.artifacts.credentialsSecret", "is for an object store url; a volume needs "
                            "none: remove it"))
    models = art["models"]
    if models != artifacts_contract.MODELS_TOP:
        for key in ("topK", "maxBytes"):
            if key in art:
                issues.append(Issue(f"spec.artifacts.{key}", f"applies only with models: top (models is "
                                    f"{models}): set models: top, or remove {key}"))
    elif "topK" not in art and "maxBytes" not in art:
        issues.append(Issue("spec.artifacts.models", "top keeps the best models within topK and/or maxBytes: "
                            "set at least one of them"))
    if "maxBytes" in art:
        size = parse_quantity(art["maxBytes"])
        if size is None or size < 1:
            issues.append(Issue("spec.artifacts.maxBytes", f"{shown(art['maxBytes'])} is not a positive byte "
                                "quantity: write e.g. 500Mi or 2Gi"))
    return issues


def deploy_issues(spec: dict) -> list[Issue]:
    """spec.deploy serves a model that spec.artifacts keeps (kubenas serve's Deployment mounts
    it from the claim, or reads it from the object store with the artifacts' credentials)."""
    deploy, artifacts = spec.get("deploy"), spec.get("artifacts") or {}
    if deploy is None:
        return []
    if not artifacts or artifacts.get("models") == "none":
        return [Issue("spec.deploy", "serves a model kept in spec.artifacts: add spec.artifacts (a "
                      "persistentVolumeClaim or an object store url) with models all or top")]
    return []
