import { describe, expect, it } from 'vitest'
import { decodeClaims, lastClassroom, lowered, rememberLast, sessionFromToken } from '../src/session'

const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url')
const jwt = (claims: object) => `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}.sig`

describe('session from a token', () => {
  it('reads the claims (unverified: the server verifies)', () => {
    const t = jwt({ sub: 's-1', name: 'Ana', cls: 'alg1', role: 'student', exp: 99, iat: 1 })
    expect(decodeClaims(t)?.name).toBe('Ana')
    expect(sessionFromToken('alg1', t)).toMatchObject({ userId: 's-1', name: 'Ana', role: 'student', exp: 99 })
  })

  it('refuses a token for another classroom, or a malformed one, with a reason', () => {
    const other = jwt({ sub: 's-1', cls: 'other', role: 'student', exp: 1 })
    expect(sessionFromToken('alg1', other)).toMatchObject({ reason: 'wrong-classroom' })
    expect(sessionFromToken('alg1', 'nonsense')).toMatchObject({ reason: 'refused' })
    expect(sessionFromToken('alg1', jwt({ sub: 's', cls: 'alg1', role: 'king', exp: 1 }))).toMatchObject({ reason: 'refused' })
  })

  it('lets an admin token open any classroom, and names fall back to the user id', () => {
    const admin = jwt({ sub: 'root', cls: 'x', role: 'admin', exp: 1 })
    expect(sessionFromToken('alg1', admin)).toMatchObject({ role: 'admin', name: 'root' })
  })
})

class MemoryStorage {
  private items = new Map<string, string>()
  getItem(k: string): string | null {
    return this.items.get(k) ?? null
  }
  setItem(k: string, v: string): void {
    this.items.set(k, v)
  }
}

describe('the last classroom (where the installed app starts)', () => {
  it('remembers the classroom and the role it was opened with', () => {
    const storage = new MemoryStorage() as unknown as Storage
    expect(lastClassroom(storage)).toBeNull()
    rememberLast('alg1', 'student', storage)
    expect(lastClassroom(storage)).toEqual({ classroom: 'alg1', role: 'student' })
  })

  it('ignores what it did not write', () => {
    const storage = new MemoryStorage() as unknown as Storage
    storage.setItem('inkroom.last', '{"classroom":"x","role":"king"}')
    expect(lastClassroom(storage)).toBeNull()
    storage.setItem('inkroom.last', 'not json')
    expect(lastClassroom(storage)).toBeNull()
  })
})

describe('a role override', () => {
  it('lowers the token role, never raises it, and leaves admins alone', () => {
    expect(lowered('student', 'observer')).toBe('observer')
    expect(lowered('tutor', 'student')).toBe('student')
    expect(lowered('student', 'tutor')).toBe('student')
    expect(lowered('observer', 'student')).toBe('observer')
    expect(lowered('admin', 'observer')).toBe('admin')
    expect(lowered('student', undefined)).toBe('student')
    expect(lowered('student', 'king')).toBe('student')
  })
})
