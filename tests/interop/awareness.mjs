// Awareness across two orbitstore nodes: a stock y-websocket client on node B and one on
// node A, each connected to its own node's y-websocket endpoint.
// usage: node awareness.mjs <ws://node-a/ydoc> <ws://node-b/ydoc> <room>
// 1. B connects and sets its state; A connects later and must see B's state (A's room
//    asks the other nodes for their clients' states when it opens).
// 2. A sets its state; B must see it (relayed over gossip as it happens).
// 3. B leaves; A must see B's state removed. Prints JSON lines, exits 0 when all happened.
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'

const [urlA, urlB, room] = process.argv.slice(2)
const say = (event, fields = {}) => console.log(JSON.stringify({ event, ...fields }))
let debug = () => ({})
const timer = setTimeout(() => { say('timeout', debug()); process.exit(1) }, 60000)

function until (check) {
  return new Promise(resolve => {
    const tick = () => (check() ? resolve() : setTimeout(tick, 10))
    tick()
  })
}

function connect (url) {
  const doc = new Y.Doc()
  const provider = new WebsocketProvider(url, room, doc, { WebSocketPolyfill: WebSocket })
  return { doc, provider }
}

const names = (client) => [...client.provider.awareness.getStates().values()]
  .map(state => state.user && state.user.name).filter(Boolean).sort()

const b = connect(urlB)
await until(() => b.provider.synced)
b.provider.awareness.setLocalStateField('user', { name: 'on-b' })
const a = connect(urlA)
debug = () => ({ a: names(a), b: names(b) })
await until(() => a.provider.synced)
await until(() => names(a).includes('on-b'))
say('a-sees-b', { a: names(a) })

a.provider.awareness.setLocalStateField('user', { name: 'on-a' })
await until(() => names(b).includes('on-a'))
say('b-sees-a', { b: names(b) })

b.provider.destroy()
await until(() => !names(a).includes('on-b'))
say('b-gone', { a: names(a) })
clearTimeout(timer)
a.provider.destroy()
process.exit(0)
