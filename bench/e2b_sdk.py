"""E2B benchmark: the same work through the unmodified `e2b` Python SDK (podgate's E2B API) and
through podgate's own REST API, in the same run against the same server, so the E2B path's cost is
a ratio to the native one.

- create -> first command answered, cold: `Sandbox.create()` then `commands.run("true")` (which
  envd runs as `/bin/bash -l -c true`), against `POST /v1/sandboxes` then `POST .../exec` of
  `/bin/bash -l -c true` (the same command);
- the same from a warm pool (a template with a pool of 2; each timed create is a claim);
- a 16 MiB file written then read back: `files.write`/`files.read(format="bytes")` against
  `PUT`/`GET /v1/sandboxes/{id}/files`.

Expects PODGATE_URL, PODGATE_TOKEN and E2B_URL (bench/run sets them); BENCH_E2B_N runs (default 10).
"""

import os
import statistics
import time

import httpx
from e2b import Sandbox

N = int(os.environ.get("BENCH_E2B_N", "10"))
URL = os.environ["PODGATE_URL"]
TOKEN = os.environ["PODGATE_TOKEN"]
os.environ.setdefault("E2B_API_KEY", TOKEN)
os.environ.setdefault("E2B_API_URL", os.environ["E2B_URL"])
os.environ.setdefault("E2B_SANDBOX_URL", os.environ["E2B_URL"])
TEMPLATE = "bench-e2b-pool"
BASH_TRUE = ["/bin/bash", "-l", "-c", "true"]

api = httpx.Client(base_url=URL, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120)


def ok(r):
    r.raise_for_status()
    return r


def native_create(template=None):
    body = {"template": template} if template else {}
    return ok(api.post("/v1/sandboxes", json=body)).json()["id"]


def native_run(sid):
    r = ok(api.post(f"/v1/sandboxes/{sid}/exec", json={"argv": BASH_TRUE})).json()
    assert r["exit_code"] == 0, r


def native_delete(sid):
    ok(api.delete(f"/v1/sandboxes/{sid}"))


def pool_ready():
    for t in ok(api.get("/v1/templates")).json()["templates"]:
        if t["name"] == TEMPLATE:
            return t["pool_ready"]
    return 0


def wait_pool():
    deadline = time.time() + 120
    while pool_ready() == 0:
        if time.time() > deadline:
            raise SystemExit("the warm pool did not refill in 120 s")
        time.sleep(0.05)


def timed(f):
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def report(name, e2b_times, native_times):
    e, n = statistics.median(e2b_times), statistics.median(native_times)
    print(f"{name:<40} e2b p50 {e * 1000:8.1f} ms   native p50 {n * 1000:8.1f} ms   ratio e2b/native {e / n:5.2f}x"
          f"   (n={len(e2b_times)}; e2b max {max(e2b_times) * 1000:.1f} ms, native max {max(native_times) * 1000:.1f} ms)")


def e2b_cold(template=None):
    def run():
        s = Sandbox.create(template) if template else Sandbox.create()
        s.commands.run("true")
        run.sandbox = s
    return run


def main():
    cold_e, cold_n, warm_e, warm_n = [], [], [], []
    ok(api.put(f"/v1/templates/{TEMPLATE}", json={"request": {}, "pool_size": 2}))
    try:
        for _ in range(N):
            f = e2b_cold()
            cold_e.append(timed(f))
            f.sandbox.kill()
            holder = {}
            cold_n.append(timed(lambda: (holder.update(id=native_create()), native_run(holder["id"]))))
            native_delete(holder["id"])

            wait_pool()
            f = e2b_cold(TEMPLATE)
            warm_e.append(timed(f))
            f.sandbox.kill()
            wait_pool()
            warm_n.append(timed(lambda: (holder.update(id=native_create(TEMPLATE)), native_run(holder["id"]))))
            native_delete(holder["id"])
    finally:
        api.delete(f"/v1/templates/{TEMPLATE}")
    report("create -> first command, cold", cold_e, cold_n)
    report("create -> first command, warm pool", warm_e, warm_n)

    data = os.urandom(16 << 20)
    s = Sandbox.create(timeout=600)
    sid = s.sandbox_id
    try:
        writes_e, reads_e, writes_n, reads_n = [], [], [], []
        for i in range(N):
            writes_e.append(timed(lambda: s.files.write(f"/tmp/e2b-{i}.bin", data)))
            back = {}
            reads_e.append(timed(lambda: back.update(b=s.files.read(f"/tmp/e2b-{i}.bin", format="bytes"))))
            assert bytes(back["b"]) == data
            path = f"/tmp/native-{i}.bin"
            writes_n.append(timed(lambda: ok(api.put(f"/v1/sandboxes/{sid}/files", params={"path": path}, content=data))))
            reads_n.append(timed(lambda: back.update(b=ok(api.get(f"/v1/sandboxes/{sid}/files", params={"path": path})).content)))
            assert back["b"] == data
        report("16 MiB file write", writes_e, writes_n)
        report("16 MiB file read", reads_e, reads_n)
    finally:
        s.kill()


if __name__ == "__main__":
    main()
