"""Drives podgate's E2B-compatible API with the unmodified `e2b` Python SDK.

Run by tests/e2b.rs with E2B_API_KEY, E2B_API_URL and E2B_SANDBOX_URL pointing at a podgate server
(as `podgate e2b env` prints them), and E2B_OTHER_API_KEY set to another user's key. Each check
prints `ok <name>`; the first failure raises and ends the run with a non-zero status.
"""

import os
import sys
import time

import e2b
from e2b import Sandbox, SandboxQuery, CommandExitException, NotFoundException

from importlib.metadata import version

print(f"version {version('e2b')}", flush=True)
checks = sys.argv[1:] or None
done = []


def check(name):
    def wrap(f):
        if checks is None or name in checks:
            f()
            print(f"ok {name}", flush=True)
            done.append(name)
        return f

    return wrap


sbx = Sandbox.create(timeout=600, metadata={"suite": "e2b-python"}, envs={"FROM_CREATE": "yes"})


@check("info")
def _():
    info = sbx.get_info()
    assert info.sandbox_id == sbx.sandbox_id, info
    assert info.metadata.get("suite") == "e2b-python", info.metadata
    assert info.end_at > info.started_at, (info.started_at, info.end_at)
    assert sbx.is_running()


@check("commands.run")
def _():
    r = sbx.commands.run("echo hello; echo oops >&2")
    assert r.exit_code == 0 and r.stdout == "hello\n" and r.stderr == "oops\n", r
    r = sbx.commands.run("echo $FROM_CREATE $MINE; pwd", envs={"MINE": "mine"}, cwd="/tmp")
    assert r.stdout == "yes mine\n/tmp\n", r.stdout
    try:
        sbx.commands.run("exit 3")
        raise AssertionError("a failing command did not raise")
    except CommandExitException as e:
        assert e.exit_code == 3, e


@check("commands.stream")
def _():
    seen = []
    r = sbx.commands.run("for i in 1 2 3; do echo $i; sleep 0.2; done", on_stdout=lambda s: seen.append(s))
    assert "".join(seen) == "1\n2\n3\n", seen
    assert r.stdout == "1\n2\n3\n"


@check("commands.background")
def _():
    h = sbx.commands.run("sleep 60", background=True)
    pids = [p.pid for p in sbx.commands.list()]
    assert h.pid in pids, (h.pid, pids)
    assert sbx.commands.kill(h.pid)
    try:
        h.wait()
        raise AssertionError("a killed command did not raise")
    except CommandExitException as e:
        assert e.exit_code != 0
    assert h.pid not in [p.pid for p in sbx.commands.list()]
    assert not sbx.commands.kill(h.pid)


@check("commands.stdin")
def _():
    h = sbx.commands.run("read line; echo got $line", background=True, stdin=True)
    sbx.commands.send_stdin(h.pid, "podgate\n")
    r = h.wait()
    assert r.stdout == "got podgate\n", r.stdout


@check("commands.connect")
def _():
    h = sbx.commands.run("sleep 1; echo late", background=True)
    h.disconnect()
    again = sbx.commands.connect(h.pid)
    r = again.wait()
    assert r.stdout == "late\n", r.stdout


@check("pty")
def _():
    from e2b import PtySize

    h = sbx.pty.create(PtySize(rows=24, cols=80))
    sbx.pty.resize(h.pid, PtySize(rows=30, cols=100))
    sbx.pty.send_stdin(h.pid, b"stty size; echo pty-$((6*7)); exit\n")
    out = []
    try:
        h.wait(on_pty=lambda d: out.append(bytes(d).decode(errors="replace")))
    except CommandExitException:
        pass
    text = "".join(out)
    assert "30 100" in text and "pty-42" in text, text
    t = sbx.pty.create(PtySize(rows=24, cols=80))
    assert sbx.pty.kill(t.pid)


@check("files.text")
def _():
    sbx.files.write("/tmp/e2b/hello.txt", "hi there")
    assert sbx.files.read("/tmp/e2b/hello.txt") == "hi there"
    assert sbx.files.exists("/tmp/e2b/hello.txt")
    assert not sbx.files.exists("/tmp/e2b/nope.txt")


@check("files.bytes")
def _():
    data = bytes(range(256)) * 1000
    sbx.files.write("/tmp/e2b/blob.bin", data)
    back = sbx.files.read("/tmp/e2b/blob.bin", format="bytes")
    assert bytes(back) == data, len(back)
    r = sbx.commands.run("sha256sum /tmp/e2b/blob.bin | cut -c1-64")
    import hashlib

    assert r.stdout.strip() == hashlib.sha256(data).hexdigest()


@check("files.dirs")
def _():
    assert sbx.files.make_dir("/tmp/e2b/d/e")
    assert not sbx.files.make_dir("/tmp/e2b/d/e")
    sbx.files.write("/tmp/e2b/d/e/f.txt", "x")
    names = sorted(e.name for e in sbx.files.list("/tmp/e2b/d/e"))
    assert names == ["f.txt"], names
    info = sbx.files.get_info("/tmp/e2b/d/e/f.txt")
    assert info.size == 1 and info.type.value == "file", info
    moved = sbx.files.rename("/tmp/e2b/d/e/f.txt", "/tmp/e2b/d/g.txt")
    assert moved.path == "/tmp/e2b/d/g.txt", moved
    sbx.files.remove("/tmp/e2b/d")
    assert not sbx.files.exists("/tmp/e2b/d")
    try:
        sbx.files.read("/tmp/e2b/d/g.txt")
        raise AssertionError("reading a removed file did not raise")
    except NotFoundException:
        pass


@check("files.watch")
def _():
    sbx.files.make_dir("/tmp/e2b/w")
    h = sbx.files.watch_dir("/tmp/e2b/w", recursive=True)

    def wait_for(want):
        seen = set()
        deadline = time.time() + 10
        while not want <= seen and time.time() < deadline:
            time.sleep(0.3)
            seen |= {(e.name, e.type.value) for e in h.get_new_events()}
        assert want <= seen, (want, seen)

    sbx.files.write("/tmp/e2b/w/a.txt", "1")
    sbx.commands.run("mkdir /tmp/e2b/w/sub")
    wait_for({("a.txt", "create"), ("sub", "create")})
    # Once the new directory is watched too (inotify adds it after it appears), its files are seen.
    sbx.commands.run("echo 2 > /tmp/e2b/w/sub/b.txt")
    wait_for({("sub/b.txt", "create")})
    sbx.commands.run("rm /tmp/e2b/w/a.txt")
    wait_for({("a.txt", "remove")})
    h.stop()


@check("files.signed-url")
def _():
    import httpx

    # By host name (E2B_DOMAIN) the link is complete; with E2B_SANDBOX_URL it names no sandbox, so
    # the routing headers go with it. Never a token.
    route = {} if os.environ.get("E2B_DOMAIN") else {"E2b-Sandbox-Id": sbx.sandbox_id, "E2b-Sandbox-Port": "49983"}
    sbx.files.write("/tmp/e2b/signed.txt", "signed bytes")
    url = sbx.download_url("/tmp/e2b/signed.txt", use_signature_expiration=120)
    assert "signature=v1_" in url and "signature_expiration=" in url, url
    r = httpx.get(url, headers=route)
    assert r.status_code == 200 and r.content == b"signed bytes", (r.status_code, r.text)
    # The signature covers the path and the operation.
    r = httpx.get(url.replace("signed.txt", "other.txt"), headers=route)
    assert r.status_code == 401, (r.status_code, r.text)
    up = sbx.upload_url("/tmp/e2b/uploaded.txt")
    r = httpx.post(up, headers=route, files={"file": ("uploaded.txt", b"uploaded bytes")})
    assert r.status_code == 200, (r.status_code, r.text)
    assert sbx.files.read("/tmp/e2b/uploaded.txt") == "uploaded bytes"
    r = httpx.post(url, headers=route, files={"file": ("x", b"x")})
    assert r.status_code == 401, (r.status_code, r.text)


@check("metrics")
def _():
    import datetime

    metrics = []
    for _ in range(60):
        metrics = sbx.get_metrics()
        if metrics:
            break
        time.sleep(0.5)
    assert metrics, "no metrics within 30 s"
    m = metrics[-1]
    assert m.cpu_count >= 1 and 0 <= m.cpu_used_pct <= 100, m
    assert 0 < m.mem_used <= m.mem_total and 0 < m.disk_used <= m.disk_total, m
    assert abs(m.timestamp.timestamp() - time.time()) < 60, m.timestamp
    old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=2)
    assert sbx.get_metrics(start=old, end=old + datetime.timedelta(minutes=30)) == []


@check("list")
def _():
    found = [s.sandbox_id for s in Sandbox.list(query=SandboxQuery(metadata={"suite": "e2b-python"})).next_items()]
    assert sbx.sandbox_id in found, found
    none = Sandbox.list(query=SandboxQuery(metadata={"suite": "other"})).next_items()
    assert none == [], none
    paused = Sandbox.list(query=SandboxQuery(state=[e2b.SandboxState.PAUSED])).next_items()
    assert sbx.sandbox_id not in [s.sandbox_id for s in paused]
    # Pages: one sandbox per page still finds it.
    pages = Sandbox.list(limit=1)
    ids = []
    while pages.has_next:
        ids += [s.sandbox_id for s in pages.next_items()]
    assert sbx.sandbox_id in ids, ids


@check("other-user")
def _():
    other = {"api_key": os.environ["E2B_OTHER_API_KEY"]}
    ids = [s.sandbox_id for s in Sandbox.list(**other).next_items()]
    assert sbx.sandbox_id not in ids, ids
    try:
        Sandbox.connect(sbx.sandbox_id, **other)
        raise AssertionError("another user connected to the sandbox")
    except e2b.SandboxException:
        pass
    try:
        Sandbox.kill(sbx.sandbox_id, **other)
    except e2b.SandboxException:
        pass
    assert sbx.is_running()


@check("timeout")
def _():
    sbx.set_timeout(900)
    end = sbx.get_info().end_at
    left = end.timestamp() - time.time()
    assert 880 < left <= 905, left


@check("pause-resume")
def _():
    sbx.files.write("/tmp/e2b/kept.txt", "kept")
    sbx.pause()
    assert sbx.get_info().state.value == "paused"
    again = Sandbox.connect(sbx.sandbox_id)
    assert again.get_info().state.value == "running"
    assert again.files.read("/tmp/e2b/kept.txt") == "kept"


@check("kill")
def _():
    sbx.kill()
    assert not sbx.is_running()
    ids = [s.sandbox_id for s in Sandbox.list().next_items()]
    assert sbx.sandbox_id not in ids


print(f"passed {len(done)} checks")
