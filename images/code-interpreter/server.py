"""podgate's code-interpreter server: what the `e2b-code-interpreter` SDKs call on port 49999 of a
sandbox, on Jupyter kernels (jupyter_client and ipykernel, installed in the image at build time).

- POST /execute {code, context_id?, language?, env_vars?}: runs the code in the context (the
  default Python context when none is named) and streams one JSON object per line: `stdout` and
  `stderr` (text, timestamp), `result` (the MIME bundle as text/html/markdown/svg/png/jpeg/pdf/
  latex/json/javascript, `is_main_result` for the cell's value), `error` (name, value,
  traceback), `number_of_executions`, then `end_of_execution`.
- POST /contexts {language?, cwd?}, GET /contexts, POST /contexts/ID/restart, DELETE /contexts/ID.
- GET /health.

Only Python kernels exist in this image: another language is refused with 400.
"""

import datetime
import json
import os
import queue
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from jupyter_client.manager import KernelManager

PORT = int(os.environ.get("PODGATE_CODE_INTERPRETER_PORT", "49999"))
DEFAULT_CWD = os.environ.get("PODGATE_CODE_INTERPRETER_CWD", "/workspace")
MIME = {
    "text/plain": "text",
    "text/html": "html",
    "text/markdown": "markdown",
    "image/svg+xml": "svg",
    "image/png": "png",
    "image/jpeg": "jpeg",
    "application/pdf": "pdf",
    "text/latex": "latex",
    "application/json": "json",
    "application/javascript": "javascript",
}


class Context:
    def __init__(self, language, cwd):
        self.id = str(uuid.uuid4())
        self.language = language
        self.cwd = cwd
        self.lock = threading.Lock()
        self.manager = KernelManager(kernel_name="python3")
        self.manager.start_kernel(cwd=cwd)
        self.client = self.manager.blocking_client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)

    def view(self):
        return {"id": self.id, "language": self.language, "cwd": self.cwd}

    def restart(self):
        with self.lock:
            self.client.stop_channels()
            self.manager.restart_kernel(now=True)
            self.client = self.manager.blocking_client()
            self.client.start_channels()
            self.client.wait_for_ready(timeout=60)

    def shutdown(self):
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


contexts = {}
contexts_lock = threading.Lock()
default_context = None


def now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


def get_default():
    global default_context
    with contexts_lock:
        if default_context is None:
            default_context = Context("python", DEFAULT_CWD)
            contexts[default_context.id] = default_context
        return default_context


def execute(ctx, code, env_vars, emit):
    """Runs `code` in `ctx`, calling `emit` with each output object."""
    with ctx.lock:
        kc = ctx.client
        if env_vars:
            kc.execute("import os as _podgate_os; _podgate_os.environ.update(%s)" % json.dumps(env_vars), silent=True)
        msg_id = kc.execute(code, store_history=True)
        while True:
            try:
                msg = kc.get_iopub_msg(timeout=3600)
            except queue.Empty:
                break
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                emit({"type": "stdout" if content["name"] == "stdout" else "stderr", "text": content["text"], "timestamp": now()})
            elif kind in ("execute_result", "display_data"):
                out = {"type": "result", "is_main_result": kind == "execute_result"}
                extra = {}
                for mime, value in content.get("data", {}).items():
                    if mime in MIME:
                        out[MIME[mime]] = value
                    else:
                        extra[mime] = value
                if extra:
                    out["extra"] = extra
                emit(out)
            elif kind == "error":
                emit({"type": "error", "name": content["ename"], "value": content["evalue"], "traceback": "\n".join(content["traceback"])})
            elif kind == "status" and content["execution_state"] == "idle":
                break
        # The shell channel also carries the replies of the silent env update: take this one's.
        try:
            while True:
                reply = kc.get_shell_msg(timeout=60)
                if reply.get("parent_header", {}).get("msg_id") == msg_id:
                    break
            count = reply["content"].get("execution_count")
            if count is not None:
                emit({"type": "number_of_executions", "execution_count": count})
        except queue.Empty:
            pass
    emit({"type": "end_of_execution"})


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def body(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length > 16 << 20:
            raise ValueError("the body is larger than 16 MiB")
        raw = self.rfile.read(length) if length else b"{}"
        return json.loads(raw or b"{}")

    def answer(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def error(self, status, message):
        self.answer(status, {"error": message})

    def do_GET(self):
        if self.path == "/health":
            return self.answer(200, "OK")
        if self.path == "/contexts":
            with contexts_lock:
                return self.answer(200, [c.view() for c in contexts.values()])
        self.error(404, f"no route {self.path}")

    def do_DELETE(self):
        parts = self.path.strip("/").split("/")
        if len(parts) == 2 and parts[0] == "contexts":
            with contexts_lock:
                ctx = contexts.pop(parts[1], None)
            if ctx is None:
                return self.error(404, f"context {parts[1]} not found")
            global default_context
            if ctx is default_context:
                default_context = None
            ctx.shutdown()
            return self.answer(200, {})
        self.error(404, f"no route {self.path}")

    def do_POST(self):
        try:
            req = self.body()
        except ValueError as e:
            return self.error(400, f"invalid body: {e}")
        parts = self.path.strip("/").split("/")
        if self.path == "/contexts":
            language = req.get("language") or "python"
            if language != "python":
                return self.error(400, f"language {language!r} is not installed in this template: python only")
            ctx = Context("python", req.get("cwd") or DEFAULT_CWD)
            with contexts_lock:
                contexts[ctx.id] = ctx
            return self.answer(200, ctx.view())
        if len(parts) == 3 and parts[0] == "contexts" and parts[2] == "restart":
            with contexts_lock:
                ctx = contexts.get(parts[1])
            if ctx is None:
                return self.error(404, f"context {parts[1]} not found")
            ctx.restart()
            return self.answer(200, {})
        if self.path == "/execute":
            return self.execute(req)
        self.error(404, f"no route {self.path}")

    def execute(self, req):
        code = req.get("code")
        if not isinstance(code, str):
            return self.error(400, "`code` is required")
        language, context_id = req.get("language"), req.get("context_id")
        if language and context_id:
            return self.error(400, "give a language or a context, not both")
        if language and language != "python":
            return self.error(400, f"language {language!r} is not installed in this template: python only")
        if context_id:
            with contexts_lock:
                ctx = contexts.get(context_id)
            if ctx is None:
                return self.error(404, f"context {context_id} not found")
        else:
            ctx = get_default()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def emit(obj):
            line = (json.dumps(obj) + "\n").encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
            self.wfile.flush()

        try:
            execute(ctx, code, req.get("env_vars") or {}, emit)
        finally:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
