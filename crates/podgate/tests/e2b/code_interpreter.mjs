// Drives podgate's code-interpreter-v1 template with the unmodified `@e2b/code-interpreter` SDK.
//
// Run by tests/e2b.rs like sdk.mjs (E2B_API_KEY, E2B_API_URL, E2B_SANDBOX_URL). Each check prints
// `ok <name>`; the first failure ends the run with a non-zero status.

import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { Sandbox } from '@e2b/code-interpreter'

const pkg = JSON.parse(readFileSync('node_modules/@e2b/code-interpreter/package.json', 'utf8'))
console.log(`version ${pkg.version}`)
const only = process.argv.slice(2)

async function check(name, f) {
  if (only.length && !only.includes(name)) return
  await f()
  console.log(`ok ${name}`)
}

const sbx = await Sandbox.create()

await check('run_code', async () => {
  const ex = await sbx.runCode("print('hello'); import sys; print('oops', file=sys.stderr); x = 41; x + 1")
  assert.deepEqual(ex.logs.stdout, ['hello\n'])
  assert.deepEqual(ex.logs.stderr, ['oops\n'])
  assert.equal(ex.text, '42')
  assert.ok(ex.executionCount >= 1)
  assert.equal(ex.error, undefined)
})

await check('state', async () => {
  await sbx.runCode('counter = 10')
  assert.equal((await sbx.runCode('counter += 1; counter')).text, '11')
})

await check('callbacks', async () => {
  const seen = []
  await sbx.runCode('for i in range(3): print(i)', { onStdout: (m) => seen.push(m.line) })
  assert.equal(seen.join(''), '0\n1\n2\n')
})

await check('errors', async () => {
  const ex = await sbx.runCode('1/0')
  assert.equal(ex.error?.name, 'ZeroDivisionError')
  assert.match(ex.error.value, /division by zero/)
  assert.match(ex.error.traceback, /ZeroDivisionError/)
})

await check('rich results', async () => {
  const ex = await sbx.runCode("from IPython.display import HTML, display; display(HTML('<b>bold</b>')); 7")
  const html = ex.results.filter((r) => r.html)
  assert.ok(html.length && html[0].html.includes('<b>bold</b>') && !html[0].isMainResult, JSON.stringify(ex.results))
  const main = ex.results.filter((r) => r.isMainResult)
  assert.equal(main[0]?.text, '7')
})

await check('env_vars', async () => {
  const ex = await sbx.runCode("import os; os.environ['PODGATE_CI_VAR']", { envs: { PODGATE_CI_VAR: 'set' } })
  assert.equal(ex.text, "'set'")
})

await check('contexts', async () => {
  const ctx = await sbx.createCodeContext({ cwd: '/tmp' })
  assert.equal(ctx.cwd, '/tmp')
  assert.equal(ctx.language, 'python')
  await sbx.runCode('only_here = 1', { context: ctx })
  assert.equal((await sbx.runCode("'only_here' in globals()", { context: ctx })).text, 'True')
  assert.equal((await sbx.runCode("'only_here' in globals()")).text, 'False')
  assert.equal((await sbx.runCode('import os; os.getcwd()', { context: ctx })).text, "'/tmp'")
  assert.ok((await sbx.listCodeContexts()).some((c) => c.id === ctx.id))
  await sbx.restartCodeContext(ctx)
  assert.equal((await sbx.runCode("'only_here' in globals()", { context: ctx })).text, 'False')
  await sbx.removeCodeContext(ctx)
  assert.ok(!(await sbx.listCodeContexts()).some((c) => c.id === ctx.id))
})

await check('files and commands', async () => {
  await sbx.runCode("open('/tmp/made-by-code.txt', 'w').write('from python')")
  assert.equal(await sbx.files.read('/tmp/made-by-code.txt'), 'from python')
  assert.equal((await sbx.commands.run('cat /tmp/made-by-code.txt')).stdout, 'from python')
})

await check('other languages', async () => {
  // podgate's server runs Python only, and refuses another language at once (400; this SDK
  // shows the status, not the message).
  await assert.rejects(sbx.runCode('console.log(1)', { language: 'js' }), /400/)
})

await sbx.kill()
console.log('passed')
