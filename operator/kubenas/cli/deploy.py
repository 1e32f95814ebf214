"""``kubenas deploy EXPERIMENT [--trial NAME]``: serve a finished experiment's model on
the cluster (docs/serving.md, "On a cluster"). It sets the experiment's
``deploy.kubenas.io/trial`` annotation (``--trial``; without it the annotation goes and
the best trial is served); the operator, which reads it, creates or rolls the serving
object of ``spec.deploy``. The annotation only picks among the experiment's own kept
models: the right to create the serving kind was checked on ``spec.deploy``.
"""
from __future__ import annotations

from .arguments import cluster_command
from .sources import CliError


def cmd_deploy(args) -> int:
    from kubernetes.client.exceptions import ApiException

    from kubenas.contract import EXPERIMENT_PLURAL
    from kubenas.operator.deploying import DEPLOY_TRIAL_ANNOTATION

    from .sources import api_error, connect

    kube, context_namespace = connect(args.kubeconfig, args.context)
    namespace = args.namespace or context_namespace or "default"
    try:
        exp = kube.get_custom(EXPERIMENT_PLURAL, namespace, args.experiment)
        if exp is None:
            raise CliError(f"no NASExperiment {args.experiment} in namespace {namespace}")
        if (exp.get("spec") or {}).get("deploy") is None:
            raise CliError(f"NASExperiment {args.experiment} has no spec.deploy: add spec.deploy (and spec.artifacts) "
                           f"to the experiment to serve its model (docs/serving.md, \"On a cluster\")")
        kube.patch_custom(EXPERIMENT_PLURAL, namespace, args.experiment,
                          {"metadata": {"annotations": {DEPLOY_TRIAL_ANNOTATION: args.trial}}})
    except ApiException as err:
        raise api_error(err, f"annotate NASExperiment {args.experiment}", namespace) from None
    shown = args.trial or "the best trial"
    print(f"NASExperiment {namespace}/{args.experiment}: the operator serves {shown}; "
          f"status.deployment says where (kubectl get nasexperiment {args.experiment} -o jsonpath="
          f"'{{.status.deployment}}')")
    return 0


def add_commands(sub) -> None:
    with cluster_command(sub, "deploy", cmd_deploy,
                         help="serve a finished experiment's model on the cluster (spec.deploy)",
                         description="Have the operator serve the experiment's best model, or --trial NAME's, as "
                                     "spec.deploy says (a KServe InferenceService, or a Deployment running kubenas "
                                     "serve); a newer model replaces the served one with a rolling update.") as p:
        p.add_argument("experiment", help="a NASExperiment with spec.deploy")
        p.add_argument("--trial", help="serve this trial's model (one of the experiment's, kept in spec.artifacts)")
