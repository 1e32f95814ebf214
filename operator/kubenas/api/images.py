"""Container image references, parsed as references and matched component by component.

An image is allowed by the cluster admin's policy (kubenas.api.policy) when its
repository lies under an allowed registry/repository path, compared at path-component
boundaries: ``ghcr.io/kubenas`` allows ``ghcr.io/kubenas/kubenas-trainer:1``, never
``ghcr.io/kubenasevil/x:1``, and ``ghcr.io/kubenas/../evil/x:1`` is no reference at all.

The grammar is the distribution project's (github.com/distribution/reference,
``reference.go``), as the container runtimes parse it::

    reference  := name [ ":" tag ] [ "@" digest ]
    name       := [ domain "/" ] path-component *( "/" path-component )
    domain     := domain-component *( "." domain-component ) [ ":" port ]
    path-component := [a-z0-9]+ *( separator [a-z0-9]+ ),  separator := [._] | "__" | "-"+
    tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
    digest     := algorithm ":" [0-9a-fA-F]{32,}

and the first component is a registry only if it has a ``.`` or ``:``, is
``localhost``, or has upper case (docker's rule); otherwise the registry is
``docker.io``, and a single-component name is under ``library/``. Bracketed IPv6
registries are not accepted. No well-kept Python package parses this (the docker SDK's
``parse_repository_tag`` splits strings without validating), hence these few lines. The
admission policy (deploy/admission.yaml) applies the same grammar as a regular
expression (``REFERENCE`` below, written there too; tests/api/test_images.py keeps the
two equal) and the same matching rule.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

_DOMAIN_COMPONENT = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
REFERENCE = (rf"^(?:{_DOMAIN_COMPONENT}(?:[.]{_DOMAIN_COMPONENT})*(?::[0-9]+)?/)?"
             rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
             r"(?::[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,127})?"
             r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$")
_REFERENCE = re.compile(REFERENCE)
DEFAULT_REGISTRY = "docker.io"


@dataclass(frozen=True)
class ImageReference:
    registry: str        # lower case; docker.io when the reference names none
    path: str            # the repository path inside the registry: library/python, kubenas/kubenas-trainer
    tag: str | None = None
    digest: str | None = None

    @property
    def repository(self) -> str:
        return f"{self.registry}/{self.path}"


def parse_image(text: str) -> ImageReference | None:
    """``text`` as a reference; None if it is not one (``..``, empty components, upper
    case in the path, a bad tag or digest, more than 512 characters)."""
    if not isinstance(text, str) or len(text) > 512 or not _REFERENCE.match(text):
        return None
    name, _, digest = text.partition("@")
    colon, slash = name.rfind(":"), name.rfind("/")
    repository, tag = (name[:colon], name[colon + 1:]) if colon > slash else (name, None)
    first, _, rest = repository.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost" or first.lower() != first):
        return ImageReference(first.lower(), rest, tag, digest or None)
    return ImageReference(DEFAULT_REGISTRY, repository if rest else f"library/{repository}", tag, digest or None)


def normal_prefix(prefix: str) -> str:
    """An allowed-image prefix of the policy as a registry/repository path: lower case,
    without a trailing ``/`` (``ghcr.io/kubenas/`` and ``ghcr.io/kubenas`` are the same)."""
    return prefix.strip().lower().rstrip("/")


def image_allowed(image: ImageReference, prefixes: tuple[str, ...]) -> bool:
    """Whether ``image``'s repository is one of ``prefixes`` or lies under one, at a
    path-component boundary; ``*`` allows every reference."""
    for prefix in prefixes:
        if prefix.strip() == "*":
            return True
        wanted = normal_prefix(prefix)
        if wanted and (image.repository == wanted or image.repository.startswith(wanted + "/")):
            return True
    return False
