"""The Lease rules (pure): who may hold it now."""
from datetime import datetime, timedelta, timezone

from kubenas.operator.leader import lease_state, may_take

NOW = datetime(2026, 11, 30, 12, 0, 0, tzinfo=timezone.utc)


def lease(holder, renewed_ago, seconds=15):
    renewed = (NOW - timedelta(seconds=renewed_ago)).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if renewed_ago is not None \
        else None
    return lease_state({"spec": {"holderIdentity": holder, "renewTime": renewed, "leaseDurationSeconds": seconds}})


def test_own_free_or_expired_lease_may_be_taken_a_live_foreign_one_not():
    assert may_take(lease("a", 3), "a", NOW)            # renew its own
    assert may_take(lease(None, None), "a", NOW)        # released or new
    assert not may_take(lease("b", 3), "a", NOW)        # b renewed 3 s ago, valid 15 s
    assert not may_take(lease("b", 15), "a", NOW)       # exactly at the end: still b's
    assert may_take(lease("b", 16), "a", NOW)           # b stopped renewing: take over
    assert lease("b", 3).renewed == NOW - timedelta(seconds=3)
