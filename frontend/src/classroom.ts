// The classroom document `{classroom}/class`. The server reads it, so the names are fixed:
//   state: Y.Map  boardLocked: boolean, followMe: null | {userId, pageId, x, y, zoom},
//                 clearedAt?: number            (tutors and admins only may write it)
//   hands: Y.Map  userId -> timestamp (present = raised)
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

export class Classroom {
  readonly doc: Y.Doc
  readonly state: Y.Map<unknown>
  readonly hands: Y.Map<number>
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

  raiseHand(userId: string, up: boolean): void {
    this.doc.transact(() => {
      if (up) this.hands.set(userId, Date.now())
      else this.hands.delete(userId)
    }, LOCAL)
  }

  raisedHands(): Array<[string, number]> {
    return [...this.hands.entries()].sort((a, b) => a[1] - b[1])
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
