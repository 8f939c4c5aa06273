#!/usr/bin/env python3
"""A test-only node that speaks the membership protocol (README, "Membership changes") without
being Raft, to test the runner's member nemesis. Stdlib only, single-threaded.

Client reads, writes and cas go to the `lin-kv` service and back (as tests/nodes/kv_proxy.py), and
the configuration is one more key of that service ("members"; absent: the `members` of init, or
every node), so kills and wipes lose nothing and the cluster stays linearizable. The leader is
the first member of the configuration as this node last saw it: `members` and `reconfigure` are
forwarded there with the client as `src` (as Rast forwards), so the reply comes from that node.

Flags (node arguments after `--`):
  --data-dir DIR      at init, print on stderr whether DIR/<node> existed ("data found" or
                      "fresh"), then create it with a file in it: the runner's wipes show
  --busy-every N      refuse every Nth reconfigure this node serves with 11, doing nothing
  --silent-every N    carry out every Nth reconfigure this node serves but never answer it
Every init is logged on stderr as `<node>: init members=<list or None> <data found|fresh>`.
"""
import json
import os
import sys

args = sys.argv[1:]


def flag(name, default=None):
    return args[args.index(name) + 1] if name in args else default


data_dir = flag("--data-dir")
busy_every = int(flag("--busy-every", "0"))
silent_every = int(flag("--silent-every", "0"))

node_id = None
node_ids = []
view = []          # the configuration as this node last saw it
pending = {}       # our msg_id to the service -> what to do with its reply
next_id = 0
served = 0         # reconfigures this node served


def send(src, dest, body):
    sys.stdout.write(json.dumps({"src": src, "dest": dest, "body": body}) + "\n")


def call(body, then):
    global next_id
    next_id += 1
    pending[next_id] = then
    send(node_id, "lin-kv", dict(body, msg_id=next_id))


def error(client, msg_id, code, text):
    send(node_id, client, {"type": "error", "in_reply_to": msg_id, "code": code, "text": text})


def init(body):
    global node_id, node_ids, view
    node_id, node_ids = body["node_id"], body["node_ids"]
    view = list(body.get("members") or node_ids)
    state = ""
    if data_dir:
        mine = os.path.join(data_dir, node_id)
        state = " data found" if os.path.isdir(mine) else " fresh"
        os.makedirs(mine, exist_ok=True)
        with open(os.path.join(mine, "incarnations"), "a") as f:
            f.write("x")
    print(f"{node_id}: init members={json.dumps(body.get('members'))}{state}", file=sys.stderr,
          flush=True)


def serve_members(client, msg_id):
    def got(reply):
        if reply.get("type") == "read_ok":
            view[:] = reply["value"]
        send(node_id, client, {"type": "members_ok", "in_reply_to": msg_id, "members": list(view),
                               "learners": []})
    call({"type": "read", "key": "members"}, got)


def serve_reconfigure(client, msg_id, target):
    global served
    if (type(target) is not list or not target or not all(type(n) is str for n in target)
            or not set(target) <= set(node_ids)):
        error(client, msg_id, 12, f"bad member list {target!r}")
        return
    served += 1
    if busy_every and served % busy_every == 0:
        error(client, msg_id, 11, "another change in progress (planted)")
        return
    silent = silent_every and served % silent_every == 0

    def done(reply):
        if reply.get("type") != "write_ok":
            error(client, msg_id, 13, f"service said {reply}")
            return
        view[:] = target
        print(f"{node_id}: configuration {target}{' (no reply)' if silent else ''}",
              file=sys.stderr, flush=True)
        if not silent:
            send(node_id, client, {"type": "reconfigure_ok", "in_reply_to": msg_id,
                                   "members": list(target)})
    call({"type": "write", "key": "members", "value": target}, done)


for line in sys.stdin:
    msg = json.loads(line)
    body = msg["body"]
    t = body.get("type")
    if t == "init":
        init(body)
        send(node_id, msg["src"], {"type": "init_ok", "in_reply_to": body["msg_id"]})
    elif t in ("read", "write", "cas"):
        def relay(reply, client=msg["src"], client_msg_id=body["msg_id"]):
            reply = dict(reply, in_reply_to=client_msg_id)
            reply.pop("msg_id", None)
            send(node_id, client, reply)
        call(body, relay)
    elif t in ("members", "reconfigure"):
        leader = view[0]
        if leader != node_id and not body.get("fwd"):
            send(msg["src"], leader, dict(body, fwd=1))    # the leader answers the client itself
        elif t == "members":
            serve_members(msg["src"], body["msg_id"])
        else:
            serve_reconfigure(msg["src"], body["msg_id"], body.get("members"))
    elif body.get("in_reply_to") in pending:
        pending.pop(body["in_reply_to"])(body)
    else:
        print(f"{node_id}: unexpected {line.strip()}", file=sys.stderr, flush=True)
    sys.stdout.flush()
