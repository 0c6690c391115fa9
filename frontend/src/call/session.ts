// One participant of a classroom call: the signaling WebSocket (docs/sfu.md) and the two
// peer connections, `pub` (this browser offers what it sends) and `sub` (the server
// offers what it forwards). No DOM here: the panel renders what this holds.

export type Kind = 'audio' | 'video'

export interface Participant {
  participant: string
  userId: string
  name: string
  role: string
  published: Kind[]
  muted: Kind[]
}

export interface Slot {
  kind: Kind
  participant: string | null
  userId: string | null
}

export interface Policy {
  muted: string[]
  floor: string[]
  spotlight: string | null
  studentVideo: boolean
}

import { type Counters, type Level, type LinkSample, MAX_RESTARTS, level, redirected, restartDelay, sample } from './quality'

type Message = Record<string, unknown> & { type: string }

const STATS_EVERY_MS = 2500
// A connection "disconnected" this long (no ICE answers: Wi-Fi to mobile, a dead NAT
// binding) is renegotiated without waiting for "failed", which takes about 30 s.
const DISCONNECTED_MS = 4000

export class CallSession {
  ws: WebSocket | null = null
  pub: RTCPeerConnection | null = null
  sub: RTCPeerConnection | null = null
  me = ''
  iceServers: RTCIceServer[] = []
  policy: Policy = { muted: [], floor: [], spotlight: null, studentVideo: true }
  readonly participants = new Map<string, Participant>()
  slots: Record<string, Slot> = {}
  readonly streams = new Map<string, MediaStream>()
  readonly paused = new Set<Kind>()
  /** Participants speaking now (from the server's audio-level detection). */
  readonly speaking = new Set<string>()
  audioOnly = false
  local: MediaStream | null = null
  /** What the server forwards to this client, judged from its link (docs/sfu.md). */
  serverQuality = 'full video'
  /** This client's own view of its link, from getStats. */
  link: { level: Level; sample: LinkSample } | null = null
  /** Media restarts so far (a new pair of connections, same call). */
  restarts = 0
  restarting = false
  private counters: Counters | null = null
  private statsTimer = 0
  private waiting = new Map<string, (m: Message) => void>()
  private readonly onOnline = () => {
    if (![this.pub, this.sub].every((pc) => !pc || pc.connectionState === 'connected')) void this.restartMedia()
  }

  constructor(
    public url: string,
    readonly onChange: () => void,
    readonly onError: (message: string) => void,
  ) {}

  /** Opens signaling and joins; resolves with the `joined` message. */
  async join(): Promise<void> {
    // A call lives on one node: another node answers `redirect` (then closes with 4307),
    // and the join goes there, with the same path and token. At most two hops.
    let m: Message | null = null
    for (let hop = 0; hop < 3 && !m; hop++) m = await this.joinAt(this.url)
    if (!m) throw new Error('The call could not be found on the class servers. Try again.')
    this.me = String(m.participant)
    this.iceServers = (m.iceServers as RTCIceServer[]) ?? []
    this.policy = m.policy as Policy
    for (const p of m.participants as Participant[]) this.participants.set(p.participant, p)
    this.statsTimer = window.setInterval(() => void this.reportStats(), STATS_EVERY_MS)
    window.addEventListener('online', this.onOnline)
    this.onChange()
  }

  /** Joins over a new socket at `url`: the `joined` message, or null after a redirect
   * (with `this.url` pointed at the node that hosts the call). */
  private async joinAt(url: string): Promise<Message | null> {
    const ws = new WebSocket(url)
    this.ws = ws
    let moved: string | null = null
    ws.onmessage = (e) => {
      const m = JSON.parse(String(e.data)) as Message
      if (m.type === 'redirect') moved = String(m.url)
      else void this.receive(m)
    }
    ws.onclose = (e) => {
      if (this.ws === ws && e.code !== 1000 && e.code !== 4307) this.onError(closeReason(e.code))
      if (this.ws === ws) this.ws = null
      this.onChange()
    }
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve()
      ws.onerror = () => reject(new Error('Could not reach the call server.'))
    })
    const joined = this.expect('joined')
    const closed = new Promise<null>((resolve) => ws.addEventListener('close', () => resolve(null)))
    this.send({ type: 'join' })
    const m = await Promise.race([joined, closed])
    if (m) return m
    if (!moved) throw new Error(closeReason(4000))
    this.url = redirected(url, moved)
    return null
  }

  /**
   * aiortc has no ICE restart, so a failed transport gets fresh connections: close both,
   * tell the server (`reconnect`: it drops this client's connections and offers again),
   * publish again. The call, the signaling and the page stay. Bounded retries with
   * jittered backoff; then the error tells the user what to do.
   */
  async restartMedia(): Promise<void> {
    if (this.restarting || !this.ws) return
    this.restarting = true
    this.onChange()
    try {
      for (let attempt = 0; attempt < MAX_RESTARTS; attempt++) {
        await new Promise((r) => setTimeout(r, restartDelay(attempt)))
        if (!this.ws) return
        this.dropConnections()
        this.send({ type: 'reconnect' })
        try {
          if (this.local) {
            const late = new Promise<never>((_, fail) => setTimeout(() => fail(new Error('no answer')), 10_000))
            await Promise.race([this.publish(this.local), late])
          }
          if (await this.connected(10_000)) {
            this.restarts++
            return
          }
        } catch {
          // a refused or timed-out renegotiation: the next attempt starts afresh
        }
      }
      this.onError('The call lost its media connection. Check your network, then leave and join again (see /check).')
    } finally {
      this.restarting = false
      this.onChange()
    }
  }

  private dropConnections(): void {
    for (const pc of [this.pub, this.sub]) {
      if (!pc) continue
      pc.onconnectionstatechange = null
      pc.close()
    }
    this.pub = this.sub = null
    this.streams.clear()
    this.slots = {}
    this.counters = null
  }

  private connected(ms: number): Promise<boolean> {
    const up = () => [this.pub, this.sub].every((pc) => !pc || pc.connectionState === 'connected') && (!this.local || !!this.pub)
    return new Promise((resolve) => {
      const start = performance.now()
      const poll = () => {
        if (up()) resolve(true)
        else if (performance.now() - start > ms || !this.ws) resolve(false)
        else setTimeout(poll, 100)
      }
      poll()
    })
  }

  private watch(pc: RTCPeerConnection): void {
    let timer = 0
    pc.onconnectionstatechange = () => {
      window.clearTimeout(timer)
      if (pc.connectionState === 'failed') void this.restartMedia()
      else if (pc.connectionState === 'disconnected') {
        timer = window.setTimeout(() => {
          if (pc.connectionState === 'disconnected') void this.restartMedia()
        }, DISCONNECTED_MS)
      }
      this.onChange()
    }
  }

  /** Sends `stream`'s tracks on the publishing connection. */
  async publish(stream: MediaStream): Promise<void> {
    this.local = stream
    const pc = new RTCPeerConnection({ iceServers: this.iceServers, bundlePolicy: 'max-bundle' })
    this.pub = pc
    this.watch(pc)
    for (const track of stream.getTracks()) pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] })
    pc.onicecandidate = (e) => {
      if (e.candidate) this.send({ type: 'candidate', pc: 'pub', candidate: e.candidate.toJSON() })
    }
    await pc.setLocalDescription(await pc.createOffer())
    const answered = this.expect('answer')
    this.send({ type: 'offer', pc: 'pub', sdp: pc.localDescription!.sdp })
    const answer = await answered
    await pc.setRemoteDescription({ type: 'answer', sdp: String(answer.sdp) })
  }

  setMuted(kind: Kind, muted: boolean): void {
    for (const t of this.local?.getTracks() ?? []) if (t.kind === kind) t.enabled = !muted
    this.send({ type: 'mute', kind, muted })
  }

  /** Receive no video (weak link, saving data); audio keeps flowing. */
  setAudioOnly(on: boolean): void {
    this.audioOnly = on
    this.send({ type: 'audio-only', enabled: on })
  }

  isMuted(kind: Kind): boolean {
    const track = this.local?.getTracks().find((t) => t.kind === kind)
    return !track || !track.enabled
  }

  leave(): void {
    this.send({ type: 'leave' })
    window.clearInterval(this.statsTimer)
    window.removeEventListener('online', this.onOnline)
    for (const t of this.local?.getTracks() ?? []) t.stop()
    this.pub?.close()
    this.sub?.close()
    this.ws?.close(1000)
    this.ws = null
    this.pub = this.sub = null
    this.streams.clear()
    this.slots = {}
    this.onChange()
  }

  /** Frames (video) or samples (audio) received so far per slot, for tests and the UI. */
  async received(): Promise<Record<string, { kind: Kind; userId: string | null; count: number }>> {
    const out: Record<string, { kind: Kind; userId: string | null; count: number }> = {}
    if (!this.sub) return out
    const stats = await this.sub.getStats()
    stats.forEach((s: Record<string, unknown>) => {
      if (s.type !== 'inbound-rtp' || typeof s.mid !== 'string') return
      const slot = this.slots[s.mid]
      const kind = s.kind as Kind
      const count = Number(kind === 'video' ? s.framesDecoded : s.totalSamplesReceived) || 0
      out[s.mid] = { kind, userId: slot?.userId ?? null, count }
    })
    return out
  }

  private send(m: Message): void {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(m))
  }

  private expect(type: string): Promise<Message> {
    return new Promise((resolve) => this.waiting.set(type, resolve))
  }

  private async receive(m: Message): Promise<void> {
    const waiter = this.waiting.get(m.type)
    if (waiter) {
      this.waiting.delete(m.type)
      waiter(m)
    }
    switch (m.type) {
      case 'offer':
        await this.answer(String(m.sdp))
        break
      case 'tracks':
        this.slots = m.tracks as Record<string, Slot>
        break
      case 'participant-joined': {
        const p = m.participant as Participant
        this.participants.set(p.participant, p)
        break
      }
      case 'participant-left':
        this.participants.delete(String(m.participant))
        break
      case 'participant-state': {
        const p = this.participants.get(String(m.participant))
        if (p) {
          p.muted = m.muted as Kind[]
          p.published = m.published as Kind[]
        }
        break
      }
      case 'speaking':
        if (m.speaking === true) this.speaking.add(String(m.participant))
        else this.speaking.delete(String(m.participant))
        break
      case 'policy':
        this.policy = m.policy as Policy
        break
      case 'quality':
        this.serverQuality = String(m.state)
        break
      case 'pause':
        await this.pause(m.kind as Kind, m.paused === true)
        break
      case 'error':
        this.onError(String(m.message))
        break
    }
    this.onChange()
  }

  private async answer(sdp: string): Promise<void> {
    if (!this.sub) {
      const pc = new RTCPeerConnection({ iceServers: this.iceServers, bundlePolicy: 'max-bundle' })
      pc.ontrack = (e) => {
        const mid = e.transceiver.mid
        if (mid) this.streams.set(mid, new MediaStream([e.track]))
        this.onChange()
      }
      pc.onicecandidate = (e) => {
        if (e.candidate) this.send({ type: 'candidate', pc: 'sub', candidate: e.candidate.toJSON() })
      }
      this.sub = pc
      this.watch(pc)
    }
    await this.sub.setRemoteDescription({ type: 'offer', sdp })
    await this.sub.setLocalDescription(await this.sub.createAnswer())
    this.send({ type: 'answer', pc: 'sub', sdp: this.sub.localDescription!.sdp })
  }

  /** Video nobody receives: stop encoding it (the camera stays on for the preview). */
  private async pause(kind: Kind, paused: boolean): Promise<void> {
    if (paused) this.paused.add(kind)
    else this.paused.delete(kind)
    for (const sender of this.pub?.getSenders() ?? []) {
      if (sender.track?.kind !== kind) continue
      const params = sender.getParameters()
      for (const e of params.encodings ?? []) e.active = !paused
      await sender.setParameters(params).catch(() => undefined)
    }
  }

  private async reportStats(): Promise<void> {
    if (!this.pub && !this.sub) return
    const all: Record<string, unknown>[] = []
    for (const pc of [this.pub, this.sub]) {
      if (pc) (await pc.getStats()).forEach((s: Record<string, unknown>) => all.push(s))
    }
    const now = sample(this.counters, all)
    this.counters = now.counters
    this.link = { level: level(now.sample), sample: now.sample }
    this.send({ type: 'stats', report: { ...now.sample, level: this.link.level, restarts: this.restarts } })
    this.onChange()
  }
}

function closeReason(code: number): string {
  if (code === 4401) return 'Your access to this call has expired. Open the classroom link again.'
  if (code === 4403) return 'This link is for another classroom.'
  if (code === 1013) return 'The call is busy. Try joining again in a moment.'
  return 'The call connection was lost. Check your network and join again (see /check).'
}
