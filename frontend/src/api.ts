// The server's JSON API, same origin. Errors carry the server's `reason` so the screens
// can say what happened in plain words; a network failure has reason 'offline'.

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
  ) {
    super(message)
  }
}

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  let res: Response
  try {
    res = await fetch(path, {
      method,
      credentials: 'same-origin',
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    })
  } catch {
    throw new ApiError(0, 'offline', 'No connection to the server. Check your internet and try again.')
  }
  let data: Record<string, unknown> = {}
  try {
    data = (await res.json()) as Record<string, unknown>
  } catch {
    /* not JSON: an error page from a proxy */
  }
  if (!res.ok) {
    const reason = typeof data.reason === 'string' ? data.reason : res.status >= 500 ? 'server' : 'error'
    const message = typeof data.error === 'string' ? data.error : `The server answered ${res.status}.`
    throw new ApiError(res.status, reason, message)
  }
  return data as T
}

export interface Account {
  id: number
  email: string
  name: string
  role: 'tutor' | 'admin'
}

export interface Invite {
  code: string
  classroom: string
  role: 'student' | 'observer'
  url: string
  expires: string | null
  max_uses: number | null
  uses: number
  revoked: string | null
  status: string
}

export interface ClassroomInfo {
  id: string
  title: string
  url: string
  created: string
  archived: string | null
  invites: Invite[]
  online: number
}

export interface PageToken {
  token: string
  classroom: { id: string; title: string }
  role: 'tutor' | 'student' | 'observer' | 'admin'
  user: string
  name: string
  expires: number
  ttl: number
}
