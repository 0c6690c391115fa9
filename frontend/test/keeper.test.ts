import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { TokenKeeper } from '../src/tokens'

const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url')
const jwt = (sub: string, exp = Date.now() / 1000 + 3600) => `${b64({ alg: 'HS256' })}.${b64({ sub, cls: 'c1', role: 'student', exp, iat: exp - 3600 })}.s`

function answer(status: number, body: object) {
  return vi.fn(async () => new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } }))
}

describe('TokenKeeper', () => {
  beforeEach(() => {
    vi.stubGlobal('window', globalThis)
  })
  afterEach(() => {
    vi.unstubAllGlobals()
  })

  it('hands over a renewed token for the same user', async () => {
    const fresh = jwt('s-1')
    vi.stubGlobal('fetch', answer(200, { token: fresh }))
    const got: string[] = []
    const keeper = new TokenKeeper('c1', 's-1', jwt('s-1'), (t) => got.push(t), () => undefined)
    expect(await keeper.renew()).toBe(fresh)
    expect(got).toEqual([fresh])
    keeper.stop()
  })

  it('ignores a renewal for somebody else', async () => {
    vi.stubGlobal('fetch', answer(200, { token: jwt('acct-9') }))
    const got: string[] = []
    const keeper = new TokenKeeper('c1', 's-1', jwt('s-1'), (t) => got.push(t), () => undefined, false)
    expect(await keeper.renew()).toBeNull()
    expect(got).toEqual([])
  })

  it('reports a revoked invite as a refusal', async () => {
    vi.stubGlobal('fetch', answer(403, { error: 'turned off', reason: 'revoked' }))
    const refused: string[] = []
    const keeper = new TokenKeeper('c1', 's-1', jwt('s-1'), () => undefined, (r) => refused.push(r.reason))
    expect(await keeper.renew()).toBeNull()
    expect(refused).toEqual(['revoked'])
  })

  it('retries quietly when the network is down', async () => {
    vi.stubGlobal('fetch', vi.fn(async () => Promise.reject(new TypeError('offline'))))
    const refused: string[] = []
    const keeper = new TokenKeeper('c1', 's-1', jwt('s-1'), () => undefined, (r) => refused.push(r.reason))
    expect(await keeper.renew()).toBeNull()
    expect(refused).toEqual([])
    keeper.stop()
  })
})
