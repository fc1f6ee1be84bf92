// A stock Yjs client against orbitstore's y-websocket endpoint.
// usage: node client.mjs <ws://host:port/ydoc> <room> <initial text> <final text>
// Client 1 syncs, checks it received <initial text>, appends " and from js" and sets its
// awareness; client 2 joins and must see both the text and client 1's awareness; both
// then wait for <final text> (the Python side appends to it). Prints JSON lines.
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'

const [serverUrl, room, initial, final] = process.argv.slice(2)
const say = (event, fields = {}) => console.log(JSON.stringify({ event, ...fields }))
let debug = () => ({})
const timer = setTimeout(() => { say('timeout', debug()); process.exit(1) }, 30000)

function until (check) {
  return new Promise(resolve => {
    const tick = () => (check() ? resolve() : setTimeout(tick, 10))
    tick()
  })
}

function connect () {
  const doc = new Y.Doc()
  const provider = new WebsocketProvider(serverUrl, room, doc, { WebSocketPolyfill: WebSocket })
  return { doc, provider, text: doc.getText('text') }
}

const one = connect()
await until(() => one.provider.synced)
await until(() => one.text.toString() === initial)
say('synced', { client: 1, text: one.text.toString() })
one.text.insert(one.text.length, ' and from js')
one.provider.awareness.setLocalStateField('user', { name: 'js-1' })

const two = connect()
debug = () => ({ one: one.text.toString(), two: two.text.toString(), twoSynced: two.provider.synced, states: [...two.provider.awareness.getStates().entries()], oneStates: [...one.provider.awareness.getStates().entries()] })
await until(() => two.provider.synced)
const seesOne = () => [...two.provider.awareness.getStates().values()]
  .some(state => state.user && state.user.name === 'js-1')
await until(() => two.text.toString().startsWith(initial + ' and from js') && seesOne())
say('awareness', { client: 2, text: two.text.toString() })

await until(() => one.text.toString() === final && two.text.toString() === final)
say('done', { one: one.text.toString(), two: two.text.toString() })
clearTimeout(timer)
one.provider.destroy()
two.provider.destroy()
process.exit(0)
