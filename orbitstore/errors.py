"""The one exception hierarchy of orbitstore.

Every error carries a stable ``code`` (a short string that never changes between
releases, fit for logs, HTTP bodies and ``match`` statements) and sits under one of
four branches that say who is to blame::

    OrbitstoreError                     base of everything we raise
    ├── UsageError                      the caller misused the API (fix your code)
    │   ├── InvalidValueError           a value DAG-CBOR cannot hold, or of the wrong type
    │   ├── PayloadTooLargeError        a write over the configured size limits
    │   ├── InvalidAddressError         not an /orbitstore/<cid> address
    │   ├── WrongDatabaseTypeError      opened an address as another type than its manifest
    │   ├── WriteNotAllowedError        the local identity may not write to this database
    │   ├── ClosedError                 used after close()
    │   ├── NotFoundError               no database, key or entry by that name
│   ├── UnauthorizedError           an API request without the right token
    │   ├── NodeLockedError             another process owns the node directory
    │   ├── NotAMemberError             no key to read or write this encrypted database
    │   └── QueryError                  bad or refused SQL (has line/column)
    │       └── QueryLimitError         over a QueryLimits bound (rows, time, LIMIT)
    ├── InvalidDataError                bytes from elsewhere are wrong (a peer, a file)
    │   ├── DecodeError                 not canonical DAG-CBOR
    │   ├── InvalidCidError             not a well-formed CID (or an unsupported form)
    │   ├── HashMismatchError           block bytes do not hash to the CID they came with
    │   ├── InvalidEntryError           structurally wrong entry
    │   │   ├── UnsupportedVersionError
    │   │   ├── EntryTooLargeError      over a size or count limit
    │   │   ├── InvalidParentsError     unsorted/duplicate/self-referencing next or refs
    │   │   ├── ClockError              clock is not max(parent clocks) + 1
    │   │   └── WrongDatabaseError      entry belongs to another database
    │   ├── InvalidWriterError          writer is not an Ed25519 did:key
    │   ├── BadSignatureError           signature does not verify under the writer's key
    │   ├── UnauthorizedWriterError     writer not allowed by the access controller
    │   │   └── AccessDeniedError       capabilities: right not held in the causal past
    │   ├── InvalidAclOpError           malformed or misplaced access operation
    │   ├── InvalidDelegationError      a device delegation or unlinking is malformed or unsigned
    │   ├── ProtocolError               a peer broke the sync protocol
    │   │   └── ServeLimitError         a peer asked for more than we serve
    │   ├── DecryptionError             a sealed payload or key does not open (wrong key, tampered)
    │   ├── InvalidEncryptedPayloadError  not a well-formed payload of an encrypted database
    │   └── InvalidAttachmentError      not a UnixFS file we can read (bad dag-pb, sizes, type)
    │       └── AttachmentLimitError    over an AttachmentLimits bound (block, links, depth)
    │           └── AttachmentTooLargeError  the file is larger than max_size
    ├── StorageError                    our own disk failed us
    │   ├── StorageCorruptedError       stored bytes no longer verify
    │   └── KeystoreError               key file missing, unreadable or too permissive
    └── NetworkError                    transport-level failure talking to a peer
        ├── PeerUnavailableError        dialling failed or timed out
        ├── StreamResetError            the peer (or its death) reset a stream
        ├── SyncTimeoutError            wait_synced ran out of time before we caught up
        └── AttachmentUnavailableError  no peer gave an attachment's blocks in time

Foreign exceptions (sqlite3, libp2p, sqlglot, cbrrr) are translated where they are
caught, with ``raise ... from exc`` so the cause is kept.
"""

from __future__ import annotations


class OrbitstoreError(Exception):
    """Base class of every error orbitstore raises."""

    code: str = "error"

    def __init__(self, message: str = "", **details: object) -> None:
        super().__init__(message or self.__class__.__doc__ or self.code)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, object]:
        """A JSON-friendly description (for the CLI and the HTTP API)."""
        return {
            "code": self.code,
            "message": str(self),
            **{k: str(v) for k, v in self.details.items()},
        }


# --- the caller's fault ---------------------------------------------------------


class UsageError(OrbitstoreError):
    """The API was used in a way it does not allow."""

    code = "usage"


class InvalidValueError(UsageError):
    """A value that DAG-CBOR cannot encode, or of a type the operation does not take."""

    code = "invalid_value"


class PayloadTooLargeError(UsageError):
    """A write exceeds the configured size limits."""

    code = "payload_too_large"


class InvalidAddressError(UsageError):
    """A string that is not an ``/orbitstore/<cid>`` database address."""

    code = "invalid_address"


class WrongDatabaseTypeError(UsageError):
    """The database was opened as a type other than the one its manifest declares."""

    code = "wrong_database_type"


class WriteNotAllowedError(UsageError):
    """The local identity is not allowed to write to this database."""

    code = "write_not_allowed"


class ClosedError(UsageError):
    """The object was used after it was closed."""

    code = "closed"


class NotFoundError(UsageError):
    """No such database, key or entry."""

    code = "not_found"


class UnauthorizedError(UsageError):
    """An HTTP API request without a valid ``Authorization: Bearer <token>``."""

    code = "unauthorized"


class NodeLockedError(UsageError):
    """Another process holds the node directory's lock. ``pid`` names it (when known):
    stop that process, or talk to it through its API instead of opening the directory."""

    code = "node_locked"


class NotAMemberError(UsageError):
    """This node holds no key for the encrypted database (or the epoch) it was asked to
    read or write: it is not a member, or not yet (its key was not distributed)."""

    code = "not_a_member"


class QueryError(UsageError):
    """A query that is malformed or not allowed. ``line`` and ``column`` say where."""

    code = "query"

    def __init__(
        self,
        message: str = "",
        *,
        line: int | None = None,
        column: int | None = None,
        positioned: bool = False,
    ) -> None:
        # ``positioned``: the message already says where (syntax errors do, in words).
        where = f" (line {line}, column {column})" if line is not None and not positioned else ""
        super().__init__(message + where, line=line, column=column)
        self.line = line
        self.column = column


class QueryLimitError(QueryError):
    """A query over a configured bound: too many rows, too long, or a LIMIT above the cap."""

    code = "query_limit"


# --- bad data from elsewhere ------------------------------------------------------


class InvalidDataError(OrbitstoreError):
    """Bytes received from a peer or read from a file are not acceptable."""

    code = "invalid_data"


class DecodeError(InvalidDataError):
    """The bytes are not canonical DAG-CBOR."""

    code = "decode"


class InvalidCidError(InvalidDataError):
    """Not a well-formed CID, or one of a form the operation does not take."""

    code = "invalid_cid"


class HashMismatchError(InvalidDataError):
    """A block's bytes do not hash to the CID it was given under."""

    code = "hash_mismatch"


class InvalidEntryError(InvalidDataError):
    """A block that is not a well-formed v1 entry."""

    code = "invalid_entry"


class UnsupportedVersionError(InvalidEntryError):
    """An entry of a format version this implementation does not know."""

    code = "unsupported_version"


class EntryTooLargeError(InvalidEntryError):
    """An entry over a size or count limit."""

    code = "entry_too_large"


class InvalidParentsError(InvalidEntryError):
    """``next`` or ``refs`` are unsorted, duplicated, or reference the entry itself."""

    code = "invalid_parents"


class ClockError(InvalidEntryError):
    """The entry's clock is not one more than the largest clock of its parents."""

    code = "clock"


class WrongDatabaseError(InvalidEntryError):
    """The entry names another database than the log it was offered to."""

    code = "wrong_database"


class InvalidWriterError(InvalidDataError):
    """The writer field is not an Ed25519 ``did:key``."""

    code = "invalid_writer"


class BadSignatureError(InvalidDataError):
    """The signature does not verify under the key the writer field names."""

    code = "bad_signature"


class UnauthorizedWriterError(InvalidDataError):
    """The writer is not allowed to write by the database's access controller."""

    code = "unauthorized_writer"


class InvalidAclOpError(InvalidDataError):
    """A payload claims to be an access operation (it has the ``acl`` key) but is not
    exactly the ACL op shape, or it is not allowed in this database."""

    code = "invalid_acl_op"


class InvalidDelegationError(InvalidDataError):
    """A device delegation or unlinking statement is not exactly its shape, or is not
    signed by the user key it names (see docs/identity.md)."""

    code = "invalid_delegation"


class AccessDeniedError(UnauthorizedWriterError):
    """Under capabilities access: the writer did not hold the right the entry needs in
    the entry's own causal past. ``details``: ``writer``, ``right``, ``scope``, ``reason``.
    Private databases: the peer proved no reader identity in the session (``reason``,
    ``identity``), or refused ours (``peer_code``); see ``orbitstore.sync.auth``."""

    code = "access_denied"


class ProtocolError(InvalidDataError):
    """A peer broke the sync protocol (bad frame, over a limit, out of order)."""

    code = "protocol"


class ServeLimitError(ProtocolError):
    """A peer asked for more than we serve (wants, entries or bytes, per session or per
    unit of time): its session is cut off."""

    code = "serve_limit"


class DecryptionError(InvalidDataError):
    """A sealed payload or a sealed epoch key does not open: the key is wrong, or the
    ciphertext, its nonce or the entry fields bound into its AAD were changed.
    ``details``: ``kind`` (``payload`` or ``key``)."""

    code = "decryption_failed"


class InvalidEncryptedPayloadError(InvalidDataError):
    """A payload of an encrypted database is not one of its shapes (sealed data, key
    announcement, key epoch, access op), or a key epoch was written by a non-owner."""

    code = "invalid_encrypted_payload"


class InvalidAttachmentError(InvalidDataError):
    """An attachment's blocks are not a UnixFS file we can read: a malformed dag-pb node
    or UnixFS message, sizes that disagree, a directory or symlink, an unsupported CID."""

    code = "invalid_attachment"


class AttachmentLimitError(InvalidAttachmentError):
    """An attachment over a bound of ``AttachmentLimits``: a block too large, a node
    with too many links, a DAG too deep."""

    code = "attachment_limit"


class AttachmentTooLargeError(AttachmentLimitError):
    """An attachment whose size (the root's UnixFS ``filesize``) is over ``max_size``."""

    code = "attachment_too_large"


# --- our own storage ----------------------------------------------------------------


class StorageError(OrbitstoreError):
    """The storage backend failed."""

    code = "storage"


class StorageCorruptedError(StorageError):
    """Stored data no longer verifies."""

    code = "storage_corrupted"


class KeystoreError(StorageError):
    """The keystore file is missing, unreadable, malformed or readable by others."""

    code = "keystore"


# --- the network ----------------------------------------------------------------------


class NetworkError(OrbitstoreError):
    """A transport-level failure while talking to a peer."""

    code = "network"


class PeerUnavailableError(NetworkError):
    """The peer could not be reached."""

    code = "peer_unavailable"


class SyncTimeoutError(NetworkError):
    """``wait_synced`` timed out before we held everything the peers announced."""

    code = "sync_timeout"


class AttachmentUnavailableError(NetworkError):
    """Blocks of an attachment are neither here nor given by any peer in time.
    ``details``: ``cid`` (the attachment), ``missing`` (a block nobody gave)."""

    code = "attachment_unavailable"


class StreamResetError(NetworkError):
    """The stream was reset: the peer aborted it, or its connection died.

    A peer that dies abruptly may instead look like a clean end of stream on the reading
    side; protocols must frame their messages and treat an early EOF as a failure too."""

    code = "stream_reset"


def error_classes() -> dict[str, type[OrbitstoreError]]:
    """Every error class by its ``code`` (the first found for a code), for rebuilding an
    error that crossed a process boundary as a code and a message (the CLI's remote
    errors, the verification worker's answers)."""
    found: dict[str, type[OrbitstoreError]] = {}
    todo: list[type[OrbitstoreError]] = [OrbitstoreError]
    while todo:
        cls = todo.pop()
        found.setdefault(cls.code, cls)
        todo.extend(cls.__subclasses__())
    return found
