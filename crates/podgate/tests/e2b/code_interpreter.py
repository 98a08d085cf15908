"""Drives podgate's code-interpreter-v1 template with the unmodified `e2b-code-interpreter` SDK.

Run by tests/e2b.rs like sdk.py (E2B_API_KEY, E2B_API_URL, E2B_SANDBOX_URL). Each check prints
`ok <name>`; the first failure raises.
"""

import sys
from importlib.metadata import version

from e2b_code_interpreter import Sandbox

print(f"version {version('e2b-code-interpreter')}", flush=True)
only = sys.argv[1:]


def check(name):
    def wrap(f):
        if not only or name in only:
            f()
            print(f"ok {name}", flush=True)
        return f

    return wrap


sbx = Sandbox.create()


@check("run_code")
def _():
    ex = sbx.run_code("print('hello'); import sys; print('oops', file=sys.stderr); x = 41; x + 1")
    assert ex.logs.stdout == ["hello\n"], ex.logs
    assert ex.logs.stderr == ["oops\n"], ex.logs
    assert ex.text == "42", ex.results
    assert ex.execution_count >= 1
    assert ex.error is None


@check("state")
def _():
    sbx.run_code("counter = 10")
    assert sbx.run_code("counter += 1; counter").text == "11"


@check("callbacks")
def _():
    seen = []
    sbx.run_code("for i in range(3): print(i)", on_stdout=lambda m: seen.append(m.line))
    assert "".join(seen) == "0\n1\n2\n", seen


@check("errors")
def _():
    ex = sbx.run_code("1/0")
    assert ex.error is not None and ex.error.name == "ZeroDivisionError", ex.error
    assert "division by zero" in ex.error.value
    assert "ZeroDivisionError" in ex.error.traceback


@check("rich results")
def _():
    ex = sbx.run_code("from IPython.display import HTML, display; display(HTML('<b>bold</b>')); 7")
    html = [r for r in ex.results if r.html]
    assert html and "<b>bold</b>" in html[0].html and not html[0].is_main_result, ex.results
    main = [r for r in ex.results if r.is_main_result]
    assert main and main[0].text == "7", ex.results


@check("env_vars")
def _():
    ex = sbx.run_code("import os; os.environ['PODGATE_CI_VAR']", envs={"PODGATE_CI_VAR": "set"})
    assert ex.text == "'set'", ex.results


@check("contexts")
def _():
    ctx = sbx.create_code_context(cwd="/tmp")
    assert ctx.cwd == "/tmp" and ctx.language == "python"
    sbx.run_code("only_here = 1", context=ctx)
    assert sbx.run_code("'only_here' in globals()", context=ctx).text == "True"
    assert sbx.run_code("'only_here' in globals()").text == "False"
    assert sbx.run_code("import os; os.getcwd()", context=ctx).text == "'/tmp'"
    assert ctx.id in [c.id for c in sbx.list_code_contexts()]
    sbx.restart_code_context(ctx)
    assert sbx.run_code("'only_here' in globals()", context=ctx).text == "False"
    sbx.remove_code_context(ctx)
    assert ctx.id not in [c.id for c in sbx.list_code_contexts()]


@check("files and commands")
def _():
    sbx.run_code("open('/tmp/made-by-code.txt', 'w').write('from python')")
    assert sbx.files.read("/tmp/made-by-code.txt") == "from python"
    assert sbx.commands.run("cat /tmp/made-by-code.txt").stdout == "from python"


@check("other languages")
def _():
    # podgate's server runs Python only, and says so at once.
    try:
        sbx.run_code("console.log(1)", language="js")
        raise AssertionError("another language did not raise")
    except Exception as e:
        assert "python" in str(e).lower(), e


sbx.kill()
print("passed")
