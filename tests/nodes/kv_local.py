#!/usr/bin/env python3
"""A WRONG lin-kv node for runner tests: each node answers from its own dict, so with several nodes
reads see stale values and the checker must report the key as not linearizable."""
import json
import sys

node_id = None
kv = {}

for line in sys.stdin:
    msg = json.loads(line)
    body = msg["body"]
    t = body["type"]
    reply = None
    if t == "init":
        node_id = body["node_id"]
        reply = {"type": "init_ok"}
    elif t == "read":
        k = body["key"]
        reply = ({"type": "read_ok", "value": kv[k]} if k in kv
                 else {"type": "error", "code": 20, "text": "no such key"})
    elif t == "write":
        kv[body["key"]] = body["value"]
        reply = {"type": "write_ok"}
    elif t == "cas":
        k = body["key"]
        if k not in kv:
            reply = {"type": "error", "code": 20, "text": "no such key"}
        elif kv[k] != body["from"]:
            reply = {"type": "error", "code": 22, "text": "precondition failed"}
        else:
            kv[k] = body["to"]
            reply = {"type": "cas_ok"}
    if reply is not None:
        reply["in_reply_to"] = body["msg_id"]
        sys.stdout.write(json.dumps({"src": node_id, "dest": msg["src"], "body": reply}) + "\n")
        sys.stdout.flush()
