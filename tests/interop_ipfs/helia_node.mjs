// A Helia node (JS IPFS: libp2p over TCP + Noise + Yamux, Bitswap, UnixFS) for the
// attachment interop tests. It talks to nothing but the peers it is told about: no
// HTTP gateways, no delegated routing, no DHT.
//
//   node helia_node.mjs cat <multiaddr> <cid>
//       dial <multiaddr> and read <cid> as a UnixFS file over Bitswap; prints
//       {"event":"cat","size":N,"sha256":"<hex>"}
//   node helia_node.mjs serve <size>
//       add <size> pattern bytes (byte i = (7 i + 3) mod 251) with kubo's classic layout
//       and serve them; prints {"event":"ready","addresses":[...],"cid":"..."}, then
//       runs until its standard input closes.
import './polyfill.mjs'
import { createHash } from 'node:crypto'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { withBitswap } from '@helia/bitswap'
import { withLibp2pLight } from '@helia/libp2p'
import { unixfs } from '@helia/unixfs'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createHeliaLight } from 'helia'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'
import { CID } from 'multiformats/cid'

const say = (event, fields = {}) => console.log(JSON.stringify({ event, ...fields }))
const timer = setTimeout(() => { say('timeout'); process.exit(2) }, 90000)

const helia = withBitswap(withLibp2pLight(createHeliaLight({}), {
  addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  services: { identify: identify() }
}))
await helia.start()
const fs = unixfs(helia)
const [mode, ...args] = process.argv.slice(2)

if (mode === 'cat') {
  const [address, cid] = args
  await helia.libp2p.dial(multiaddr(address))
  const hash = createHash('sha256')
  let size = 0
  for await (const chunk of fs.cat(CID.parse(cid), { signal: AbortSignal.timeout(60000) })) {
    hash.update(chunk)
    size += chunk.length
  }
  say('cat', { size, sha256: hash.digest('hex') })
} else if (mode === 'serve') {
  const size = Number(args[0])
  const bytes = new Uint8Array(size)
  for (let i = 0; i < size; i++) bytes[i] = (7 * i + 3) % 251
  const cid = await fs.addBytes(bytes, {
    cidVersion: 1,
    rawLeaves: true,
    chunker: fixedSize({ chunkSize: 262144 }),
    layout: balanced({ maxChildrenPerNode: 174 })
  })
  say('ready', {
    addresses: helia.libp2p.getMultiaddrs().map(a => a.toString()),
    cid: cid.toString()
  })
  process.stdin.resume()
  await new Promise(resolve => process.stdin.on('end', resolve))
} else {
  say('usage')
  process.exitCode = 1
}
clearTimeout(timer)
await helia.stop()
