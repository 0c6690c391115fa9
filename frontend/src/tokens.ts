// Keeps the page's short-lived access token fresh: renews it from the session cookie or
// the device's join grant (both HttpOnly: the server reads them) well before it expires.
// Pure scheduling in `renewDelayMs`; the keeper does the fetching and retrying.

import { ApiError, type PageToken, api } from './api'
import { decodeClaims } from './session'

/** Renew when 40 % of the token's life is left (at most 10 minutes before expiry). */
export function renewDelayMs(expSec: number, nowMs: number, lifeSec: number): number {
  const left = expSec * 1000 - nowMs
  const margin = Math.min(lifeSec * 400, 600_000)
  return Math.max(0, left - margin)
}

/** Retry delay after a failed renewal (network trouble): 2 s, 4 s, ... capped at 30 s. */
export function retryDelayMs(failures: number): number {
  return Math.min(30_000, 2000 * 2 ** Math.max(0, failures - 1))
}

export function tokenExpiry(token: string): number {
  const claims = decodeClaims(token)
  return claims && typeof claims.exp === 'number' ? claims.exp : 0
}

export function tokenLife(token: string): number {
  const claims = decodeClaims(token)
  if (!claims || typeof claims.exp !== 'number' || typeof claims.iat !== 'number') return 3600
  return Math.max(1, claims.exp - claims.iat)
}

export type Refusal = { reason: string; message: string }

export class TokenKeeper {
  private timer = 0
  private failures = 0
  private inflight: Promise<string | null> | null = null
  private stopped = false

  constructor(
    readonly classroom: string,
    /** Renewals must be for this user: the page never changes who it is mid-lesson. */
    readonly userId: string,
    public token: string,
    private onToken: (token: string) => void,
    private onRefused: (r: Refusal) => void,
    /** false for a token pasted in a CLI link: renewal may fail, the token keeps working. */
    private renewable = true,
  ) {}

  start(): void {
    this.schedule()
  }

  stop(): void {
    this.stopped = true
    clearTimeout(this.timer)
  }

  /** Seconds the current token still has. */
  secondsLeft(now = Date.now()): number {
    return tokenExpiry(this.token) - now / 1000
  }

  private schedule(): void {
    clearTimeout(this.timer)
    if (this.stopped) return
    const delay = renewDelayMs(tokenExpiry(this.token), Date.now(), tokenLife(this.token))
    this.timer = window.setTimeout(() => void this.renew(), delay)
  }

  /** Renews now (once at a time). Resolves to the new token, or null on failure. */
  renew(): Promise<string | null> {
    if (!this.inflight) {
      this.inflight = this.fetch().finally(() => (this.inflight = null))
    }
    return this.inflight
  }

  private async fetch(): Promise<string | null> {
    try {
      const fresh = await api<PageToken>('POST', `/api/classrooms/${encodeURIComponent(this.classroom)}/token`)
      if (decodeClaims(fresh.token)?.sub !== this.userId) {
        // A CLI link opened in a browser that is signed in as someone else: keep the
        // link's own token until it runs out.
        this.stop()
        return null
      }
      this.failures = 0
      this.token = fresh.token
      this.onToken(fresh.token)
      this.schedule()
      return fresh.token
    } catch (err) {
      const e = err instanceof ApiError ? err : new ApiError(0, 'offline', String(err))
      const permanent = e.status >= 400 && e.status < 500 && e.reason !== 'rate-limited'
      if (permanent && this.renewable) {
        this.stop()
        this.onRefused({ reason: e.reason, message: e.message })
        return null
      }
      if (!permanent) {
        this.failures += 1
        clearTimeout(this.timer)
        if (!this.stopped) this.timer = window.setTimeout(() => void this.renew(), retryDelayMs(this.failures))
      }
      return null
    }
  }
}
