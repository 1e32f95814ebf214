"""Bench-only: where a kubenas process's memory goes, without changing the process.

Put this folder first on a process's ``PYTHONPATH`` (e.g. the operator's, with
``bench/scale.py --operator-env``) and set ``BENCH_TRACEMALLOC_DIR`` to a folder the
process can write: Python imports ``sitecustomize`` at start, which starts tracemalloc
``BENCH_TRACEMALLOC_AFTER`` seconds later (default 0; tracing every allocation slows
pydantic's model building at import tenfold, so a later start keeps the process's own
start quick) with ``BENCH_TRACEMALLOC_FRAMES`` frames (default 6), and dumps a snapshot
there every ``BENCH_TRACEMALLOC_EVERY`` seconds (default 60) as ``<unix time>.snap``
(``tracemalloc.Snapshot.load``; ``bench/trace_diff.py`` compares two). Without
``BENCH_TRACEMALLOC_DIR`` it does nothing.

``BENCH_CENSUS_FILE`` (a file): every ``BENCH_CENSUS_EVERY`` seconds (default 30) one
JSON line: how many Kubernetes object bodies the process holds, by kind, and what holds
the oldest and newest ``BENCH_CENSUS_SAMPLES`` / 2 of each kind (the referrers' types,
two levels up). tracemalloc names where memory was allocated; this names who keeps it
(it found the operator's growing queue of experiment events in kopf, bench/RESULTS.md).
"""
import os

_DIR = os.environ.get("BENCH_TRACEMALLOC_DIR")

if _DIR:
    import threading
    import time
    import tracemalloc

    def _dump_every(seconds: float) -> None:
        time.sleep(float(os.environ.get("BENCH_TRACEMALLOC_AFTER", "0")))
        tracemalloc.start(int(os.environ.get("BENCH_TRACEMALLOC_FRAMES", "6")))
        os.makedirs(_DIR, exist_ok=True)
        while True:
            time.sleep(seconds)
            snapshot = tracemalloc.take_snapshot()
            tmp = os.path.join(_DIR, f".{os.getpid()}.tmp")
            snapshot.dump(tmp)
            os.replace(tmp, os.path.join(_DIR, f"{time.time():.0f}.snap"))

    threading.Thread(target=_dump_every, args=(float(os.environ.get("BENCH_TRACEMALLOC_EVERY", "60")),),
                     name="bench-tracemalloc", daemon=True).start()

_CENSUS = os.environ.get("BENCH_CENSUS_FILE")

if _CENSUS:
    import collections
    import gc
    import json
    import threading
    import time

    def _describe(obj, mine: set, depth: int = 0) -> str:
        name = type(obj).__name__
        if depth >= 2 or not isinstance(obj, (dict, list, tuple, set)):
            return name
        up = sorted({_describe(r, mine, depth + 1) for r in gc.get_referrers(obj)
                     if id(r) not in mine and type(r).__name__ not in ("frame", "list_iterator")})[:4]
        return f"{name}[{len(obj)}]<-({'|'.join(up)})"

    def _census(seconds: float, samples: int) -> None:
        """Every ``seconds``: how many Kubernetes object bodies (dicts with apiVersion,
        kind and metadata) the process holds, by kind, and who holds a sample of them."""
        while True:
            time.sleep(seconds)
            bodies = [o for o in gc.get_objects()
                      if type(o) is dict and "metadata" in o and "apiVersion" in o and "kind" in o]
            kinds = collections.Counter(str(b.get("kind")) for b in bodies)
            holders = collections.Counter()
            by_kind = collections.defaultdict(list)
            for body in bodies:
                by_kind[str(body.get("kind"))].append(body)
            # the oldest and the newest of each kind: a leak's bodies are among the oldest
            sample = [b for group in by_kind.values() for b in group[:samples // 2] + group[-(samples // 2):]]
            del by_kind
            mine = {id(bodies), id(sample)}
            for body in sample:
                refs = [r for r in gc.get_referrers(body) if id(r) not in mine and type(r).__name__ != "frame"]
                mine.add(id(refs))
                held = " + ".join(sorted(_describe(r, mine) for r in refs)) or "(frames only)"
                holders[f"{body.get('kind')}: {held}"] += 1
            del bodies, sample
            with open(_CENSUS, "a") as out:
                line = {"t": round(time.time()), "kinds": kinds, "holders": holders.most_common(30)}
                out.write(json.dumps(line) + "\n")

    threading.Thread(target=_census, args=(float(os.environ.get("BENCH_CENSUS_EVERY", "30")),
                                           int(os.environ.get("BENCH_CENSUS_SAMPLES", "60"))),
                     name="bench-census", daemon=True).start()
