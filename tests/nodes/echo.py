#!/usr/bin/env python3
"""A trivial, fast Maelstrom node for router benchmarks and tests: answers init, replies echo_ok to
echo, and with `relay` forwards a request to the next node (src = itself), which answers the client
(exercising node-to-node routing). Reads stdin in chunks and writes each batch of replies with one
write, so it never strands lines in a buffer. Stdlib only."""
import json
import os

node_id = None
node_ids = []
partial = b""
loads = json.loads
dumps = json.dumps

while True:
    chunk = os.read(0, 1 << 16)
    if not chunk:
        break
    lines = (partial + chunk).split(b"\n")
    partial = lines.pop()
    out = []
    for line in lines:
        msg = loads(line)
        body = msg["body"]
        t = body["type"]
        if t == "echo":   # the hot path: format by hand, about twice as fast as json.dumps
            out.append('{"src":"%s","dest":"%s","body":{"type":"echo_ok","echo":%s,'
                       '"in_reply_to":%d}}' % (node_id, msg["src"], dumps(body["echo"]),
                                               body["msg_id"]))
        elif t == "relay":
            nxt = node_ids[(node_ids.index(node_id) + 1) % len(node_ids)]
            out.append(dumps({"src": node_id, "dest": nxt, "body": dict(
                body, type="relayed", client=msg["src"])}))
        elif t == "relayed":
            out.append(dumps({"src": node_id, "dest": body["client"], "body": {
                "type": "echo_ok", "echo": body["echo"], "in_reply_to": body["msg_id"]}}))
        elif t == "init":
            node_id = body["node_id"]
            node_ids = body["node_ids"]
            out.append(dumps({"src": node_id, "dest": msg["src"], "body": {
                "type": "init_ok", "in_reply_to": body["msg_id"]}}))
    if out:
        data = ("\n".join(out) + "\n").encode()
        while data:
            data = data[os.write(1, data):]
