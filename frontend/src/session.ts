// Who am I and which classroom: from `/c/{classroom}?token=TOKEN`.
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

/**
 * Reads the session from the location. A token in the URL is remembered per classroom
 * (so an offline reload of `/c/C` still opens the board) and removed from the address bar.
 */
export function sessionFromLocation(loc: Location, storage: Storage): Session | { error: string } {
  const m = /^\/c\/([A-Za-z0-9][A-Za-z0-9_.-]{0,127})\/?$/.exec(loc.pathname)
  if (!m) return { error: 'Open a classroom link of the form /c/{classroom}?token=…' }
  const classroom = m[1]
  const params = new URLSearchParams(loc.search)
  let token = params.get('token')
  if (token) {
    try {
      storage.setItem(storageKey(classroom), token)
    } catch {
      /* private mode: the URL keeps working */
    }
  } else {
    token = storage.getItem(storageKey(classroom))
  }
  if (!token) return { error: 'This classroom link has no access token.' }
  const claims = decodeClaims(token)
  if (!claims) return { error: 'The access token in this link is malformed.' }
  const role = String(claims.role)
  if (!ROLES.has(role) || typeof claims.sub !== 'string') {
    return { error: 'The access token in this link is malformed.' }
  }
  const cls = String(claims.cls ?? '')
  if (role !== 'admin' && cls !== classroom) {
    return { error: `This link's token is for classroom “${cls}”, not “${classroom}”.` }
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

export function canDraw(role: Role): boolean {
  return role !== 'observer'
}

export function isTeacher(role: Role): boolean {
  return role === 'tutor' || role === 'admin'
}
