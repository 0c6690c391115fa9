// The connectivity self-test: each check returns a result; `verdict` turns them into one
// of three words. Pure functions here are the diagnosis; the browser work is in run().

import { decodeClaims } from '../session'

export type Verdict = 'full video' | 'low video' | 'audio only'

export interface Candidate {
  type: string // host | srflx | prflx | relay
  protocol: string // udp | tcp
  relayProtocol?: string // udp | tcp | tls (relay candidates)
  address?: string
}

export interface Report {
  at: string
  classroom: string | null
  signaling: { ok: boolean; rttMs?: number; error?: string }
  microphone: { ok: boolean; rms?: number; error?: string }
  camera: { ok: boolean; luma?: number; error?: string }
  candidates: Candidate[]
  candidateTypes: string[]
  network: string[]
  media: {
    ok: boolean
    connectMs?: number
    pair?: string
    rttMs?: number
    jitterMs?: number
    lossPct?: number
    bitrateKbps?: number
    error?: string
  }
  verdict: Verdict
  advice: string
}

/** "host", "srflx", "relay/udp", "relay/tcp", "relay/tls": what was gathered. */
export function candidateTypes(candidates: Candidate[]): string[] {
  const types = new Set<string>()
  for (const c of candidates) {
    types.add(c.type === 'relay' ? `relay/${c.relayProtocol ?? c.protocol}` : c.type)
  }
  return [...types].sort()
}

/** Plain-words diagnosis of the candidate inventory. */
export function diagnose(candidates: Candidate[], hadServers: { stun: boolean; turn: boolean }): string[] {
  const types = new Set(candidateTypes(candidates))
  const notes: string[] = []
  const udpOut = types.has('srflx') || types.has('relay/udp')
  const tcpRelay = types.has('relay/tcp') || types.has('relay/tls')
  if ((hadServers.stun || hadServers.turn) && !udpOut && tcpRelay) {
    notes.push('UDP blocked: this network lets calls through only over TCP/TLS relays (slower, but it works).')
  } else if ((hadServers.stun || hadServers.turn) && !udpOut && !tcpRelay) {
    notes.push('No path out found: neither UDP nor the TCP/TLS relays answered. A firewall blocks calls here.')
  }
  if (types.has('srflx') && !types.has('relay/udp') && hadServers.turn) {
    notes.push('The relay server did not answer over UDP; calls will use TCP.')
  }
  if (!hadServers.stun && !hadServers.turn) {
    notes.push('No STUN or TURN servers configured: only direct connections were tested.')
  }
  return notes
}

/**
 * One of three words, from what the media round trip measured. Loss, round trip and
 * jitter decide; the bitrate estimate only rules out the worst links, because over REMB
 * (the server offers no transport-wide feedback) it ramps up for longer than the check
 * lasts, so a clean path measured at 200-300 kb/s is still good for video.
 */
export function verdict(media: Report['media']): { verdict: Verdict; advice: string } {
  if (!media.ok) {
    return { verdict: 'audio only', advice: 'Media could not reach the class server. Join with audio only, or try another network.' }
  }
  const loss = media.lossPct ?? 0
  const rtt = media.rttMs ?? 0
  const jitter = media.jitterMs ?? 0
  const rate = media.bitrateKbps ?? 0
  if (loss >= 8 || rtt >= 600 || (rate > 0 && rate < 60)) {
    return { verdict: 'audio only', advice: 'Use audio only in class: turn your camera off when you join.' }
  }
  if (loss >= 2 || rtt >= 300 || jitter >= 50 || (rate > 0 && rate < 150)) {
    return { verdict: 'low video', advice: 'Video will be reduced. Move closer to the Wi-Fi router or close other apps using the network.' }
  }
  return { verdict: 'full video', advice: 'Your connection is good for video.' }
}

/** The classroom named by a token, for the signaling URL (the server checks the token). */
export function classroomOf(token: string | null): string | null {
  if (!token) return null
  const cls = decodeClaims(token)?.cls
  return typeof cls === 'string' ? cls : null
}
