"""An agent framework on podgate through E2B: a LangChain Deep Agents agent whose sandbox is an
E2B sandbox (E2B's own `langchain-e2b` backend), unmodified, against a podgate server.

The model is scripted (langchain-core's fake chat model), so the run needs no LLM and no network:
it asks for a shell command, then for a file to be written, then answers. The agent carries out
both in the sandbox through the e2b SDK. Run by tests/e2b.rs like sdk.py; prints `ok <name>`.

Two differences from E2B's `base` template: Deep Agents' file tools run python3 in the sandbox,
which podgate's default image lacks (issue 21 adds it), so the sandbox is made from the image
podgate/code-interpreter (a template id naming an image is that image); and E2B's user works in
/home/user, podgate's in its own home, which the backend is given as its working directory.
"""

import sys
from importlib.metadata import version

from deepagents import create_deep_agent
from e2b import Sandbox
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_e2b import E2BSandbox

print(f"version {version('langchain-e2b')}", flush=True)
only = sys.argv[1:]


def check(name):
    def wrap(f):
        if not only or name in only:
            f()
            print(f"ok {name}", flush=True)
        return f

    return wrap


class ScriptedModel(GenericFakeChatModel):
    """Answers with the scripted messages, whatever tools it is given."""

    def bind_tools(self, tools, **kwargs):
        return self


sbx = Sandbox.create("podgate/code-interpreter:latest")
home = sbx.commands.run("pwd").stdout.strip()
backend = E2BSandbox(sandbox=sbx, workdir=home)


@check("agent runs tools in the sandbox")
def _():
    script = [
        AIMessage(content="", tool_calls=[{"name": "execute", "args": {"command": "uname -s; echo agent-$((6*7))"}, "id": "c1"}]),
        AIMessage(
            content="",
            tool_calls=[{"name": "write_file", "args": {"file_path": f"{home}/notes.txt", "content": "written by the agent\n"}, "id": "c2"}],
        ),
        AIMessage(content="done"),
    ]
    agent = create_deep_agent(model=ScriptedModel(messages=iter(script)), backend=backend)
    result = agent.invoke({"messages": [{"role": "user", "content": "look around"}]})
    tools = {m.tool_call_id: m.content for m in result["messages"] if m.type == "tool"}
    assert "Linux" in tools["c1"] and "agent-42" in tools["c1"], tools
    assert result["messages"][-1].content == "done"
    assert "c2" in tools and sbx.files.exists(f"{home}/notes.txt"), tools
    assert sbx.files.read(f"{home}/notes.txt") == "written by the agent\n"


@check("backend file operations")
def _():
    up = backend.upload_files([(f"{home}/data/a.bin", bytes(range(256)))])
    assert up[0].error is None, up
    down = backend.download_files([f"{home}/data/a.bin", f"{home}/data/missing"])
    assert down[0].content == bytes(range(256)), down[0]
    assert down[1].error == "file_not_found", down[1]
    r = backend.execute("exit 3")
    assert r.exit_code == 3, r


sbx.kill()
print("passed")
