#!/usr/bin/env python3
"""A correct lin-kv node for runner tests: every node forwards client ops to n0, which owns the one
dict, and relays n0's reply back to the client. Stdlib only, single-threaded.

Fault flags (node arguments after `--`), each naming the node that misbehaves:
  --garbage-on NODE      after init, NODE prints a line that is not JSON on stdout
  --no-init-on NODE      NODE never answers init
  --die-on NODE          NODE exits with status 3 after --die-after-s seconds (default 1)
Persistence (for the kill nemesis): without --data-dir the dict lives in memory only, so a
restarted n0 forgets everything -- which a CAS-register checker cannot see (reads of a missing key
fail, cas on it fails, and failed ops are dropped). With --data-dir DIR, n0 loads DIR/n0.json at
init and, before applying each write or cas, saves the dict as it was (the pre-image), then
applies and acknowledges: the latest acknowledged change is never on disk, so a kill brings the
key back one change behind, and the next read or cas after the restart sees a stale value.
"""
import json
import os
import sys
import time

args = sys.argv[1:]


def flag(name, default=None):
    return args[args.index(name) + 1] if name in args else default


garbage_on = flag("--garbage-on")
no_init_on = flag("--no-init-on")
die_on = flag("--die-on")
die_after_s = float(flag("--die-after-s", "1"))
die_at = None
data_dir = flag("--data-dir")

node_id = None
kv = {}
pending = {}   # our msg_id -> (client, client msg_id)
next_id = 0


def send(dest, body):
    sys.stdout.write(json.dumps({"src": node_id, "dest": dest, "body": body}) + "\n")


def data_path():
    return os.path.join(data_dir, f"{node_id}.json")


def load():
    try:
        with open(data_path()) as f:
            return {k: v for k, v in json.load(f)}
    except FileNotFoundError:
        return {}


def save():
    os.makedirs(data_dir, exist_ok=True)
    tmp = data_path() + ".tmp"
    with open(tmp, "w") as f:
        json.dump(list(kv.items()), f)
    os.replace(tmp, data_path())


def changes(body):
    """Would this op change the value it touches?"""
    t, k = body["type"], body["key"]
    if t == "write":
        return kv.get(k) != body["value"]
    return t == "cas" and k in kv and kv[k] == body["from"] and body["from"] != body["to"]


def apply(body):
    t, k = body["type"], body["key"]
    if t == "read":
        if k not in kv:
            return {"type": "error", "code": 20, "text": "no such key"}
        return {"type": "read_ok", "value": kv[k]}
    if t == "write":
        kv[k] = body["value"]
        return {"type": "write_ok"}
    if k not in kv:
        return {"type": "error", "code": 20, "text": "no such key"}
    if kv[k] != body["from"]:
        return {"type": "error", "code": 22, "text": f"expected {body['from']} but had {kv[k]}"}
    kv[k] = body["to"]
    return {"type": "cas_ok"}


for line in sys.stdin:
    msg = json.loads(line)
    body = msg["body"]
    t = body["type"]
    if die_at is not None and time.monotonic() >= die_at:
        sys.stderr.write(f"{node_id}: dying on purpose\n")
        sys.exit(3)
    if t == "init":
        node_id = body["node_id"]
        print(f"{node_id}: init", file=sys.stderr, flush=True)
        if data_dir:
            kv = load()
            print(f"{node_id}: loaded {len(kv)} keys from {data_path()}", file=sys.stderr,
                  flush=True)
        if node_id == no_init_on:
            continue
        send(msg["src"], {"type": "init_ok", "in_reply_to": body["msg_id"]})
        if node_id == garbage_on:
            sys.stdout.write("this is not JSON\n")
        if node_id == die_on:
            die_at = time.monotonic() + die_after_s
    elif t in ("read", "write", "cas"):
        if node_id == "n0":
            if data_dir and changes(body):
                save()   # the bug: persists the state *before* this change, then acks it
            reply = apply(body)
            reply["in_reply_to"] = body["msg_id"]
            send(msg["src"], reply)
        else:
            next_id += 1
            pending[next_id] = (msg["src"], body["msg_id"])
            fwd = dict(body, msg_id=next_id)
            send("n0", fwd)
    elif "in_reply_to" in body and body["in_reply_to"] in pending:
        client, client_msg_id = pending.pop(body["in_reply_to"])
        reply = dict(body, in_reply_to=client_msg_id)
        reply.pop("msg_id", None)
        send(client, reply)
    sys.stdout.flush()
