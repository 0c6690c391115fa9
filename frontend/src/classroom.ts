// The classroom document `{classroom}/class`. The server reads it, so the names are fixed:
//   state: Y.Map  boardLocked: boolean, followMe: null | {userId, pageId, x, y, zoom},
//                 clearedAt?: number            (tutors and admins only may write it)
//   hands: Y.Map  userId -> {t: timestamp, n: name} (present = raised; older clients
//                 wrote a bare timestamp). The server deletes a student's entry when
//                 they leave.
//   chat:  Y.Array of {id, userId, name, text, ts}

import * as Y from 'yjs'
import { LOCAL } from './board'

export interface FollowMe {
  userId: string
  pageId: string
  /** Centre of the leader's view, in page units. */
  x: number
  y: number
  /** 1 = the whole page width fits the screen; device independent. */
  zoom: number
}

export interface ChatMessage {
  id: string
  userId: string
  name: string
  text: string
  ts: number
}

export const CHAT_MAX_CHARS = 500

export interface RaisedHand {
  userId: string
  t: number
  name: string
}

export function raisedHand(userId: string, value: unknown): RaisedHand {
  if (value && typeof value === 'object') {
    const o = value as Record<string, unknown>
    return { userId, t: Number(o.t) || 0, name: typeof o.n === 'string' ? o.n : '' }
  }
  return { userId, t: Number(value) || 0, name: '' }
}

export class Classroom {
  readonly doc: Y.Doc
  readonly state: Y.Map<unknown>
  readonly hands: Y.Map<unknown>
  readonly chat: Y.Array<ChatMessage>

  constructor(doc: Y.Doc) {
    this.doc = doc
    this.state = doc.getMap('state')
    this.hands = doc.getMap('hands')
    this.chat = doc.getArray('chat')
  }

  get boardLocked(): boolean {
    return this.state.get('boardLocked') === true
  }

  setBoardLocked(locked: boolean): void {
    this.doc.transact(() => this.state.set('boardLocked', locked), LOCAL)
  }

  /** An administrator's override of this user's role (`state["role:USER"]`), if any. */
  roleOverride(userId: string): unknown {
    return this.state.get('role:' + userId)
  }

  get followMe(): FollowMe | null {
    const v = this.state.get('followMe')
    const o = v instanceof Y.Map ? (v.toJSON() as Record<string, unknown>) : (v as Record<string, unknown> | null)
    if (!o || typeof o !== 'object' || typeof o.userId !== 'string' || typeof o.pageId !== 'string') {
      return null
    }
    return {
      userId: o.userId,
      pageId: o.pageId,
      x: Number(o.x) || 0,
      y: Number(o.y) || 0,
      zoom: Number(o.zoom) || 1,
    }
  }

  setFollowMe(f: FollowMe | null): void {
    this.doc.transact(() => this.state.set('followMe', f ? { ...f } : null), LOCAL)
  }

  markCleared(): void {
    this.doc.transact(() => this.state.set('clearedAt', Date.now()), LOCAL)
  }

  raiseHand(userId: string, up: boolean, name = ''): void {
    this.doc.transact(() => {
      if (up) this.hands.set(userId, { t: Date.now(), n: name })
      else this.hands.delete(userId)
    }, LOCAL)
  }

  /** Raised hands, oldest first: who, since when, and the name they raised it with. */
  raisedHands(): RaisedHand[] {
    return [...this.hands.entries()].map(([userId, v]) => raisedHand(userId, v)).sort((a, b) => a.t - b.t)
  }

  say(userId: string, name: string, text: string): void {
    const clean = text.trim().slice(0, CHAT_MAX_CHARS)
    if (!clean) return
    const msg: ChatMessage = {
      id: `${this.doc.clientID.toString(36)}.${Date.now().toString(36)}`,
      userId,
      name,
      text: clean,
      ts: Date.now(),
    }
    this.doc.transact(() => this.chat.push([msg]), LOCAL)
  }
}
