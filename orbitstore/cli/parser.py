"""The argument parser of the ``orbitstore`` command line.

Every command sets ``handler``: ``[module.]name`` of its ``cmd_<name>`` coroutine in
``orbitstore.cli.<module>`` (default :mod:`orbitstore.cli.commands`); only that module is
imported to run it. Parsing never exits the process: a mistake raises
:class:`CommandLineError` (``main`` prints it like any other user error).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import NoReturn

from orbitstore.cli import attachments, devices, members, run, serve

DEFAULT_HOME_ENV = "ORBITSTORE_HOME"
# Kept in step with orbitstore.node.types (a test checks it) so that `--help` does not
# need to import the node layer.
DATABASE_TYPES = ("counter", "documents", "feed", "keyvalue", "log", "ydoc")

_NAME = "local name or /orbitstore/<cid> address"


class CommandLineError(Exception):
    """The command line does not parse; ``usage`` is the usage line of the (sub)command."""

    def __init__(self, message: str, usage: str) -> None:
        super().__init__(message)
        self.usage = usage


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise CommandLineError(message, self.format_usage())


def _count(text: str) -> int:
    """A non-negative integer (limits)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="orbitstore",
        description="orbitstore: a decentralized database of signed, replicated logs.",
    )
    parser.add_argument(
        "--home",
        type=Path,
        default=None,
        help=f"node directory (default: ${DEFAULT_HOME_ENV} or ~/.local/share/orbitstore)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON lines for scripts")
    parser.add_argument(
        "--version", action="version", version=f"orbitstore {_version()}", help="print the version"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = sub.add_parser("demo", help="create a log, write, close, reopen and read back")
    demo.add_argument("--count", type=int, default=5, help="entries to append (default 5)")
    demo.set_defaults(handler="demo")

    serve.add_parser(sub).set_defaults(handler="serve")
    run.add_parser(sub).set_defaults(handler="run.run")
    devices.add_parser(sub)

    sub.add_parser("id", help="print this node's writer id (did:key)").set_defaults(handler="id")
    sub.add_parser("ls", help="list the databases this node knows by name").set_defaults(
        handler="ls"
    )

    create = sub.add_parser("create", help="create a database of any type")
    create.add_argument("name", help="local name of the new database")
    create.add_argument(
        "--type",
        required=True,
        choices=DATABASE_TYPES,
        metavar="TYPE",
        help=f"the database type: {', '.join(DATABASE_TYPES)}",
    )
    create.add_argument(
        "--write",
        action="append",
        metavar="ID",
        help="a writer id (did:key) allowed to write, or '*' for anyone; repeat for"
        " several (default: only this node)",
    )
    create.add_argument(
        "--access",
        choices=("static", "capabilities"),
        default="static",
        help="static: the --write list, fixed forever (default); capabilities: this node"
        " owns it and grants rights with `orbitstore members grant` / `invite`",
    )
    create.add_argument(
        "--meta",
        metavar="JSON",
        help='type options as a JSON object, e.g. \'{"indexes": ["age"]}\' for documents',
    )
    create.add_argument(
        "--private",
        action="store_true",
        help="readable by its members only: served only to peers that prove a member"
        " (or --replica) identity, never gossiped",
    )
    create.add_argument(
        "--replica",
        action="append",
        metavar="ID",
        help="with --private: an identity (did:key) allowed to hold and serve the database"
        " without writing, e.g. a pinning node; repeat for several",
    )
    create.set_defaults(handler="create")

    info = sub.add_parser("info", help="type, address, entries, heads, writers, statistics")
    info.add_argument("name", help=_NAME)
    info.set_defaults(handler="info")

    drop = sub.add_parser(
        "drop",
        help="close a database and remove all its data from this node (peers keep theirs)",
    )
    drop.add_argument("name", help=_NAME)
    drop.add_argument(
        "--yes", action="store_true", help="really remove it (without --yes nothing is removed)"
    )
    drop.set_defaults(handler="drop")

    append = sub.add_parser("append", help="append a JSON value to a log database")
    append.add_argument("name", help=_NAME)
    append.add_argument("value", help='a JSON value, e.g. \'{"text": "hi"}\'')
    append.set_defaults(handler="append")

    show = sub.add_parser("log", help="print the entries of any database's op-log in total order")
    show.add_argument("name", help=_NAME)
    show.add_argument("--limit", type=_count, default=None, help="at most this many entries")
    show.add_argument("--reverse", action="store_true", help="newest first")
    show.set_defaults(handler="log")

    _keyvalue(sub)
    _feed(sub)
    _documents(sub)
    _counter(sub)
    _ydoc(sub)

    query = sub.add_parser("query", help="run a SQL SELECT over the node's databases")
    query.add_argument("sql", help="one SELECT; every database is a table named by its name")
    query.add_argument(
        "--param",
        action="append",
        metavar="VALUE",
        help="a JSON value bound to the next ? placeholder (repeat in order)",
    )
    query.add_argument(
        "--explain", action="store_true", help="show how each table is read, not the rows"
    )
    query.set_defaults(handler="query")

    _network(sub)
    members.add_parser(sub)

    check = sub.add_parser("check", help="verify the store: SQLite file, every entry, heads, views")
    check.add_argument(
        "--repair",
        action="store_true",
        help="rebuild views, fix heads, and remove damaged entries (and their descendants)"
        " so that the next sync fetches them again from peers",
    )
    check.set_defaults(handler="check")
    _archive(sub)
    attachments.add_parsers(sub)
    _global_options_anywhere(parser)
    return parser


def _version() -> str:
    from orbitstore import __version__

    return __version__


def _global_options_anywhere(parser: argparse.ArgumentParser) -> None:
    """Let ``--home`` and ``--json`` follow the command too (``orbitstore kv get s k --json``).

    Each subcommand gets copies whose default is SUPPRESS, so a value given before the
    command is kept unless the same option is repeated after it."""
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        for child in set(action.choices.values()):
            have = {s for a in child._actions for s in a.option_strings}
            if "--home" not in have:
                child.add_argument(
                    "--home", type=Path, default=argparse.SUPPRESS, help=argparse.SUPPRESS
                )
            if "--json" not in have:
                child.add_argument(
                    "--json", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
                )
            _global_options_anywhere(child)


_Sub = argparse._SubParsersAction  # the type add_subparsers returns


def _group(sub: _Sub[_Parser], name: str, help: str) -> _Sub[_Parser]:
    group = sub.add_parser(name, help=help, description=help)
    return group.add_subparsers(dest="action", metavar="ACTION", required=True)


def _keyvalue(sub: _Sub[_Parser]) -> None:
    kv = _group(sub, "kv", "keyvalue databases: put, get, del, ls")
    put = kv.add_parser("put", help="set a key to a JSON value (creates the database if new)")
    put.add_argument("name", help=_NAME)
    put.add_argument("key", help="the key (a non-empty string)")
    put.add_argument("value", help="a JSON value; strings need JSON quotes: '\"dark\"'")
    put.set_defaults(handler="typed.kv_put")
    get = kv.add_parser("get", help="print the value of a key as JSON")
    get.add_argument("name", help=_NAME)
    get.add_argument("key", help="the key")
    get.set_defaults(handler="typed.kv_get")
    delete = kv.add_parser("del", help="delete a key")
    delete.add_argument("name", help=_NAME)
    delete.add_argument("key", help="the key")
    delete.set_defaults(handler="typed.kv_del")
    ls = kv.add_parser("ls", help="list keys and values in key order")
    ls.add_argument("name", help=_NAME)
    ls.add_argument("--prefix", metavar="P", help="only keys that start with P")
    ls.add_argument("--limit", metavar="N", type=_count, help="at most N keys")
    ls.set_defaults(handler="typed.kv_ls")


def _feed(sub: _Sub[_Parser]) -> None:
    feed = _group(sub, "feed", "feed databases: add, ls")
    add = feed.add_parser("add", help="append a JSON value (creates the database if new)")
    add.add_argument("name", help=_NAME)
    add.add_argument("value", help='a JSON value, e.g. \'{"text": "hi"}\'')
    add.set_defaults(handler="typed.feed_add")
    ls = feed.add_parser("ls", help="list items in feed order")
    ls.add_argument("name", help=_NAME)
    ls.add_argument("--limit", metavar="N", type=_count, help="at most N items")
    ls.add_argument("--reverse", action="store_true", help="newest first")
    ls.add_argument("--gt", metavar="ID", help="only items after the item ID")
    ls.add_argument("--lt", metavar="ID", help="only items before the item ID")
    ls.set_defaults(handler="typed.feed_ls")


def _documents(sub: _Sub[_Parser]) -> None:
    docs = _group(sub, "docs", "documents databases: put, get, rm, find, index")
    put = docs.add_parser("put", help="write a whole JSON document (creates the database if new)")
    put.add_argument("name", help=_NAME)
    put.add_argument("document", help='a JSON object with an id, e.g. \'{"_id": "a", "n": 1}\'')
    put.set_defaults(handler="typed.docs_put")
    get = docs.add_parser("get", help="print a document by id")
    get.add_argument("name", help=_NAME)
    get.add_argument("id", help="the document id")
    get.set_defaults(handler="typed.docs_get")
    rm = docs.add_parser("rm", help="delete a document by id")
    rm.add_argument("name", help=_NAME)
    rm.add_argument("id", help="the document id")
    rm.set_defaults(handler="typed.docs_rm")
    find = docs.add_parser("find", help="print the documents matching a Mongo-style filter")
    find.add_argument("name", help=_NAME)
    find.add_argument("filter", help='a JSON filter, e.g. \'{"age": {"$gt": 30}}\' ({} for all)')
    find.add_argument(
        "--sort",
        action="append",
        metavar="FIELD[:desc]",
        help="sort by a (dotted) field, descending with :desc; repeat for ties",
    )
    find.add_argument("--limit", metavar="N", type=_count, help="at most N documents")
    find.add_argument("--skip", metavar="N", type=_count, default=0, help="skip the first N")
    find.set_defaults(handler="typed.docs_find")
    patch = docs.add_parser("patch", help="set top-level fields of an existing document")
    patch.add_argument("name", help=_NAME)
    patch.add_argument("id", help="the document id")
    patch.add_argument(
        "--set", required=True, metavar="JSON", help="the fields to set, e.g. '{\"age\": 31}'"
    )
    patch.set_defaults(handler="typed.docs_patch")
    index = docs.add_parser("index", help="declare an index on a (dotted) field of this node")
    index.add_argument("name", help=_NAME)
    index.add_argument("field", help='a field path, e.g. "address.city"')
    index.set_defaults(handler="typed.docs_index")


def _counter(sub: _Sub[_Parser]) -> None:
    counter = _group(sub, "counter", "counter databases: inc, get")
    inc = counter.add_parser("inc", help="add to the counter (creates it if new)")
    inc.add_argument("name", help=_NAME)
    inc.add_argument("by", nargs="?", type=int, default=1, help="amount, may be negative (1)")
    inc.set_defaults(handler="typed.counter_inc")
    get = counter.add_parser("get", help="print the counter's value")
    get.add_argument("name", help=_NAME)
    get.set_defaults(handler="typed.counter_get")


def _ydoc(sub: _Sub[_Parser]) -> None:
    ydoc = _group(sub, "ydoc", "ydoc (Yjs) databases: text, append")
    text = ydoc.add_parser("text", help="print the content of a Text of the document")
    text.add_argument("name", help=_NAME)
    text.add_argument("--field", default="text", help="the root Text's name (default: text)")
    text.set_defaults(handler="typed.ydoc_text")
    append = ydoc.add_parser(
        "append", help="append a string to a Text, as one entry (creates the document if new)"
    )
    append.add_argument("name", help=_NAME)
    append.add_argument("string", help="the text to append")
    append.add_argument("--field", default="text", help="the root Text's name (default: text)")
    append.set_defaults(handler="typed.ydoc_append")


def _network(sub: _Sub[_Parser]) -> None:
    """Commands about a running node's network: they need `orbitstore serve` running."""
    sub.add_parser(
        "peers", help="the running node's peer id, addresses and connected peers"
    ).set_defaults(handler="peers")
    connect = sub.add_parser("connect", help="make the running node dial a peer and keep it")
    connect.add_argument("address", help="a multiaddr ending in /p2p/<peer id>")
    connect.set_defaults(handler="connect")
    watch = sub.add_parser(
        "watch", help="print a database's changes as the running node commits them"
    )
    watch.add_argument("name", help=_NAME)
    watch.add_argument(
        "--since",
        metavar="SEQ",
        type=_count,
        default=None,
        help="start after this change number (0: from the start; default: only new ones)",
    )
    watch.add_argument(
        "--count", metavar="N", type=_count, default=None, help="stop after N changes"
    )
    watch.set_defaults(handler="watch")
    sync = _group(sub, "sync", "the running node's replication: status")
    status = sync.add_parser(
        "status", help="one line per open database: in sync, no peers, unreachable, behind"
    )
    status.add_argument(
        "--wait",
        action="store_true",
        help="follow the sync with a progress bar until every database is in sync"
        " (or --timeout passes: exit status 1)",
    )
    status.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long --wait waits (default 60)",
    )
    status.set_defaults(handler="sync_status")


def _archive(sub: _Sub[_Parser]) -> None:
    export = sub.add_parser(
        "export", help="write a database's blocks to a CAR file (readable by IPFS tools)"
    )
    export.add_argument("name", help="local name or /orbitstore/<cid> address")
    export.add_argument("file", help="the CAR file to write, or - for standard output")
    export.set_defaults(handler="archive.export")
    imp = sub.add_parser("import", help="verify and store the database in a CAR file")
    imp.add_argument("file", help="a CAR file made by `orbitstore export`, or - for stdin")
    imp.add_argument("--name", help="also give the database this local name")
    imp.set_defaults(handler="archive.import")
