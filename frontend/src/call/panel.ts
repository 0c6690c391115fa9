// The call strip above the board: "Join call", microphone and camera toggles, the tiles,
// and for tutors the call controls, which are writes to the classroom document (the
// server reads them from there; see docs/sfu.md).

import { h } from '../ui'
import type { Session } from '../session'
// The call's code (signaling, WebRTC) loads when a call is joined, not with the board.
import type { CallSession, Kind, Participant } from './session'
import { weakNote } from './quality'

// Signal bars, filled up to the level (inline SVG, stroked with currentColor).
const BARS = (filled: number) =>
  `<svg class="ico" viewBox="0 0 24 24" width="18" height="18" aria-hidden="true" focusable="false">${[0, 1, 2]
    .map((i) => `<rect x="${3 + i * 7}" y="${16 - i * 6}" width="4" height="${5 + i * 6}" rx="1" fill="currentColor" opacity="${i < filled ? 1 : 0.25}"/>`)
    .join('')}</svg>`
const LEVELS = { good: 3, fair: 2, poor: 1 } as const

export interface CallControls {
  /** Writes one key of the classroom document's `state` map (tutors only). */
  setState(key: string, value: unknown): void
  /** Reads one key of it. */
  getState(key: string): unknown
}

const TUTORS = new Set(['tutor', 'admin'])

export class CallPanel {
  readonly root: HTMLElement
  session: CallSession | null = null
  error = ''
  private readonly media = new Map<string, HTMLMediaElement>()
  private preview: HTMLVideoElement | null = null

  constructor(
    mount: HTMLElement,
    readonly me: Session,
    readonly url: string,
    readonly controls: CallControls,
  ) {
    this.root = h('section', { class: 'call', 'aria-label': 'Call', 'data-testid': 'call' })
    mount.append(this.root)
    this.render()
  }

  get checkUrl(): string {
    return `/check?token=${encodeURIComponent(this.me.token)}`
  }

  get tutor(): boolean {
    return TUTORS.has(this.me.role)
  }

  async join(): Promise<void> {
    this.error = ''
    let CallSession: typeof import('./session').CallSession
    try {
      ;({ CallSession } = await import('./session'))
    } catch (e) {
      this.fail(e instanceof Error ? e.message : String(e))
      return
    }
    const session = new CallSession(this.url, () => this.render(), (m) => this.fail(m))
    this.session = session
    this.render()
    try {
      await session.join()
      if (this.me.role !== 'observer') {
        const video = this.tutor || session.policy.studentVideo
        const stream = await navigator.mediaDevices.getUserMedia({
          audio: true,
          video: video ? { width: 320, height: 240, frameRate: 15 } : false,
        })
        await session.publish(stream)
      }
    } catch (e) {
      this.fail(e instanceof Error ? e.message : String(e))
    }
    this.render()
  }

  leave(): void {
    this.session?.leave()
    this.session = null
    for (const el of this.media.values()) el.remove()
    this.media.clear()
    this.preview = null
    this.render()
  }

  private fail(message: string): void {
    this.error = message
    this.render()
  }

  render(): void {
    const s = this.session
    const bar = h('div', { class: 'call-bar' })
    if (!s) {
      const join = h('button', { class: 'call-join', 'aria-label': 'Join call', text: 'Join call' })
      join.addEventListener('click', () => void this.join())
      bar.append(join, h('a', { class: 'call-check', href: this.checkUrl, text: 'Check my connection' }))
    } else {
      bar.append(this.toggle(s, 'audio', 'Mic', 'Microphone'), this.toggle(s, 'video', 'Camera', 'Camera'))
      const audioOnly = h('button', { class: 'call-audio-only', 'aria-label': 'Audio only', 'aria-pressed': s.audioOnly ? 'true' : 'false', text: 'Audio only' })
      audioOnly.addEventListener('click', () => {
        s.setAudioOnly(!s.audioOnly)
        this.render()
      })
      bar.append(audioOnly)
      const leave = h('button', { class: 'call-leave', 'aria-label': 'Leave call', text: 'Leave' })
      leave.addEventListener('click', () => this.leave())
      bar.append(leave)
      bar.append(this.quality(s))
      if (s.paused.has('video')) bar.append(h('span', { class: 'call-note', text: 'Nobody sees your camera now.' }))
      const weak = weakNote(s.serverQuality)
      if (weak) bar.append(h('span', { class: 'call-weak', role: 'status', 'data-testid': 'call-weak', text: weak }))
      if (s.restarting) bar.append(h('span', { class: 'call-note', role: 'status', text: 'Reconnecting the call…' }))
    }
    if (this.error) {
      bar.append(h('span', { class: 'call-error', role: 'alert', text: `${this.error} ` }, h('a', { href: this.checkUrl, text: 'Check my connection' })))
    }
    const tiles = h('div', { class: 'call-tiles' })
    if (s) this.renderTiles(s, tiles)
    const children: Node[] = [bar, tiles]
    if (s && this.tutor) children.push(this.renderControls(s))
    this.root.replaceChildren(...children)
  }

  /** Good / fair / poor from this browser's own stats, with the figures in the title. */
  private quality(s: CallSession): HTMLElement {
    const link = s.link
    const name = link ? link.level : 'measuring'
    const el = h('span', {
      class: `call-quality q-${name}`,
      role: 'img',
      'aria-label': `Connection: ${name}`,
      'data-testid': 'call-quality',
      'data-level': name,
      title: link ? `Round trip ${link.sample.rttMs ?? '?'} ms, loss ${link.sample.lossPct} %, jitter ${link.sample.jitterMs} ms` : 'Measuring the connection',
    })
    el.innerHTML = BARS(link ? LEVELS[link.level] : 0)
    el.append(h('span', { class: 'call-quality-word', text: link ? link.level : '…' }))
    return el
  }

  private toggle(s: CallSession, kind: Kind, icon: string, label: string): HTMLButtonElement {
    const on = !s.isMuted(kind)
    const b = h('button', { class: 'call-toggle', 'aria-label': label, 'aria-pressed': on ? 'true' : 'false', text: icon })
    b.addEventListener('click', () => {
      s.setMuted(kind, on)
      this.render()
    })
    return b
  }

  private renderTiles(s: CallSession, tiles: HTMLElement): void {
    if (s.local && s.local.getVideoTracks().length) {
      this.preview ??= Object.assign(h('video', { class: 'call-preview', muted: true, playsinline: true, autoplay: true }), { srcObject: s.local, muted: true })
      tiles.append(h('figure', { class: 'tile self' }, this.preview, h('figcaption', { text: 'You' })))
    }
    for (const [mid, slot] of Object.entries(s.slots)) {
      const stream = s.streams.get(mid)
      if (!stream || !slot.participant) continue
      let el = this.media.get(mid)
      if (!el || el.srcObject !== stream) {
        el = slot.kind === 'video' ? h('video', { playsinline: true, autoplay: true, muted: true }) : h('audio', { autoplay: true })
        el.srcObject = stream
        if (el instanceof HTMLVideoElement) el.muted = true // its sound comes through the audio slot
        this.media.set(mid, el)
      }
      if (slot.kind === 'audio') {
        tiles.append(el)
        continue
      }
      const who = s.participants.get(slot.participant)
      const speaking = s.speaking.has(slot.participant) ? ' speaking' : ''
      const tile = h('figure', {
        class: `tile${who && TUTORS.has(who.role) ? ' tutor' : ''}${speaking}`,
        'data-user': slot.userId ?? '',
        'data-mid': mid,
      }, el, h('figcaption', { text: who?.name ?? slot.userId ?? '' }))
      tiles.append(tile)
    }
  }

  private renderControls(s: CallSession): HTMLElement {
    const list = h('ul', { class: 'call-controls', 'aria-label': 'Call controls' })
    const muted = new Set(s.policy.muted)
    for (const p of s.participants.values()) {
      if (TUTORS.has(p.role) || p.participant === s.me) continue
      list.append(h('li', {}, h('span', { text: p.name || p.userId }), this.spotlight(s, p), this.muteButton(p, muted)))
    }
    const video = h('input', { type: 'checkbox', 'aria-label': 'Allow student video' })
    video.checked = s.policy.studentVideo
    video.addEventListener('change', () => this.controls.setState('callStudentVideo', video.checked))
    return h('div', { class: 'call-tutor' }, h('label', {}, video, ' Student video'), list)
  }

  private spotlight(s: CallSession, p: Participant): HTMLButtonElement {
    const on = s.policy.spotlight === p.userId
    const b = h('button', { 'aria-label': `Spotlight ${p.name || p.userId}`, 'aria-pressed': on ? 'true' : 'false', text: on ? 'Unspotlight' : 'Spotlight' })
    b.addEventListener('click', () => this.controls.setState('callSpotlight', on ? null : p.userId))
    return b
  }

  private muteButton(p: Participant, muted: Set<string>): HTMLButtonElement {
    const on = muted.has(p.userId)
    const b = h('button', { 'aria-label': `Mute ${p.name || p.userId}`, 'aria-pressed': on ? 'true' : 'false', text: on ? 'Unmute' : 'Mute' })
    b.addEventListener('click', () => {
      const next = new Set(muted)
      if (on) next.delete(p.userId)
      else next.add(p.userId)
      this.controls.setState('callMuted', [...next])
    })
    return b
  }
}
