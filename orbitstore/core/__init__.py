"""Pure core: codec, CID, identity, entry, order, oplog, access, manifest. No I/O."""
