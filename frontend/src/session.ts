// Who am I and which classroom: from the page's token (`/c/{classroom}`).
// The token is a JWT; the browser reads its claims without verifying (the server does).

export type Role = 'tutor' | 'student' | 'observer' | 'admin'

export interface Session {
  classroom: string
  token: string
  userId: string
  name: string
  role: Role
  exp: number
}

const ROLES = new Set(['tutor', 'student', 'observer', 'admin'])

export function decodeClaims(token: string): Record<string, unknown> | null {
  const part = token.split('.')[1]
  if (!part) return null
  try {
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/')
    const padded = b64 + '='.repeat((4 - (b64.length % 4)) % 4)
    const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0))
    const parsed: unknown = JSON.parse(new TextDecoder().decode(bytes))
    return parsed && typeof parsed === 'object' ? (parsed as Record<string, unknown>) : null
  } catch {
    return null
  }
}

const storageKey = (classroom: string) => `inkroom.token.${classroom}`

/** Keeps the page's token for a classroom, so an offline reload still opens the board. */
export function rememberToken(classroom: string, token: string, storage: Storage = localStorage): void {
  try {
    storage.setItem(storageKey(classroom), token)
  } catch {
    /* private mode: the page asks the server again next time */
  }
}

export function storedToken(classroom: string, storage: Storage = localStorage): string | null {
  try {
    return storage.getItem(storageKey(classroom))
  } catch {
    return null
  }
}

export const CLASSROOM_PATH = /^\/c\/([A-Za-z0-9][A-Za-z0-9_.-]{0,127})\/?$/
export const JOIN_PATH = /^\/j\/([A-Za-z0-9_-]{1,64})\/?$/

/** The session a token stands for in `classroom`, or the refusal reason. */
export function sessionFromToken(classroom: string, token: string): Session | { error: string; reason: string } {
  const claims = decodeClaims(token)
  if (!claims) return { error: 'The access token in this link is malformed.', reason: 'refused' }
  const role = String(claims.role)
  if (!ROLES.has(role) || typeof claims.sub !== 'string') {
    return { error: 'The access token in this link is malformed.', reason: 'refused' }
  }
  const cls = String(claims.cls ?? '')
  if (role !== 'admin' && cls !== classroom) {
    return { error: `This link's token is for classroom “${cls}”, not “${classroom}”.`, reason: 'wrong-classroom' }
  }
  return {
    classroom,
    token,
    userId: claims.sub,
    name: typeof claims.name === 'string' && claims.name ? claims.name : claims.sub,
    role: role as Role,
    exp: Number(claims.exp) || 0,
  }
}

/**
 * Reads the session from `/c/{classroom}?token=…` (a link made with `inkroom token`) or
 * from the token remembered for the classroom. A token in the URL is remembered.
 */
export function sessionFromLocation(loc: Location, storage: Storage): Session | { error: string; reason: string } {
  const m = CLASSROOM_PATH.exec(loc.pathname)
  if (!m) return { error: 'Open a classroom link of the form /c/{classroom}.', reason: 'not-found' }
  const classroom = m[1]
  const params = new URLSearchParams(loc.search)
  let token = params.get('token')
  if (token) rememberToken(classroom, token, storage)
  else token = storedToken(classroom, storage)
  if (!token) return { error: 'This classroom link has no access token.', reason: 'signin' }
  return sessionFromToken(classroom, token)
}

export function canDraw(role: Role): boolean {
  return role !== 'observer'
}

const RANK: Record<string, number> = { observer: 0, student: 1, tutor: 2 }

/** The role in force: an administrator's override in the classroom document lowers the
 * token's role (never raises it, and never touches an admin's), as the server judges. */
export function lowered(role: Role, override: unknown): Role {
  if (typeof override !== 'string' || !(role in RANK) || !(override in RANK) || override === 'tutor') return role
  return RANK[override] < RANK[role] ? (override as Role) : role
}

export function isTeacher(role: Role): boolean {
  return role === 'tutor' || role === 'admin'
}

const LAST_KEY = 'inkroom.last'

/** Remembers the classroom this device last opened, for the installed app's start. */
export function rememberLast(classroom: string, role: Role, storage: Storage = localStorage): void {
  try {
    storage.setItem(LAST_KEY, JSON.stringify({ classroom, role }))
  } catch {
    /* no storage: the app starts at home */
  }
}

export function lastClassroom(storage: Storage = localStorage): { classroom: string; role: Role } | null {
  try {
    const v = JSON.parse(storage.getItem(LAST_KEY) ?? 'null') as { classroom?: unknown; role?: unknown } | null
    if (v && typeof v.classroom === 'string' && typeof v.role === 'string' && ROLES.has(v.role)) {
      return { classroom: v.classroom, role: v.role as Role }
    }
  } catch {
    /* unreadable: none */
  }
  return null
}
