// What the load generators read from /proc about the server: its process tree, CPU ticks
// (utime+stime of live processes, cutime+cstime of reaped children) and RSS, plus the
// whole machine's busy ticks, so that a neighbour's load shows beside the figures.

import fs from 'node:fs'

export function descendants (root) {
  const parent = new Map()
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'latin1')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      parent.set(Number(name), Number(fields[1]))
    } catch { /* gone */ }
  }
  const out = [root]
  for (let i = 0; i < out.length; i++) {
    for (const [pid, ppid] of parent) if (ppid === out[i]) out.push(pid)
  }
  return out
}

export function cpuTicks (pids) {
  // utime + stime of each live process; cutime + cstime cover reaped children.
  let ticks = 0
  for (const pid of pids) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1')
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])
    } catch { /* gone */ }
  }
  return ticks
}

export function machineTicks () {
  // Busy and total ticks of all CPUs (first line of /proc/stat).
  const f = fs.readFileSync('/proc/stat', 'latin1').split('\n')[0].trim().split(/\s+/).slice(1).map(Number)
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0)
  return { busy: total - f[3] - f[4], total }
}

export function rssKb (pids) {
  let kb = 0
  for (const pid of pids) {
    try {
      const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'latin1'))
      if (m) kb += Number(m[1])
    } catch { /* gone */ }
  }
  return kb
}
