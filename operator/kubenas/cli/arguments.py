"""The argument set-up that the commands reading a cluster share: kubectl's flags for
where the cluster is, and a sub-command built around them (``kubenas get``, ``top``,
``watch``, ``export``, ``logs``, ``plot``, ``model``, ``serve``, ``deploy``)."""
from __future__ import annotations

from contextlib import contextmanager


def add_cluster_arguments(parser) -> None:
    """kubectl's flags for where the cluster is."""
    parser.add_argument("--kubeconfig", help="kubeconfig file (default $KUBECONFIG, else ~/.kube/config)")
    parser.add_argument("--context", help="kubeconfig context (default the current one)")
    parser.add_argument("-n", "--namespace", help="namespace (default the context's, else default)")


@contextmanager
def cluster_command(sub, name: str, func, **parser_options):
    """The sub-command ``name`` of ``sub`` that runs ``func``: the ``with`` block adds its
    own arguments to the parser it yields, and kubectl's flags follow them (so ``--help``
    lists the command's own options first)."""
    parser = sub.add_parser(name, **parser_options)
    yield parser
    add_cluster_arguments(parser)
    parser.set_defaults(func=func)
