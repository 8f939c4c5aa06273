"""Exactly once, in the state machine and the forward bookkeeping (no processes): copies of a client
request in the log take effect once and get the first result; the per-client window, its floor and
the LRU bound on clients evict at the same index everywhere; snapshots round-trip; a forward is
re-sent on a leadership change or when overdue, and forgotten once decided or given up."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from rast_maelstrom import forwards, kv, sessions
from rast_maelstrom.sessions import SessionTable


def w(key, value: bytes, src: str, msg_id: int) -> bytes:
    return kv.encode_write(key, value, src, msg_id)


def cas(key, frm: bytes, to: bytes, src: str, msg_id: int) -> bytes:
    return kv.encode_cas(key, frm, to, src, msg_id)


# ---------------------------------------------------------------------- the state machine


def test_a_late_copy_of_an_old_write_does_not_overwrite_a_newer_one() -> None:
    store = kv.KVStore()
    old = w(0, b"1", "c1", 7)
    assert store.apply(old) == (None, None)
    assert store.apply(w(0, b"2", "c2", 1)) == (None, None)
    assert store.apply(old) == (None, None)  # answered write_ok again...
    assert store.read(0) == (None, b"2")  # ...but not applied again


def test_a_copy_of_a_failed_cas_gets_the_failure_even_when_it_would_now_succeed() -> None:
    store = kv.KVStore()
    store.apply(w(0, b"1", "c1", 1))
    first = cas(0, b"2", b"3", "c2", 5)
    code, _ = store.apply(first)
    assert code == kv.ERR_PRECONDITION_FAILED
    store.apply(w(0, b"2", "c1", 2))
    code, text = store.apply(first)
    assert code == kv.ERR_PRECONDITION_FAILED and "applied before" in text
    assert store.read(0) == (None, b"2")


def test_a_copy_of_a_successful_cas_succeeds_without_applying_again() -> None:
    store = kv.KVStore()
    store.apply(w(0, b"1", "c1", 1))
    first = cas(0, b"1", b"2", "c2", 5)
    assert store.apply(first) == (None, None)
    store.apply(w(0, b"1", "c1", 2))
    assert store.apply(first) == (None, None)
    assert store.read(0) == (None, b"1")


def test_a_reused_msg_id_with_another_command_is_a_new_request() -> None:
    store = kv.KVStore()
    store.apply(w(0, b"1", "c1", 5))
    store.apply(w(0, b"2", "c1", 5))
    assert store.read(0) == (None, b"2")
    store.apply(w(0, b"1", "c1", 5))  # and again: its newest command is the one remembered
    assert store.read(0) == (None, b"1")


def test_requests_without_identity_apply_every_time() -> None:
    store = kv.KVStore()
    store.apply(kv.encode_write(0, b"1"))
    store.apply(kv.encode_write(0, b"2"))
    store.apply(kv.encode_write(0, b"1"))
    assert store.read(0) == (None, b"1") and len(store.sessions) == 0


def test_the_planted_bug_applies_every_copy() -> None:
    store = kv.KVStore(dedup=False)
    old = w(0, b"1", "c1", 7)
    store.apply(old)
    store.apply(w(0, b"2", "c2", 1))
    store.apply(old)
    assert store.read(0) == (None, b"1")


def test_many_in_flight_in_any_order_each_take_effect_once() -> None:
    store = kv.KVStore()
    rng = random.Random(3)
    ids = list(range(1, sessions.WINDOW_MAX + 1))
    rng.shuffle(ids)
    for i in ids:  # a client with a window's worth of requests in flight, applied in any order
        store.apply(w(i, b"%d" % i, "c1", i))
    for i in ids:
        store.apply(w(i, b"-1", "c2", i))
    rng.shuffle(ids)
    for i in ids:  # every copy, late and out of order
        assert store.apply(w(i, b"%d" % i, "c1", i)) == (None, None)
    assert all(store.read(i) == (None, b"-1") for i in ids)
    assert len(store.sessions.clients["c1"].results) == sessions.WINDOW_MAX


def test_the_window_evicts_the_oldest_and_a_copy_below_the_floor_is_refused_indefinitely() -> None:
    store = kv.KVStore()
    n = sessions.WINDOW_MAX + sessions.WINDOW_SLACK + 1
    for i in range(1, n + 1):
        store.apply(w(i, b"1", "c1", i))
    s = store.sessions.clients["c1"]
    assert s.floor == sessions.WINDOW_SLACK and len(s.results) == sessions.WINDOW_MAX + 1
    store.apply(w(1, b"9", "c2", 1))
    code, text = store.apply(w(1, b"1", "c1", 1))  # evicted: its fate is unknown to the window
    assert code == kv.ERR_CRASH and "older than" in text
    assert store.read(1) == (None, b"9")  # not applied again
    kept = sessions.WINDOW_SLACK + 1
    store.apply(w(kept, b"9", "c2", 2))
    assert store.apply(w(kept, b"1", "c1", kept)) == (None, None)  # in the window: deduplicated
    assert store.read(kept) == (None, b"9")


def test_the_least_recently_active_client_loses_its_session(monkeypatch) -> None:
    monkeypatch.setattr(sessions, "CLIENTS_MAX", 3)
    store = kv.KVStore()
    for c in ("c1", "c2", "c3"):
        store.apply(w(0, b"1", c, 1))
    store.apply(w(0, b"1", "c1", 2))  # c1 is the most recent now; c2 the least
    store.apply(w(0, b"1", "c4", 1))
    assert list(store.sessions.clients) == ["c3", "c1", "c4"]


def test_replicas_applying_the_same_log_hold_the_same_table() -> None:
    rng = random.Random(5)
    log = []
    for _ in range(3000):
        c = f"c{rng.randrange(20)}"
        m = rng.randrange(400)
        log.append(w(rng.randrange(3), b"%d" % rng.randrange(5), c, m) if rng.random() < 0.5
                   else cas(rng.randrange(3), b"%d" % rng.randrange(5), b"%d" % rng.randrange(5), c, m))
    a, b = kv.KVStore(), kv.KVStore()
    ra = [a.apply(x) for x in log]
    rb = [b.apply(x) for x in log]
    assert ra == rb and a.data == b.data
    assert a.sessions.to_snapshot() == b.sessions.to_snapshot()


requests = st.lists(st.tuples(st.sampled_from(["c1", "c2", "c3", "c4", "c5"]),
                              st.integers(0, 300), st.integers(0, 2 ** 32 - 1),
                              st.sampled_from([sessions.OK, 20, 22, 13])), max_size=600)


@settings(max_examples=60, deadline=None)
@given(requests)
def test_snapshot_round_trip_is_exact_and_behaves_the_same(reqs) -> None:
    table = SessionTable()
    for src, msg_id, crc, code in reqs:
        table.touch(src).add(msg_id, crc, code)
    data = table.to_snapshot()
    again = SessionTable.from_snapshot(data)
    assert again.to_snapshot() == data
    for src, msg_id, crc, _ in reqs[-50:]:
        s1, s2 = table.clients.get(src), again.clients.get(src)
        assert (s1 and s1.prior(msg_id, crc)) == (s2 and s2.prior(msg_id, crc))
    # the same further requests evict the same entries on both
    for src, msg_id, crc, code in reqs[:100]:
        table.touch(src).add(msg_id + 1000, crc, code)
        again.touch(src).add(msg_id + 1000, crc, code)
    assert again.to_snapshot() == table.to_snapshot()


def test_snapshot_is_json_with_the_bounds() -> None:
    import orjson

    store = kv.KVStore()
    store.apply(w(0, b"1", "c1", 1))
    store.apply(cas(0, b"5", b"1", "c1", 2))
    doc = orjson.loads(store.sessions.to_snapshot())
    assert doc["window_max"] == sessions.WINDOW_MAX and doc["clients_max"] == sessions.CLIENTS_MAX
    assert doc["window_slack"] == sessions.WINDOW_SLACK
    [[src, floor, results]] = doc["clients"]
    assert src == "c1" and floor is None and [(m, code) for m, _, code in results] == [(1, 0), (2, 22)]


def test_a_command_becomes_the_request_a_leader_would_accept_again() -> None:
    src, msg_id, body = kv.client_request(kv.encode_cas("k", b"[1, 2]", b'{"a":1}', "c1", 5))
    assert (src, msg_id) == ("c1", 5)
    assert body == b'{"type":"cas","msg_id":5,"key":"k","from":[1, 2],"to":{"a":1},"fwd":1}'
    assert kv.client_request(kv.encode_write(1, b"2")) is None
    assert kv.client_request(kv.NOOP) is None


# ---------------------------------------------------------------------- forwards


def _never(src: str, msg_id: int) -> bool:
    return False


def test_a_leadership_change_resends_what_went_to_the_old_leader() -> None:
    f = forwards.Forwards()
    f.add("c1", 1, b"b1", "n1", now=0.0)
    f.add("c2", 1, b"b2", "n2", now=0.01)
    assert f.due(0.02, "n2", True, _never) == [("c1", 1, b"b1")]  # c2's went to n2 already
    assert f.items[("c1", 1)][1] == "n2" and f.items[("c1", 1)][4] == 2
    assert f.due(0.03, "n2", True, _never) == []


def test_an_overdue_forward_is_resent_to_the_same_leader_and_a_decided_one_forgotten() -> None:
    f = forwards.Forwards()
    f.add("c1", 1, b"b1", "n1", now=0.0)
    f.add("c1", 2, b"b2", "n1", now=0.0)
    f.add("c1", 3, b"b3", "n1", now=0.3)
    assert f.due(0.2, "n1", False, _never) == []
    decided = {("c1", 2)}
    got = f.due(forwards.FORWARD_RETRY_AFTER_S + 0.01, "n1", False, lambda s, m: (s, m) in decided)
    assert got == [("c1", 1, b"b1")]
    assert list(f.items) == [("c1", 3), ("c1", 1)]  # kept in send order


def test_an_overdue_forward_waits_while_the_leader_makes_progress() -> None:
    f = forwards.Forwards()
    f.add("c1", 1, b"b1", "n1", now=0.0)
    late = forwards.FORWARD_RETRY_AFTER_S + 0.01
    assert f.due(late, "n1", False, _never, stalled=False) == []  # applies go on: it is queued
    assert f.due(late, "n1", False, _never, stalled=True) == [("c1", 1, b"b1")]


def test_forwards_are_given_up_after_the_clients_timeout_or_enough_sends() -> None:
    f = forwards.Forwards()
    f.add("c1", 1, b"b1", "n1", now=0.0)
    t = 0.0
    sent = 1
    for _ in range(10):
        t += forwards.FORWARD_RETRY_AFTER_S * 0.51
        sent += len(f.due(t, f"n{int(t * 100)}", True, _never))
    assert sent == forwards.FORWARD_SENDS_MAX and not f.items
    f.add("c1", 2, b"b2", None, now=0.0)  # waiting for a leader
    assert f.due(0.5, None, True, _never) == [] and f.items
    assert f.due(forwards.FORWARD_AGE_MAX_S, "n1", True, _never) == [] and not f.items


def test_forwards_are_bounded(monkeypatch) -> None:
    monkeypatch.setattr(forwards, "FORWARDS_MAX", 3)
    f = forwards.Forwards()
    for i in range(5):
        f.add("c1", i, b"b", "n1", now=0.0)
    assert list(f.items) == [("c1", 2), ("c1", 3), ("c1", 4)]


def test_memory_per_client_is_bounded_by_the_window() -> None:
    table = SessionTable()
    n = 5 * sessions.WINDOW_MAX
    for i in range(n):
        table.record("c1", i, b"x%d" % i, 0)
        s = table.clients["c1"]
        assert len(s.results) <= sessions.WINDOW_MAX + sessions.WINDOW_SLACK
    assert len(s.results) >= sessions.WINDOW_MAX and s.floor == n - 1 - len(s.results)
    assert list(s.results) == list(range(n - len(s.results), n))  # the newest ones


def test_sessions_are_a_snapshot_section_and_survive_a_restore() -> None:
    from rast_maelstrom.state import StateMachine

    a = kv.KVStore()
    w = kv.encode_write(1, b"5", "c1", 7)
    assert a.apply(w) == (None, None)
    sections = dict(StateMachine(a).sections())
    assert set(sections) == {"kv", "sessions"}
    b = kv.KVStore()
    StateMachine(b).restore(sections)
    assert b.data == a.data
    assert b.apply(kv.encode_write(1, b"6", "c2", 1)) == (None, None)
    b.apply(w)  # a late copy of c1's write, after the snapshot: answered, not applied again
    assert b.data[1] == b"6"
