"""Kubernetes quantities (500m, 1.5, 4Gi, 1e3) and resource names, as the API server reads them."""
from __future__ import annotations

import re
from decimal import Decimal


QUANTITY_EXAMPLES = "an integer or a string such as 500m, 2, 1.5, 4Gi or 512Mi"

QUANTITY = re.compile(r"^([+-]?)((?:[0-9]+(?:\.[0-9]*)?)|(?:\.[0-9]+))"
                      r"(?:(Ki|Mi|Gi|Ti|Pi|Ei)|([numkMGTPE])|[eE]([+-]?(?:(?:[0-9]+(?:\.[0-9]*)?)|(?:\.[0-9]+))))?\Z")

_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}

_DECIMAL = {"n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}

RESOURCE_NAME = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                           r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")

STANDARD_RESOURCES = ("cpu", "memory", "ephemeral-storage")


def parse_quantity(value) -> Decimal | None:
    """A Kubernetes quantity (an int, or a string such as 500m, 1.5, 4Gi, 1e3) as a
    Decimal; None if it is not one (the CRD's pattern already said so)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    match = QUANTITY.match(value) if isinstance(value, str) else None
    if not match:
        return None
    sign, number, binary, decimal, exponent = match.groups()
    amount = Decimal(sign + number)
    if binary:
        return amount * (Decimal(1024) ** _BINARY[binary])
    if decimal:
        return amount.scaleb(_DECIMAL[decimal])
    if exponent:
        return amount * Decimal(10) ** Decimal(exponent) if abs(Decimal(exponent)) <= 100 else None
    return amount
