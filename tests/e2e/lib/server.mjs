// Starts a real `inkroom serve` on a free port with a throwaway data dir, and mints tokens
// with the same CLI and secret. Every server started here is stopped by `stop()`.

import { spawn, execFile } from 'node:child_process'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const execFileP = promisify(execFile)
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..')
export const FRONTEND = path.join(ROOT, 'frontend')
const INKROOM = process.env.INKROOM_BIN || path.join(ROOT, '.venv/bin/inkroom')

export async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

/** Installs and builds the frontend when dist/ is missing (a test script may build it first). */
export async function ensureBuilt() {
  try {
    await stat(path.join(FRONTEND, 'dist/index.html'))
    return
  } catch {
    /* build below */
  }
  try {
    await stat(path.join(FRONTEND, 'node_modules/.bin/vite'))
  } catch {
    await execFileP('npm', ['ci', '--no-audit', '--no-fund'], { cwd: FRONTEND, maxBuffer: 16 << 20 })
  }
  await execFileP('npm', ['run', 'build'], { cwd: FRONTEND, maxBuffer: 16 << 20 })
}

export async function waitFor(fn, { timeout = 10_000, interval = 50, message = 'condition' } = {}) {
  const deadline = Date.now() + timeout
  let last
  for (;;) {
    try {
      const v = await fn()
      if (v) return v
    } catch (err) {
      last = err
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${message}${last ? `: ${last.message}` : ''}`)
    }
    await new Promise((r) => setTimeout(r, interval))
  }
}

/** `staticDir`: another build of the web client (a benchmark's "before"). */
export async function startServer({ log = false, env: extraEnv = {}, staticDir = null } = {}) {
  if (!staticDir) await ensureBuilt()
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'inkroom-e2e-'))
  const port = await freePort()
  const secret = `e2e-secret-${Math.random().toString(36).slice(2)}-${Date.now()}`
  const env = { ...process.env, INKROOM_SECRET: secret, INKROOM_LOG_LEVEL: log ? 'INFO' : 'WARNING', ...extraEnv }
  const child = spawn(
    INKROOM,
    ['serve', '--host', '127.0.0.1', '--port', String(port), '--data-dir', dataDir, '--static-dir', staticDir ?? path.join(FRONTEND, 'dist')],
    { env, stdio: ['ignore', log ? 'inherit' : 'ignore', 'pipe'] },
  )
  let stderr = ''
  child.stderr.on('data', (d) => {
    stderr = (stderr + d).slice(-8000)
    if (log) process.stderr.write(d)
  })
  let exited = null
  child.on('exit', (code) => (exited = code))
  const base = `http://127.0.0.1:${port}`
  await waitFor(
    async () => {
      if (exited !== null) throw new Error(`inkroom serve exited with ${exited}: ${stderr}`)
      const res = await fetch(`${base}/readyz`)
      return res.ok
    },
    { timeout: 20_000, interval: 100, message: 'inkroom serve /readyz' },
  )

  async function token(classroom, role, user, name = user) {
    const { stdout } = await execFileP(
      INKROOM,
      ['token', '--classroom', classroom, '--role', role, '--user', user, '--name', name, '--data-dir', dataDir],
      { env },
    )
    return stdout.trim()
  }

  async function stop() {
    if (exited === null) {
      const gone = new Promise((r) => child.once('exit', r))
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 8000)
      await gone
      clearTimeout(timer)
    }
    await rm(dataDir, { recursive: true, force: true })
  }

  return { port, base, ws: `ws://127.0.0.1:${port}/ws`, dataDir, secret, token, stop, stderr: () => stderr }
}
