// What to tell a person who cannot get in, by the server's reason or close code. Plain
// words and what to do next: never an empty board.

export interface RefusalText {
  reason: string
  title: string
  body: string
  /** 'home' (sign in), 'retry' (reload), or none. */
  action?: 'home' | 'retry'
  /** The server's own message (when given) says it better: a number, a plan. */
  detailed?: boolean
}

const ASK = 'Ask your tutor for a new link.'

const TEXTS: Record<string, Omit<RefusalText, 'reason'>> = {
  revoked: { title: 'This link was turned off', body: `The tutor turned off the invite link you used. ${ASK}` },
  expired: { title: 'This link has expired', body: `The invite link is past its end date. ${ASK}` },
  'used-up': { title: 'This link is full', body: `The invite link has been used as many times as it allows. ${ASK}` },
  'not-found': { title: 'This link does not work', body: `There is no classroom behind this link. Check that you copied all of it, or ask your tutor for a new one.` },
  archived: { title: 'This classroom is closed', body: 'The tutor archived this classroom, so it cannot be opened any more. If you still need it, ask your tutor.' },
  removed: { title: 'You were removed from this classroom', body: 'The tutor removed you from this classroom. Ask your tutor if this is a mistake.' },
  forbidden: { title: 'This is not your classroom', body: 'You are signed in, but this classroom belongs to another tutor. Open it from your own list, or ask its tutor for an invite link.', action: 'home' },
  'wrong-classroom': { title: 'This link is for another classroom', body: `The access in this link does not match this classroom. ${ASK}` },
  signin: { title: 'Sign in to open this classroom', body: 'Tutors: sign in to open your classroom. Students: open the invite link your tutor sent you; this address alone does not let you in.', action: 'home' },
  'token-expired': { title: 'Your access has run out', body: `Your access to this classroom ended and could not be renewed. ${ASK}`, action: 'retry' },
  offline: { title: 'No connection', body: 'The server cannot be reached. Check your internet connection and try again.', action: 'retry' },
  server: { title: 'Something went wrong', body: 'The server had a problem. Try again in a minute.', action: 'retry' },
  'payment-required': { title: 'This class is paused', body: "The tutor's subscription needs attention, so nobody new can join for now. Ask your tutor." },
  'class-full': { title: 'This class is full', body: "The class already has as many students as the tutor's plan allows. Ask your tutor.", detailed: true },
  'video-not-included': { title: 'No video in this class', body: "The tutor's plan does not include video calls. Ask your tutor." },
  refused: { title: 'You cannot enter this classroom', body: `The server refused access. ${ASK}` },
}

export function refusalText(reason: string, detail?: string): RefusalText {
  const t = TEXTS[reason] ?? TEXTS.refused
  const body = t.detailed && detail ? detail : TEXTS[reason] || !detail ? t.body : `${t.body} (${detail})`
  return { reason: TEXTS[reason] ? reason : 'refused', ...t, body }
}

/** The refusal for a WebSocket close: 4410 archived, 4403 revoked / removed / another
 * classroom, 4401 a token that could not be renewed, 4402 the tutor's subscription,
 * 4413 a full class. */
export function reasonForClose(code: number, reason: string): string {
  if (code === 4410) return 'archived'
  if (code === 4402) return reason.startsWith('video') ? 'video-not-included' : 'payment-required'
  if (code === 4413) return 'class-full'
  if (code === 4403) {
    if (reason.startsWith('revoked')) return 'revoked'
    if (reason.startsWith('removed')) return 'removed'
    return 'wrong-classroom'
  }
  if (code === 4401) return 'token-expired'
  if (code === 4404) return 'not-found'
  return 'refused'
}
