// The CIDs Helia's importer (ipfs-unixfs-importer, what @helia/unixfs addBytes runs)
// gives files, with kubo's classic `ipfs add --cid-version=1 --raw-leaves
// --chunker=size-<chunk>` layout: fixed-size chunks, raw leaves, a balanced DAG.
// usage: node cids.mjs <chunk size> <max links> <file>...   prints {"<file>": "<cid>"}
import { readFile } from 'node:fs/promises'
import { MemoryBlockstore } from 'blockstore-core'
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'

const [chunkSize, maxLinks, ...files] = process.argv.slice(2)
const out = {}
for (const file of files) {
  const content = await readFile(file)
  const blockstore = new MemoryBlockstore()
  const options = {
    cidVersion: 1,
    rawLeaves: true,
    chunker: fixedSize({ chunkSize: Number(chunkSize) }),
    layout: balanced({ maxChildrenPerNode: Number(maxLinks) })
  }
  let cid
  for await (const entry of importer([{ content }], blockstore, options)) cid = entry.cid
  out[file] = cid.toString()
}
console.log(JSON.stringify(out))
