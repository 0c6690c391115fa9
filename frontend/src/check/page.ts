// The `/check` page: runs the checks in order, shows each as it finishes, then a verdict
// in one of three words and a report to copy. With a classroom link's token it tests the
// signaling and a short media round trip through the class server (in a call of its own,
// so the class is not disturbed); without one, only devices and the local network.

import { h } from '../ui'
import { type Candidate, type Report, candidateTypes, classroomOf, diagnose, verdict } from './checks'

const GATHER_MS = 5000
const MEDIA_MS = 4000

type Step = (line: string, state: 'ok' | 'warn' | 'fail' | 'run') => void

export function mountCheck(mount: HTMLElement, loc: Location): void {
  const token = new URLSearchParams(loc.search).get('token')
  const steps = h('ol', { class: 'check-steps', 'data-testid': 'check-steps' })
  const result = h('section', { class: 'check-result', 'aria-live': 'polite' })
  const start = h('button', { class: 'check-start', text: 'Run the check' })
  mount.replaceChildren(
    h('main', { class: 'check' },
      h('h1', { text: 'Connection check' }),
      h('p', { text: token ? 'Tests your camera, microphone and network against your class server.' : 'No classroom link: only your devices and local network are tested. Open this page from your classroom link for the full check.' }),
      start, steps, result),
  )
  const step: Step = (line, state) => {
    steps.append(h('li', { class: `check-${state}`, 'data-state': state, text: line }))
  }
  start.addEventListener('click', async () => {
    start.disabled = true
    steps.replaceChildren()
    const report = await runChecks(token, loc, step)
    const text = JSON.stringify(report, null, 2)
    const copy = h('button', { text: 'Copy report' })
    copy.addEventListener('click', () => void navigator.clipboard?.writeText(text))
    const sent = h('p', { class: 'check-sent', 'data-testid': 'check-sent', role: 'status', text: token ? 'Sending the report to your class…' : 'Open this page from your classroom link to send the report to your tutor.' })
    result.replaceChildren(
      h('p', { class: 'check-verdict', 'data-testid': 'check-verdict', text: report.verdict }),
      h('p', { text: report.advice }),
      copy,
      sent,
      h('pre', { class: 'check-report', 'data-testid': 'check-report', text }),
    )
    start.disabled = false
    if (token) sent.textContent = await sendReport(token, report)
  })
}

export async function runChecks(token: string | null, loc: Location, step: Step): Promise<Report> {
  const classroom = classroomOf(token)
  const report: Report = {
    at: new Date().toISOString(), classroom,
    signaling: { ok: false }, microphone: { ok: false }, camera: { ok: false },
    candidates: [], candidateTypes: [], network: [], media: { ok: false },
    verdict: 'audio only', advice: '',
  }
  let ws: WebSocket | null = null
  let iceServers: RTCIceServer[] = []
  const waiting = new Map<string, (m: Record<string, unknown>) => void>()
  const expect = (type: string) => new Promise<Record<string, unknown>>((r) => waiting.set(type, r))

  if (token && classroom) {
    try {
      const scheme = loc.protocol === 'https:' ? 'wss' : 'ws'
      const t0 = performance.now()
      ws = new WebSocket(`${scheme}://${loc.host}/sfu/${classroom}?token=${encodeURIComponent(token)}&check=1`)
      ws.onmessage = (e) => {
        const m = JSON.parse(String(e.data)) as Record<string, unknown>
        waiting.get(String(m.type))?.(m)
      }
      await new Promise<void>((ok, fail) => {
        ws!.onopen = () => ok()
        ws!.onerror = () => fail(new Error('the class server could not be reached'))
        ws!.onclose = (e) => fail(new Error(e.code === 4401 ? 'the link has expired' : `closed (${e.code})`))
      })
      const joined = expect('joined')
      ws.send(JSON.stringify({ type: 'join' }))
      const m = await withTimeout(joined, 5000, 'no answer from the class server')
      report.signaling = { ok: true, rttMs: Math.round(performance.now() - t0) }
      iceServers = (m.iceServers as RTCIceServer[]) ?? []
      step(`Class server reached in ${report.signaling.rttMs} ms`, report.signaling.rttMs! > 300 ? 'warn' : 'ok')
    } catch (e) {
      report.signaling = { ok: false, error: String((e as Error).message ?? e) }
      step(`Class server not reached: ${report.signaling.error}`, 'fail')
    }
  } else {
    step('Class server: skipped (no classroom link)', 'warn')
  }

  let stream: MediaStream | null = null
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 320, height: 240 } })
    const rms = await micLevel(stream)
    report.microphone = { ok: rms > 0.001, rms: round(rms, 4) }
    step(report.microphone.ok ? 'Microphone hears sound' : 'Microphone is silent: check it is not muted', report.microphone.ok ? 'ok' : 'warn')
    const luma = await cameraLuma(stream)
    report.camera = { ok: luma > 8, luma: Math.round(luma) }
    step(report.camera.ok ? 'Camera shows a picture' : 'Camera picture is black: is the lens covered?', report.camera.ok ? 'ok' : 'warn')
  } catch (e) {
    const error = String((e as Error).message ?? e)
    report.microphone = { ok: false, error }
    report.camera = { ok: false, error }
    step(`Camera and microphone unavailable: ${error}. Allow them in the browser's site settings.`, 'fail')
  }

  report.candidates = await gather(iceServers)
  report.candidateTypes = candidateTypes(report.candidates)
  const urls = iceServers.flatMap((s) => (Array.isArray(s.urls) ? s.urls : [s.urls]))
  report.network = diagnose(report.candidates, {
    stun: urls.some((u) => u.startsWith('stun:')),
    turn: urls.some((u) => u.startsWith('turn:') || u.startsWith('turns:')),
  })
  step(`Network paths found: ${report.candidateTypes.join(', ') || 'none'}`, report.candidateTypes.length ? 'ok' : 'fail')
  for (const note of report.network) step(note, 'warn')

  if (ws && stream) {
    report.media = await roundTrip(ws, stream, iceServers, expect)
    step(report.media.ok
      ? `Media to the class server: ${report.media.pair}, ${report.media.rttMs} ms round trip, ${report.media.bitrateKbps} kb/s`
      : `Media did not reach the class server: ${report.media.error}`, report.media.ok ? 'ok' : 'fail')
  }
  ws?.send(JSON.stringify({ type: 'leave' }))
  ws?.close(1000)
  for (const t of stream?.getTracks() ?? []) t.stop()
  const v = verdict(report.media)
  report.verdict = v.verdict
  report.advice = v.advice
  return report
}

/** Stores the report for the tutor and admins; returns what to tell the user. */
async function sendReport(token: string, report: Report): Promise<string> {
  try {
    const r = await fetch('/api/check-reports', {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ ...report, userAgent: navigator.userAgent }),
    })
    if (r.ok) return 'Report sent: your tutor can see it.'
    if (r.status === 429) return 'Report not sent: too many checks in the last hour. Copy it instead.'
    return 'Report not sent. Copy it and send it to your tutor.'
  } catch {
    return 'Report not sent (no connection). Copy it and send it to your tutor.'
  }
}

async function roundTrip(
  ws: WebSocket, stream: MediaStream, iceServers: RTCIceServer[],
  expect: (type: string) => Promise<Record<string, unknown>>,
): Promise<Report['media']> {
  const pc = new RTCPeerConnection({ iceServers, bundlePolicy: 'max-bundle' })
  try {
    for (const t of stream.getTracks()) pc.addTransceiver(t, { direction: 'sendonly' })
    pc.onicecandidate = (e) => {
      if (e.candidate) ws.send(JSON.stringify({ type: 'candidate', pc: 'pub', candidate: e.candidate.toJSON() }))
    }
    const t0 = performance.now()
    await pc.setLocalDescription(await pc.createOffer())
    const answered = expect('answer')
    ws.send(JSON.stringify({ type: 'offer', pc: 'pub', sdp: pc.localDescription!.sdp }))
    const answer = await withTimeout(answered, 10_000, 'no answer to the media offer')
    await pc.setRemoteDescription({ type: 'answer', sdp: String(answer.sdp) })
    await withTimeout(new Promise<void>((ok) => {
      const seen = () => pc.connectionState === 'connected' && ok()
      pc.onconnectionstatechange = seen
      seen()
    }), 10_000, 'could not connect (a firewall may block calls)')
    const connectMs = Math.round(performance.now() - t0)
    await new Promise((r) => setTimeout(r, MEDIA_MS))
    const out: Report['media'] = { ok: true, connectMs }
    const stats = await pc.getStats()
    const byId = new Map<string, Record<string, unknown>>()
    stats.forEach((s: Record<string, unknown>) => byId.set(String(s.id), s))
    // The pair in use: the transport's selected one (the "nominated" flag can lag).
    const selected = [...byId.values()].find((s) => s.type === 'transport')?.selectedCandidatePairId
    for (const s of byId.values()) {
      if (s.type === 'candidate-pair' && (selected ? s.id === selected : s.nominated && s.state === 'succeeded')) {
        const local = byId.get(String(s.localCandidateId))
        const remote = byId.get(String(s.remoteCandidateId))
        out.pair = `${local?.candidateType}/${local?.protocol} to ${remote?.candidateType}/${remote?.protocol}`
        out.rttMs = Math.round((Number(s.currentRoundTripTime) || 0) * 1000)
        out.bitrateKbps = Math.round((Number(s.availableOutgoingBitrate) || 0) / 1000)
      }
      if (s.type === 'remote-inbound-rtp' && s.kind === 'video') {
        out.jitterMs = Math.round((Number(s.jitter) || 0) * 1000)
        out.lossPct = round((Number(s.fractionLost) || 0) * 100, 1)
      }
    }
    return out
  } catch (e) {
    return { ok: false, error: String((e as Error).message ?? e) }
  } finally {
    pc.close()
  }
}

async function gather(iceServers: RTCIceServer[]): Promise<Candidate[]> {
  const pc = new RTCPeerConnection({ iceServers })
  const found: Candidate[] = []
  try {
    pc.addTransceiver('audio')
    const done = new Promise<void>((ok) => {
      pc.onicecandidate = (e) => {
        if (!e.candidate) return ok()
        const c = e.candidate as RTCIceCandidate & { relayProtocol?: string }
        found.push({ type: c.type ?? '?', protocol: c.protocol ?? '?', relayProtocol: c.relayProtocol, address: c.address ?? undefined })
      }
    })
    await pc.setLocalDescription(await pc.createOffer())
    await Promise.race([done, new Promise((r) => setTimeout(r, GATHER_MS))])
  } finally {
    pc.close()
  }
  return found
}

async function micLevel(stream: MediaStream): Promise<number> {
  const ctx = new AudioContext()
  try {
    const analyser = ctx.createAnalyser()
    ctx.createMediaStreamSource(stream).connect(analyser)
    const buf = new Float32Array(analyser.fftSize)
    let peak = 0
    for (let i = 0; i < 10; i++) {
      await new Promise((r) => setTimeout(r, 100))
      analyser.getFloatTimeDomainData(buf)
      peak = Math.max(peak, Math.sqrt(buf.reduce((s, v) => s + v * v, 0) / buf.length))
    }
    return peak
  } finally {
    void ctx.close()
  }
}

async function cameraLuma(stream: MediaStream): Promise<number> {
  const video = Object.assign(document.createElement('video'), { muted: true, playsInline: true, srcObject: stream })
  await video.play()
  await new Promise((r) => setTimeout(r, 500))
  const canvas = Object.assign(document.createElement('canvas'), { width: 64, height: 48 })
  const g = canvas.getContext('2d')!
  g.drawImage(video, 0, 0, 64, 48)
  const data = g.getImageData(0, 0, 64, 48).data
  let sum = 0
  for (let i = 0; i < data.length; i += 4) sum += 0.299 * data[i] + 0.587 * data[i + 1] + 0.114 * data[i + 2]
  video.pause()
  return sum / (data.length / 4)
}

function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  return Promise.race([p, new Promise<T>((_, fail) => setTimeout(() => fail(new Error(message)), ms))])
}

function round(v: number, digits: number): number {
  const f = 10 ** digits
  return Math.round(v * f) / f
}
