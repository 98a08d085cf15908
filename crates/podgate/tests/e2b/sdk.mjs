// Drives podgate's E2B-compatible API with the unmodified `e2b` JavaScript SDK.
//
// Run by tests/e2b.rs with E2B_API_KEY, E2B_API_URL and E2B_SANDBOX_URL pointing at a podgate
// server (as `podgate e2b env` prints them) and E2B_OTHER_API_KEY set to another user's key. Each
// check prints `ok <name>`; the first failure ends the run with a non-zero status.

import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { Sandbox, CommandExitError, NotFoundError } from 'e2b'

import { readFileSync } from 'node:fs'

console.log(`version ${JSON.parse(readFileSync('node_modules/e2b/package.json', 'utf8')).version}`)
const only = process.argv.slice(2)
let passed = 0

async function check(name, f) {
  if (only.length && !only.includes(name)) return
  await f()
  console.log(`ok ${name}`)
  passed++
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const sbx = await Sandbox.create({ timeoutMs: 600_000, metadata: { suite: 'e2b-js' }, envs: { FROM_CREATE: 'yes' } })

await check('info', async () => {
  const info = await sbx.getInfo()
  assert.equal(info.sandboxId, sbx.sandboxId)
  assert.equal(info.metadata.suite, 'e2b-js')
  assert.ok(info.endAt > info.startedAt)
  assert.ok(await sbx.isRunning())
})

await check('commands.run', async () => {
  let r = await sbx.commands.run('echo hello; echo oops >&2')
  assert.equal(r.exitCode, 0)
  assert.equal(r.stdout, 'hello\n')
  assert.equal(r.stderr, 'oops\n')
  r = await sbx.commands.run('echo $FROM_CREATE $MINE; pwd', { envs: { MINE: 'mine' }, cwd: '/tmp' })
  assert.equal(r.stdout, 'yes mine\n/tmp\n')
  await assert.rejects(sbx.commands.run('exit 3'), (e) => e instanceof CommandExitError && e.exitCode === 3)
})

await check('commands.stream', async () => {
  const seen = []
  const r = await sbx.commands.run('for i in 1 2 3; do echo $i; sleep 0.2; done', { onStdout: (s) => seen.push(s) })
  assert.equal(seen.join(''), '1\n2\n3\n')
  assert.equal(r.stdout, '1\n2\n3\n')
})

await check('commands.background', async () => {
  const h = await sbx.commands.run('sleep 60', { background: true })
  assert.ok((await sbx.commands.list()).some((p) => p.pid === h.pid))
  assert.ok(await sbx.commands.kill(h.pid))
  await assert.rejects(h.wait())
  assert.ok(!(await sbx.commands.list()).some((p) => p.pid === h.pid))
  assert.equal(await sbx.commands.kill(h.pid), false)
})

await check('commands.stdin', async () => {
  const h = await sbx.commands.run('read line; echo got $line', { background: true, stdin: true })
  await sbx.commands.sendStdin(h.pid, 'podgate\n')
  const r = await h.wait()
  assert.equal(r.stdout, 'got podgate\n')
})

await check('commands.connect', async () => {
  const h = await sbx.commands.run('sleep 1; echo late', { background: true })
  await h.disconnect()
  const again = await sbx.commands.connect(h.pid)
  const r = await again.wait()
  assert.equal(r.stdout, 'late\n')
})

await check('pty', async () => {
  let out = ''
  const t = await sbx.pty.create({ cols: 80, rows: 24, onData: (d) => { out += new TextDecoder().decode(d) } })
  await sbx.pty.resize(t.pid, { cols: 100, rows: 30 })
  await sbx.pty.sendInput(t.pid, new TextEncoder().encode('stty size; echo pty-$((6*7))\n'))
  for (let i = 0; i < 50 && !out.includes('pty-42'); i++) await sleep(100)
  assert.ok(out.includes('30 100'), out)
  assert.ok(out.includes('pty-42'), out)
  assert.ok(await sbx.pty.kill(t.pid))
})

await check('files.text', async () => {
  await sbx.files.write('/tmp/e2b/hello.txt', 'hi there')
  assert.equal(await sbx.files.read('/tmp/e2b/hello.txt'), 'hi there')
  assert.ok(await sbx.files.exists('/tmp/e2b/hello.txt'))
  assert.ok(!(await sbx.files.exists('/tmp/e2b/nope.txt')))
})

await check('files.bytes', async () => {
  const data = new Uint8Array(256 * 1000).map((_, i) => i % 256)
  await sbx.files.write('/tmp/e2b/blob.bin', data.buffer)
  const back = await sbx.files.read('/tmp/e2b/blob.bin', { format: 'bytes' })
  assert.deepEqual(Buffer.from(back), Buffer.from(data))
  const r = await sbx.commands.run('sha256sum /tmp/e2b/blob.bin | cut -c1-64')
  assert.equal(r.stdout.trim(), createHash('sha256').update(data).digest('hex'))
})

await check('files.dirs', async () => {
  assert.ok(await sbx.files.makeDir('/tmp/e2b/d/e'))
  assert.equal(await sbx.files.makeDir('/tmp/e2b/d/e'), false)
  await sbx.files.write('/tmp/e2b/d/e/f.txt', 'x')
  assert.deepEqual((await sbx.files.list('/tmp/e2b/d/e')).map((e) => e.name), ['f.txt'])
  const info = await sbx.files.getInfo('/tmp/e2b/d/e/f.txt')
  assert.equal(info.size, 1)
  assert.equal(info.type, 'file')
  const moved = await sbx.files.rename('/tmp/e2b/d/e/f.txt', '/tmp/e2b/d/g.txt')
  assert.equal(moved.path, '/tmp/e2b/d/g.txt')
  await sbx.files.remove('/tmp/e2b/d')
  assert.ok(!(await sbx.files.exists('/tmp/e2b/d')))
  await assert.rejects(sbx.files.read('/tmp/e2b/d/g.txt'), (e) => e instanceof NotFoundError)
})

await check('files.watch', async () => {
  await sbx.files.makeDir('/tmp/e2b/w')
  const seen = new Set()
  const h = await sbx.files.watchDir('/tmp/e2b/w', (e) => seen.add(`${e.name} ${e.type}`), { recursive: true })
  const waitFor = async (...want) => {
    for (let i = 0; i < 50 && !want.every((w) => seen.has(w)); i++) await sleep(200)
    assert.ok(want.every((w) => seen.has(w)), [...seen].join(', '))
  }
  await sbx.files.write('/tmp/e2b/w/a.txt', '1')
  await sbx.commands.run('mkdir /tmp/e2b/w/sub')
  await waitFor('a.txt create', 'sub create')
  // Once the new directory is watched too (inotify adds it after it appears), its files are seen.
  await sbx.commands.run('echo 2 > /tmp/e2b/w/sub/b.txt')
  await waitFor('sub/b.txt create')
  await h.stop()
})

await check('files.signed-url', async () => {
  // By host name (E2B_DOMAIN) the link is complete; with E2B_SANDBOX_URL it names no sandbox, so
  // the routing headers go with it. Never a token.
  const route = process.env.E2B_DOMAIN ? {} : { 'E2b-Sandbox-Id': sbx.sandboxId, 'E2b-Sandbox-Port': '49983' }
  await sbx.files.write('/tmp/e2b/signed.txt', 'signed bytes')
  const url = await sbx.downloadUrl('/tmp/e2b/signed.txt', { useSignatureExpiration: 120 })
  assert.match(url, /signature=v1_.*signature_expiration=/)
  let r = await fetch(url, { headers: route })
  assert.equal(r.status, 200, await r.clone().text())
  assert.equal(await r.text(), 'signed bytes')
  // The signature covers the path and the operation.
  r = await fetch(url.replace('signed.txt', 'other.txt'), { headers: route })
  assert.equal(r.status, 401)
  const form = new FormData()
  form.append('file', new Blob(['uploaded bytes']), 'uploaded.txt')
  r = await fetch(await sbx.uploadUrl('/tmp/e2b/uploaded.txt'), { method: 'POST', headers: route, body: form })
  assert.equal(r.status, 200, await r.clone().text())
  assert.equal(await sbx.files.read('/tmp/e2b/uploaded.txt'), 'uploaded bytes')
  r = await fetch(url, { method: 'POST', headers: route, body: form })
  assert.equal(r.status, 401)
})

await check('metrics', async () => {
  let metrics = []
  for (let i = 0; i < 60 && metrics.length === 0; i++) {
    metrics = await sbx.getMetrics()
    if (metrics.length === 0) await sleep(500)
  }
  assert.ok(metrics.length > 0, 'no metrics within 30 s')
  const m = metrics[metrics.length - 1]
  assert.ok(m.cpuCount >= 1 && m.cpuUsedPct >= 0 && m.cpuUsedPct <= 100, JSON.stringify(m))
  assert.ok(m.memUsed > 0 && m.memUsed <= m.memTotal && m.diskUsed > 0 && m.diskUsed <= m.diskTotal, JSON.stringify(m))
  assert.ok(Math.abs(new Date(m.timestamp).getTime() - Date.now()) < 60_000, String(m.timestamp))
  const old = new Date(Date.now() - 2 * 3600_000)
  assert.deepEqual(await sbx.getMetrics({ start: old, end: new Date(old.getTime() + 1800_000) }), [])
})

await check('list', async () => {
  const found = await Sandbox.list({ query: { metadata: { suite: 'e2b-js' } } }).nextItems()
  assert.ok(found.some((s) => s.sandboxId === sbx.sandboxId))
  assert.deepEqual(await Sandbox.list({ query: { metadata: { suite: 'other' } } }).nextItems(), [])
  const pages = Sandbox.list({ limit: 1 })
  const ids = []
  while (pages.hasNext) ids.push(...(await pages.nextItems()).map((s) => s.sandboxId))
  assert.ok(ids.includes(sbx.sandboxId))
})

await check('other-user', async () => {
  const other = { apiKey: process.env.E2B_OTHER_API_KEY }
  const ids = (await Sandbox.list(other).nextItems()).map((s) => s.sandboxId)
  assert.ok(!ids.includes(sbx.sandboxId))
  await assert.rejects(Sandbox.connect(sbx.sandboxId, other))
  await Sandbox.kill(sbx.sandboxId, other).catch(() => {})
  assert.ok(await sbx.isRunning())
})

await check('timeout', async () => {
  await sbx.setTimeout(900_000)
  const left = ((await sbx.getInfo()).endAt.getTime() - Date.now()) / 1000
  assert.ok(left > 880 && left <= 905, `${left}`)
})

await check('pause-resume', async () => {
  await sbx.files.write('/tmp/e2b/kept.txt', 'kept')
  await sbx.pause()
  assert.equal((await sbx.getInfo()).state, 'paused')
  const again = await Sandbox.connect(sbx.sandboxId)
  assert.equal((await again.getInfo()).state, 'running')
  assert.equal(await again.files.read('/tmp/e2b/kept.txt'), 'kept')
})

await check('kill', async () => {
  await sbx.kill()
  assert.ok(!(await sbx.isRunning()))
})

console.log(`passed ${passed} checks`)
