"""[extension] Membership changes: the `members` field of `init` and the `member` nemesis.

Owns: the init body (`init_body`: `"members": [...]` only with `--initial-members K` or for a
node whose data was wiped), the choices of the member nemesis (`MemberPlan`, pure) and the driver
that carries them out over the client protocol (`MemberNemesis`). Nothing here is in the jar.

The protocol (README, "Membership changes"): `init` may name the voters at start (`members`); a
node listed in `node_ids` but not in `members` is a spare. Two client RPCs, accepted by any node:
`members` -> `members_ok` with the committed configuration (`members`, `learners`), and
`reconfigure` with a full target list -> `reconfigure_ok` once it is committed and in force.
Definite errors only where nothing changed (11: no leader or another change in progress; 12:
malformed; 10: not supported); anything else is indefinite.

The nemesis (a schedule of its own, gaps U[0, 2*interval) s, the first after one gap; it never
starts a change at or after the time limit):
- Before each change it reads `members` (up to `refresh_attempts` tries) to learn the committed
  configuration and, from the reply's `src`, the leader as far as the runner can tell: a node that
  forwards a request with the client's address (Rast does) has the leader answer, so the `src` of
  a `members_ok` is the leader; a node that relays answers itself, and "leader" then just means
  that node. If the read fails it goes on with the configuration it last saw.
- Direction: grow (add a spare) or shrink (remove a member), 50/50 while both are possible; the
  configuration never drops below a majority of the initial size (`floor`) nor exceeds the node
  count. The target sent is the whole list, so a stale view still yields a list within bounds.
- Shrink: with probability `leader_probability` the leader (when it is known and a member), else
  a member drawn uniformly (which is the leader 1/size of the time). The op's value says which.
- Grow: a spare drawn uniformly; if it was a member once (so it holds a member's data) and is not
  killed or paused by another fault, with probability `wipe_probability` its data is wiped first:
  the runner kills it, deletes its `--wipe-path`, restarts it and sends `init` again, naming the
  configuration last read as `members` (the node is not in it, so a node with no data starts as a
  spare and never campaigns with the initial configuration), and waits for its init_ok.
- `reconfigure` goes to a random node that is up (members and spares alike), with the client
  timeout as every RPC (a learner's catch-up may take longer: the read below resolves it). An 11 is retried
  after `retry_s`; an indefinite outcome (timeout, 0, 13, a malformed reply) is resolved by reading
  `members`: the change is done once the node is in (grow) or out (shrink), otherwise the same
  target is sent again. A change gives up after its budget, 2 x interval within [3, 15] s
  (reads and reconfigures; then one last read; a wipe's restart does not count), and none starts
  while every node is killed or paused:
  "failed" if every answer was definite, "unknown" if one was not (it may still take effect; the
  next change's read sees it). A fault op that falls due during a change waits for it (below), so
  a change stuck under a fault (every node killed, say) holds the next fault op back for up to the
  budget, as Jepsen's single nemesis process would.
- At the time limit no change starts; one in flight gets `settle_s` to finish, then is cut short
  (`abort`: completed as unknown). After the final heal and the recovery wait the runner reads
  the configuration once more (`read_final`): the summary and membership.json show it.

History: each change is one nemesis op pair on process "nemesis", both `info`, as the jar records
its nemesis ops. f is "grow" or "shrink"; the invoke value is [flavor, node] with flavor "spare" or
"wiped" (grow), "leader" or "member" (shrink); the completion is ["added"|"removed", node,
members] (the configuration the node reported), ["failed", node, error] or ["unknown", node,
members-or-nil]. history.txt shows `:nemesis :info :grow [:wiped "n3"]` then
`:nemesis :info :grow [:added "n3" ["n0" "n1" "n3"]]`. The runner runs one nemesis op at a time:
while a change is in flight, a due fault op (partition, kill, ...) waits for it (`when_idle`), so
the op pairs never interleave; faults already active stay active during the change.

Invariants: at most one change in flight; every RPC has a timeout and every change a budget; all
randomness comes from the rng passed in; members sent are a subset of the node ids, of size
floor..node count.
May not touch: processes or the network's internals: it sends as a client and acts on nodes
through the runner's `NodeControl` (`wipe_node`, `init_pending`, `node_available`).
"""
from __future__ import annotations

import logging
import random
from typing import Any, Callable, Iterator

from .nemesis import MEMBER_FS, NodeControl, majority_size
from .workload import ERRORS

log = logging.getLogger("maelstrom.membership")

GROW_F, SHRINK_F = MEMBER_FS
DEFAULT_WIPE_PATH = "{store}/data/{node}"
NODE_TOKEN = "{node}"

leader_probability = 0.5   # a shrink removes the known leader this often
wipe_probability = 0.5     # a grow by a once-member wipes its data first this often
change_s_max = 15.0        # one change's budget for reconfigure attempts: 2 x interval within
change_s_min = 3.0         # ... these bounds
retry_s = 0.5              # wait before trying again after an 11 or an unresolved attempt
refresh_attempts = 3       # members reads before a change (each up to the RPC timeout)
wipe_init_s_max = 12.0     # waiting for a wiped node's init_ok (the runner crashes at 10 s)
settle_s = 2.0             # at the time limit, a change in flight gets this long to finish
poll_s = 0.02              # how often a wait for a condition looks again
CHANGES_MAX = 10_000       # changes listed in membership.json (the counts go on past it)


def init_body(node: str, node_ids: list[str], members: list[str] | None = None) -> dict:
    """The `init` a node gets; `members` only when given (absent: everyone votes, as the jar)."""
    body = {"type": "init", "msg_id": 1, "node_id": node, "node_ids": list(node_ids)}
    if members is not None:
        body["members"] = list(members)
    return body


def member_problem(node_count: int, initial: int | None) -> str | None:
    """Why the member nemesis could never change anything on this cluster, or None."""
    k = node_count if initial is None else initial
    if node_count < 2:
        return "the member nemesis needs at least 2 nodes"
    if k == node_count and majority_size(k) == k:
        return (f"the member nemesis could neither add nor remove a node: {k} members of {node_count} "
                f"nodes, never fewer than a majority ({majority_size(k)}) of the initial members; "
                f"use more nodes or fewer --initial-members")
    return None


# -- choices --------------------------------------------------------------------------------------
class MemberPlan:
    """What the nemesis believes and what it may do next. Pure: no IO, randomness passed in."""

    def __init__(self, nodes: list[str], initial: list[str], *, wipe: bool = True):
        assert initial and set(initial) <= set(nodes), (initial, nodes)
        self.nodes = list(nodes)
        self.initial = list(initial)
        self.floor = majority_size(len(initial))
        self.members = list(initial)        # the committed configuration as last seen
        self.ever = set(initial)            # nodes that were members at some point
        self.wipe = wipe

    def observe(self, members: list[str]) -> None:
        self.members = [n for n in self.nodes if n in set(members)]
        self.ever |= set(members)

    def spares(self) -> list[str]:
        return [n for n in self.nodes if n not in self.members]

    def removed(self) -> list[str]:
        """Spares that were members once: they hold a member's data, so they may be wiped."""
        return [n for n in self.spares() if n in self.ever]

    def direction(self, rng: random.Random) -> str | None:
        can_grow = len(self.members) < len(self.nodes)
        can_shrink = len(self.members) > self.floor
        if can_grow and can_shrink:
            return GROW_F if rng.random() < 0.5 else SHRINK_F
        return GROW_F if can_grow else SHRINK_F if can_shrink else None

    def grow_choice(self, rng: random.Random,
                    available: Callable[[str], bool] = lambda n: True) -> tuple[str, bool]:
        """(spare to add, wipe it first?)."""
        node = rng.choice(self.spares())
        wipe = (self.wipe and node in self.removed() and rng.random() < wipe_probability
                and available(node))
        return node, wipe

    def shrink_choice(self, rng: random.Random, leader: str | None) -> str:
        if leader in self.members and rng.random() < leader_probability:
            return leader
        return rng.choice(self.members)

    def target(self, f: str, node: str) -> list[str]:
        """The whole member list to ask for: the current one plus or minus `node`."""
        if f == GROW_F:
            assert node not in self.members
            want = set(self.members) | {node}
        else:
            assert node in self.members
            want = set(self.members) - {node}
        target = [n for n in self.nodes if n in want]
        assert self.floor <= len(target) <= len(self.nodes), target
        return target


# -- the driver -----------------------------------------------------------------------------------
class _Rpc:
    __slots__ = ("dest", "body", "timeout_ns")

    def __init__(self, dest: str, body: dict, timeout_s: float):
        self.dest, self.body, self.timeout_ns = dest, body, int(timeout_s * 1e9)


class _Sleep:
    __slots__ = ("ns",)

    def __init__(self, s: float):
        self.ns = int(s * 1e9)


class _Until:
    __slots__ = ("done", "deadline_ns")

    def __init__(self, done: Callable[[], bool], deadline_ns: int):
        self.done, self.deadline_ns = done, deadline_ns


Task = Iterator[Any]


def _error_name(body: dict) -> tuple[str, bool]:
    code = body.get("code")
    return ERRORS.get(code, ("unknown", False)) if type(code) is int else ("unknown", False)


class MemberNemesis:
    """Runs the plan's changes one at a time through the network; see the module docstring."""

    def __init__(self, loop, network, control: NodeControl, plan: MemberPlan, rng: random.Random,
                 interval_s: float, record: Callable[[str, str, Any], None], *, client_id: str,
                 rpc_timeout_s: float, on_op: Callable[[], None] = lambda: None):
        assert interval_s > 0
        self.loop = loop
        self.network = network
        self.control = control
        self.plan = plan
        self.rng = rng
        self.interval_s = interval_s
        self.record = record
        self.client_id = client_id
        self.rpc_timeout_s = rpc_timeout_s
        self.on_op = on_op
        self.task: Task | None = None
        self.task_name = ""
        self.task_seq = 0
        self.open_op: tuple[str, str] | None = None   # (f, node) of the change recorded, not completed
        # One change's budget (its reads and reconfigures; a wipe's restart comes on top): long
        # enough for elections, short enough not to hold the fault schedule back much longer
        # than its interval (fault ops wait for a change).
        self.budget_s = min(change_s_max, max(change_s_min, 2 * interval_s))
        self.timer = None
        self.end_ns = 0
        self.zero_ns = loop.now_ns()
        self.stopped = False
        self.msg_id = 0
        self.awaiting: int | None = None
        self.rpc_timer = None
        self.waiters: list[Callable[[], None]] = []
        self.leader: str | None = None
        self.final_members: list[str] | None = None
        self.counts = {"attempted": 0, "succeeded": 0, "failed": 0, "unknown": 0, GROW_F: 0,
                       SHRINK_F: 0, "wiped": 0, "leader": 0, "added": 0, "removed": 0}
        self.changes: list[dict] = []   # the first CHANGES_MAX, for membership.json
        self.change: dict = {}
        self.warned_unsupported = False
        network.register_client(client_id, self._on_reply)

    # -- schedule ---------------------------------------------------------------------------------
    def gap_s(self) -> float:
        return self.rng.uniform(0, 2 * self.interval_s)

    def start(self, end_ns: int) -> None:
        """Changes from one gap from now on; none starts at or after end_ns."""
        self.end_ns = end_ns
        self.zero_ns = self.loop.now_ns()
        self.timer = self.loop.call_later(int(self.gap_s() * 1e9), self._due)

    def stop(self) -> None:
        """Start no more changes (one in flight finishes: wait for `busy` to clear)."""
        self.stopped = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    @property
    def busy(self) -> bool:
        return self.task is not None

    def when_idle(self, callback: Callable[[], None]) -> None:
        """Call back now if no change is in flight, else as soon as it completes."""
        if self.task is None:
            callback()
        else:
            assert not self.waiters, "only the fault nemesis waits, one step at a time"
            self.waiters.append(callback)

    def _due(self) -> None:
        self.timer = None
        if self.stopped or self.loop.now_ns() >= self.end_ns:
            return
        self._run("change", self._change())

    def read_final(self) -> None:
        """Read the configuration once more (the recovery phase's view); sets final_members."""
        assert self.task is None
        self._run("final read", self._final_read())

    # -- coroutine plumbing -----------------------------------------------------------------------
    def _run(self, name: str, task: Task) -> None:
        assert self.task is None, self.task_name
        self.task_seq += 1
        self.task, self.task_name = task, name
        self._advance(self.task_seq, None)

    def _advance(self, seq: int, value: Any) -> None:
        if seq != self.task_seq or self.task is None:
            return   # a wake-up for a task that was aborted
        try:
            command = self.task.send(value)
        except StopIteration:
            self._finished()
            return
        if isinstance(command, _Rpc):
            self.msg_id += 1
            self.awaiting = self.msg_id
            self.rpc_timer = self.loop.call_later(command.timeout_ns, self._rpc_timeout, self.msg_id)
            self.network.send_body(self.client_id, command.dest, dict(command.body, msg_id=self.msg_id))
        elif isinstance(command, _Sleep):
            self.loop.call_later(command.ns, self._advance, seq, None)
        else:
            assert isinstance(command, _Until), command
            self._poll(seq, command)

    def _finished(self) -> None:
        name, self.task, self.open_op = self.task_name, None, None
        waiters, self.waiters = self.waiters, []
        for callback in waiters:
            callback()
        if self.task is None and not self.stopped and name == "change":
            self.timer = self.loop.call_later(int(self.gap_s() * 1e9), self._due)

    def abort(self) -> None:
        """End the task in flight now. A change whose invoke was recorded completes as
        ["unknown", node, nil]: its reconfigure may still take effect (the final read sees it)."""
        if self.task is None:
            return
        self.task.close()
        self.task_seq += 1
        self.awaiting = None
        if self.rpc_timer is not None:
            self.rpc_timer.cancel()
        if self.open_op is not None:
            f, node = self.open_op
            self._completed(f, node, ["unknown", node, None])
            log.warning("Member nemesis: %s of %s cut short at the end of the run", f, node)
        self._finished()

    def _poll(self, seq: int, until: _Until) -> None:
        if until.done():
            self._advance(seq, True)
        elif self.loop.now_ns() >= until.deadline_ns:
            self._advance(seq, False)
        else:
            self.loop.call_later(int(poll_s * 1e9), self._poll, seq, until)

    def _on_reply(self, src: str, body: dict) -> None:
        if type(body) is not dict or self.awaiting is None or body.get("in_reply_to") != self.awaiting:
            return   # late or stray: that attempt already timed out
        self.awaiting = None
        self.rpc_timer.cancel()
        self._advance(self.task_seq, (src, body))

    def _rpc_timeout(self, msg_id: int) -> None:
        if self.awaiting == msg_id:
            self.awaiting = None
            self._advance(self.task_seq, None)

    def _elapsed_s(self) -> float:
        return (self.loop.now_ns() - self.zero_ns) / 1e9

    def _dest(self) -> str:
        down = getattr(self.network, "down", ())
        up = [n for n in self.plan.nodes if n not in down]
        return self.rng.choice(up or self.plan.nodes)

    # -- the RPCs ---------------------------------------------------------------------------------
    def _valid_members(self, members: Any) -> list[str] | None:
        if (type(members) is list and members and all(type(n) is str for n in members)
                and set(members) <= set(self.plan.nodes)):
            return members
        return None

    def _note_error(self, what: str, body: dict) -> None:
        if body.get("code") == 10 and not self.warned_unsupported:
            self.warned_unsupported = True
            log.warning("A node answered %s with not-supported (10): does it implement the "
                        "membership protocol (README, 'Membership changes')? %s", what, body)

    def _read_members(self, attempts: int, deadline_ns: int | None = None) -> Iterator[Any]:
        """Up to `attempts` members reads (no new one after `deadline_ns`, but always one);
        returns the committed member list or None."""
        for attempt in range(attempts):
            if attempt:
                if deadline_ns is not None and self.loop.now_ns() + int(retry_s * 1e9) >= deadline_ns:
                    break
                yield _Sleep(retry_s)
            reply = yield _Rpc(self._dest(), {"type": "members"}, self.rpc_timeout_s)
            if reply is None:
                continue
            src, body = reply
            members = self._valid_members(body.get("members")) if body.get(
                "type") == "members_ok" else None
            if members is not None:
                self.plan.observe(members)
                self.leader = src
                return members
            self._note_error("members", body)
            if body.get("type") == "error" and _error_name(body)[1] and body.get("code") != 11:
                return None   # not supported or refused: asking again would not help
            if body.get("type") == "members_ok":
                log.warning("Malformed members_ok from %s (members must be a non-empty list of "
                            "node ids): %s", src, body)
        return None

    def _reconfigure(self, f: str, node: str, target: list[str], deadline_ns: int) -> Iterator[Any]:
        """Ask until the change is in force or the deadline passed; returns the completion."""
        def achieved(members: list[str]) -> bool:
            return (node in members) == (f == GROW_F)

        indefinite = False
        last_error = "no-attempt"
        while True:
            dest = self._dest()
            reply = yield _Rpc(dest, {"type": "reconfigure", "members": target},
                               self.rpc_timeout_s)
            resolve = False
            if reply is None:
                indefinite, resolve, last_error = True, True, "net-timeout"
            else:
                src, body = reply
                members = self._valid_members(body.get("members"))
                if body.get("type") == "reconfigure_ok" and members is not None:
                    self.plan.observe(members)
                    self.leader = src
                    if achieved(members):
                        return ["added" if f == GROW_F else "removed", node, members]
                    resolve = True   # ok, but says something else: read what is in force
                    last_error = "unexpected-members"
                elif body.get("type") == "error" and _error_name(body)[1]:
                    last_error = _error_name(body)[0]
                    self._note_error("reconfigure", body)
                    if body.get("code") != 11:
                        return ["failed", node, last_error]   # definite: nothing changed
                else:
                    indefinite, resolve = True, True
                    last_error = _error_name(body)[0] if body.get("type") == "error" else "malformed-reply"
            members = None
            if resolve:
                members = yield from self._read_members(1)
                if members is not None and achieved(members):
                    return ["added" if f == GROW_F else "removed", node, members]
            if self.loop.now_ns() + int(retry_s * 1e9) >= deadline_ns:
                break
            yield _Sleep(retry_s)
        if not resolve:
            members = yield from self._read_members(1)   # the last look, past the deadline
        if members is not None and achieved(members):
            return ["added" if f == GROW_F else "removed", node, members]
        if indefinite:
            return ["unknown", node, members]
        return ["failed", node, last_error]

    # -- one change -------------------------------------------------------------------------------
    def _change(self) -> Iterator[Any]:
        plan, rng = self.plan, self.rng
        if not set(plan.nodes) - set(getattr(self.network, "down", ())):
            return   # every node is killed or paused: nobody to ask; try again after a gap
        deadline_ns = self.loop.now_ns() + int(self.budget_s * 1e9)
        seen = yield from self._read_members(refresh_attempts, deadline_ns)
        leader = self.leader if seen is not None else None
        f = plan.direction(rng)
        if f is None:   # not reachable with a configuration the CLI accepted
            log.warning("Member nemesis: nothing to change in %s", plan.members)
            return
        wipe = False
        if f == GROW_F:
            node, wipe = plan.grow_choice(rng, self.control.node_available)
            flavor = "wiped" if wipe else "spare"
        else:
            node = plan.shrink_choice(rng, leader)
            flavor = "leader" if node == leader else "member"
        target = plan.target(f, node)
        self.record("info", f, [flavor, node])
        self.open_op = (f, node)
        self.change = {"f": f, "flavor": flavor, "node": node, "target": target, "outcome": None,
                       "start_s": self._elapsed_s()}
        if len(self.changes) < CHANGES_MAX:
            self.changes.append(self.change)
        self.counts["attempted"] += 1
        self.counts[f] += 1
        if flavor == "leader":
            self.counts["leader"] += 1
        if wipe:
            self.counts["wiped"] += 1
            self.control.wipe_node(node, list(plan.members))
            waited_ns = self.loop.now_ns()
            yield _Until(lambda: not self.control.init_pending(node),
                         self.loop.now_ns() + int(wipe_init_s_max * 1e9))
            deadline_ns += self.loop.now_ns() - waited_ns   # the restart is not the change's time
        outcome = yield from self._reconfigure(f, node, target, deadline_ns)
        self._completed(f, node, outcome)

    def _completed(self, f: str, node: str, outcome: list) -> None:
        self.open_op = None
        self.record("info", f, outcome)
        self.on_op()
        word = outcome[0]
        if word in ("added", "removed"):
            self.counts["succeeded"] += 1
        self.counts[word] += 1
        change = self.change
        change["outcome"] = outcome
        change["duration_s"] = self._elapsed_s() - change["start_s"]
        log.info("Member nemesis %s %s %s -> %s (%.0f ms)", f, change["flavor"], node, outcome,
                 change["duration_s"] * 1e3)

    def _final_read(self) -> Iterator[Any]:
        self.final_members = yield from self._read_members(refresh_attempts)

    def read_bound_s(self) -> float:
        """How long `_read_members(refresh_attempts)` can take."""
        return refresh_attempts * self.rpc_timeout_s + (refresh_attempts - 1) * retry_s

    # -- reporting --------------------------------------------------------------------------------
    def describe(self) -> str:
        return f"members {','.join(self.plan.members)}" + (" (changing)" if self.busy else "")

    def summary(self) -> str:
        c = self.counts
        final = self.final_members
        return (f"Membership changes [extension]: {c['attempted']} attempted ({c[GROW_F]} grow, "
                f"{c['wiped']} of them after wiping the node's data; {c[SHRINK_F]} shrink, "
                f"{c['leader']} of them of the leader): {c['succeeded']} succeeded ({c['added']} "
                f"added, {c['removed']} removed), {c['failed']} failed, {c['unknown']} unknown; "
                f"configuration at the end: "
                + (" ".join(final) if final is not None else "could not be read"))

    def report(self) -> dict:
        return {"counts": dict(self.counts), "initial-members": self.plan.initial, "floor": self.plan.floor,
                "final-members": self.final_members, "changes": self.changes}
