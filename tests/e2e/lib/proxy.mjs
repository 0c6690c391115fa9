// A controllable TCP proxy between the browser and the server. `setOffline()` in
// Chromium does not close open WebSockets, so link failures are made here:
//   cut()        close every connection (FIN) and refuse new ones
//   blackhole()  keep connections open but drop every byte (a phone in a tunnel)
//   restore()    forward again; black-holed sockets are destroyed, as a NAT would
//   shape({latencyMs, upBps, downBps})  a slow link: one-way delay plus a byte rate
//                per direction (CDP network emulation does not apply to WebSockets)
// It also counts bytes in each direction, for the bandwidth benchmark.

import net from 'node:net'

export async function startProxy(targetPort, { host = '127.0.0.1' } = {}) {
  let mode = 'up'
  let shaping = null
  const conns = new Set()
  // Each direction of each connection is a queue: a chunk leaves after the previous one
  // has been serialised at the byte rate, then arrives `latencyMs` later, in order.
  const pipe = (c, dir, dest, d) => {
    if (!shaping) {
      dest.write(d)
      return
    }
    const rate = dir === 'up' ? shaping.upBps : shaping.downBps
    const now = performance.now()
    const startAt = Math.max(now, c[dir])
    c[dir] = startAt + (rate ? (d.length / rate) * 1000 : 0)
    const at = c[dir] + shaping.latencyMs
    setTimeout(() => {
      if (!dest.destroyed) dest.write(d)
    }, Math.max(0, at - now))
  }
  const counters = { up: 0, down: 0 }
  const server = net.createServer((client) => {
    if (mode === 'cut') {
      client.destroy()
      return
    }
    const upstream = net.connect(targetPort, host)
    const c = { client, upstream, holed: mode === 'blackhole', up: 0, down: 0 }
    conns.add(c)
    client.setNoDelay(true)
    upstream.setNoDelay(true)
    client.on('data', (d) => {
      if (mode === 'blackhole' || c.holed) return
      counters.up += d.length
      pipe(c, 'up', upstream, d)
    })
    upstream.on('data', (d) => {
      if (mode === 'blackhole' || c.holed) return
      counters.down += d.length
      pipe(c, 'down', client, d)
    })
    const close = () => {
      conns.delete(c)
      client.destroy()
      upstream.destroy()
    }
    client.on('close', close)
    upstream.on('close', close)
    client.on('error', close)
    upstream.on('error', close)
  })
  await new Promise((r) => server.listen(0, host, r))
  const port = server.address().port
  return {
    port,
    counters,
    get mode() {
      return mode
    },
    get connections() {
      return conns.size
    },
    shape(options) {
      shaping = options ? { latencyMs: 0, upBps: 0, downBps: 0, ...options } : null
    },
    resetCounters() {
      counters.up = 0
      counters.down = 0
    },
    cut() {
      mode = 'cut'
      for (const c of [...conns]) {
        c.client.destroy()
        c.upstream.destroy()
      }
    },
    blackhole() {
      mode = 'blackhole'
      for (const c of conns) c.holed = true
    },
    restore() {
      for (const c of [...conns]) {
        if (c.holed) {
          c.client.destroy()
          c.upstream.destroy()
        }
      }
      mode = 'up'
    },
    async close() {
      for (const c of [...conns]) {
        c.client.destroy()
        c.upstream.destroy()
      }
      await new Promise((r) => server.close(r))
    },
  }
}
