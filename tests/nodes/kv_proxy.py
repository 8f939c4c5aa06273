#!/usr/bin/env python3
"""A lin-kv node that keeps no state of its own: every client read, write and cas is forwarded to a
Maelstrom service (`lin-kv` by default, `--service seq-kv` or `lww-kv` to use a weaker one as if it
were linearizable), and the service's reply is relayed back to the client. Stdlib only,
single-threaded, one line in, at most one line out.

With `--service lin-kv` the cluster is linearizable and must pass; with seq-kv each node sees its
own monotonic but possibly stale sequence of states, so reads through different nodes go back in
time and the checker must catch it.
"""
import json
import sys

args = sys.argv[1:]
service = args[args.index("--service") + 1] if "--service" in args else "lin-kv"

node_id = None
pending = {}   # our msg_id -> (client, client msg_id)
next_id = 0


def send(dest, body):
    sys.stdout.write(json.dumps({"src": node_id, "dest": dest, "body": body}) + "\n")
    sys.stdout.flush()


for line in sys.stdin:
    msg = json.loads(line)
    body = msg["body"]
    t = body.get("type")
    if t == "init":
        node_id = body["node_id"]
        send(msg["src"], {"type": "init_ok", "in_reply_to": body["msg_id"]})
    elif t in ("read", "write", "cas"):
        next_id += 1
        pending[next_id] = (msg["src"], body["msg_id"])
        send(service, dict(body, msg_id=next_id))
    elif body.get("in_reply_to") in pending:
        client, client_msg_id = pending.pop(body["in_reply_to"])
        reply = dict(body, in_reply_to=client_msg_id)
        send(client, reply)
    else:
        print(f"{node_id}: unexpected {line.strip()}", file=sys.stderr, flush=True)
