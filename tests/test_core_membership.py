"""Core tests for membership changes (single-server steps, learners, leadership transfer), one claim
each: a spare never campaigns or votes; a learner never counts toward a commit; a learner is promoted
once caught up; a leader asked to remove itself hands leadership over first; TimeoutNow on its own;
the configuration comes back from the log after a restart and from a snapshot; one change at a time;
a removed node cannot move anyone's term; a learner lacking its add entry catches up from a snapshot
taken after it; the bootstrap rule for empty logs.
"""

from __future__ import annotations

import dataclasses

from raftnet import PAPER, RaftNet
from rast_maelstrom.core import (
    AppendEntries,
    Heartbeat,
    InstallSnapshot,
    Membership,
    RequestVote,
    Role,
    SnapshotMeta,
    TimeoutNow,
    VoteResponse,
)
from rast_maelstrom.core import membership
from test_core_snapshot import CFG as SNAP_CFG, SnapNet

IDS = ("n1", "n2", "n3", "n4", "n5")
NO_SNAP = dataclasses.replace(PAPER, learner_snapshot=False)  # learners catch up from entries here
STICKY = dataclasses.replace(NO_SNAP, pre_vote=True, check_quorum=True)


def _net(config=NO_SNAP, members=("n1", "n2", "n3")) -> RaftNet:
    net = RaftNet(IDS, config=config, members=list(members))
    net.elect("n1")
    return net


def _reconfigure(net: RaftNet, leader: str, voters, rounds: int = 20) -> None:
    """Ask `leader` for `voters` and run the cluster (with heartbeats) until it is in force."""
    assert net[leader].reconfigure(voters) is None
    for _ in range(rounds):
        net.stabilize()
        if net[leader].reconfigured(voters):
            return
        net.tick(leader, net.config.heartbeat_ticks)
    raise AssertionError(f"{sorted(voters)} not reached: {net[leader].conf}")


def test_a_spare_never_campaigns_and_never_votes() -> None:
    net = RaftNet(IDS, config=NO_SNAP, members=["n1", "n2", "n3"])
    net.sent = []
    net.tick("n4", 100)  # ten election timeouts
    assert net["n4"].role is Role.FOLLOWER and not net.sent
    net.elect("n1")
    assert not [m for m in net.sent if isinstance(m, RequestVote) and m.dest in ("n4", "n5")]
    # A vote request reaching a spare is refused, and moves nothing.
    before = net["n4"].current_term
    net["n4"].step(RequestVote("n2", "n4", 7, 5, 1))
    rd = net["n4"].ready()
    assert [(type(m), m.granted) for m in rd.messages] == [(VoteResponse, False)]
    assert net["n4"].current_term == before and net["n4"].voted_for is None


def test_the_leader_heartbeats_spares_so_they_know_whom_to_forward_to() -> None:
    net = _net()
    net.tick("n1", PAPER.heartbeat_ticks)
    net.stabilize()
    assert net["n4"].leader_id == "n1" and net["n5"].leader_id == "n1"
    assert net["n4"].log.last_index() == 0  # heartbeats only: no entries go to a spare


def test_a_learner_never_counts_toward_a_commit() -> None:
    net = _net()
    net.partition(["n1", "n4"], ["n2", "n3", "n5"])
    assert net["n1"].reconfigure({"n1", "n2", "n3", "n4"}) is None
    net.stabilize(["n1", "n4"])  # n4 is a learner (in force once appended) and holds the entry
    assert net["n1"].conf == net["n4"].conf == Membership.of(["n1", "n2", "n3"], ["n4"])
    index, _ = net.propose("n1", "x")
    net.stabilize(["n1", "n4"])
    assert net["n4"].log.last_index() >= index  # the learner holds it ...
    assert net["n1"].commit_index < index - 1  # ... and that is not a quorum of n1, n2, n3


def test_a_learner_is_promoted_once_caught_up_and_the_target_is_reported_only_when_in_force() -> None:
    net = _net()
    for k in range(30):
        net.propose("n1", f"w{k}")
    net.stabilize()
    _reconfigure(net, "n1", {"n1", "n2", "n3", "n4", "n5"})
    conf = net["n1"].conf
    assert conf.voters == IDS and not conf.learners and net["n1"].target is None
    assert net["n5"].conf == conf and net["n5"].log.last_index() == net["n1"].log.last_index()
    # Every step went through the log, one voter at a time, each a learner first (the learners
    # catch up side by side).
    steps = [c for _, d in net.log_of("n1") if (c := membership.decode(d)) is not None]
    assert [(len(c.voters), len(c.learners)) for c in steps] == [(3, 1), (3, 2), (4, 1), (5, 0)]
    # Now five voters: three are a quorum, two are not.
    net.partition(["n1", "n2"], ["n3", "n4", "n5"])
    index, _ = net.propose("n1", "y")
    net.stabilize(["n1", "n2"])
    assert net["n1"].commit_index < index


def test_one_change_at_a_time_another_target_is_refused_while_a_step_is_in_flight() -> None:
    net = _net()
    net.partition(["n1"], ["n2", "n3", "n4", "n5"])
    assert net["n1"].reconfigure({"n1", "n2"}) is None
    net.ready("n1")  # the step (remove n3) is appended and cannot commit
    assert net["n1"].conf.voters == ("n1", "n2")  # in force once appended
    assert net["n1"].reconfigure({"n1", "n2", "n3", "n4"}) == "another configuration change is in progress"
    assert net["n1"].reconfigure({"n1", "n2"}) is None  # the same target: still waiting for it
    assert net["n1"].conf.voters == ("n1", "n2") and net["n1"].target == {"n1", "n2"}


def test_a_new_leader_changes_nothing_until_an_entry_of_its_term_commits() -> None:
    net = RaftNet(IDS, config=NO_SNAP, members=["n1", "n2", "n3"])
    net.campaign("n1")
    for _ in range(3):  # votes only: n1 leads, its no-op not yet sent
        for nid in ("n1", "n2", "n3"):
            net.ready(nid)
            net.persist(nid)
        net.deliver(lambda m: isinstance(m, (RequestVote, VoteResponse)))
    assert net["n1"].role is Role.LEADER and net["n1"].commit_index == 0
    net.take()
    net.partition(["n1"], ["n2", "n3", "n4", "n5"])
    # Until an entry of its term commits, an earlier leader's change may still be in flight.
    assert net["n1"].reconfigure({"n1", "n2"}) is None
    net.ready("n1")
    assert net["n1"].conf.voters == ("n1", "n2", "n3")
    net.heal()
    net.stabilize()
    net.tick("n1", PAPER.heartbeat_ticks)
    net.stabilize()
    assert net["n1"].reconfigured({"n1", "n2"})


def test_removing_the_leader_hands_leadership_to_an_up_to_date_voter_first() -> None:
    net = _net(config=STICKY)
    for k in range(5):
        net.propose("n1", f"w{k}")
    net.stabilize()
    net.sent = []
    assert net["n1"].reconfigure({"n2", "n3"}) is None
    net.stabilize()
    # No election timeout passed: TimeoutNow made the heir campaign, through the voters' stickiness.
    tn = [m for m in net.sent if isinstance(m, TimeoutNow)]
    assert len(tn) == 1 and tn[0].src == "n1"
    heir = tn[0].dest
    assert net[heir].role is Role.LEADER and net["n1"].role is Role.FOLLOWER
    assert net["n1"].target is None  # the node hands its waiting request to the new leader
    _reconfigure(net, heir, {"n2", "n3"})
    assert net[heir].conf.voters == ("n2", "n3")
    assert net["n1"].conf.voters == ("n2", "n3") or net["n1"].log.last_index() < net[heir].log.last_index()
    # The removed node never campaigns again.
    net.sent = []
    net.tick("n1", 100)
    assert not [m for m in net.sent if isinstance(m, RequestVote)]


def test_timeout_now_on_its_own_and_proposals_wait_while_it_is_under_way() -> None:
    net = _net(config=STICKY, members=("n1", "n2", "n3"))
    net.isolate("n3")
    net.propose("n1", "x")
    net.stabilize()
    net.heal()
    assert net["n1"].transfer_leadership("n3")
    assert net["n1"].propose("y") is None  # the log stands still for the heir to catch up
    assert not net["n1"].transfer_leadership("n2")  # one at a time
    for _ in range(4):  # n3 catches up first (heartbeats resend the probe lost in the cut), then
        net.stabilize()  # gets TimeoutNow
        net.tick("n1", STICKY.heartbeat_ticks)
    assert net["n3"].role is Role.LEADER and net["n3"].current_term == 2
    assert net.leaders_by_term == {1: {"n1"}, 2: {"n3"}}


def test_a_transfer_to_an_heir_that_never_answers_is_given_up_after_an_election_timeout() -> None:
    net = _net(config=STICKY)
    net.isolate("n3")
    assert net["n1"].transfer_leadership("n3")
    net.tick("n1", STICKY.election_ticks - 1)
    assert net["n1"].propose("y") is None
    net.tick("n1", 1)
    assert net["n1"].role is Role.LEADER and net["n1"].propose("y") is not None


def test_the_configuration_comes_back_from_the_log_after_a_restart() -> None:
    net = _net()
    _reconfigure(net, "n1", {"n1", "n2", "n3", "n4"})
    for nid in ("n1", "n4"):
        conf = net[nid].conf
        assert net.restart(nid).conf == conf == Membership.of(["n1", "n2", "n3", "n4"])
    # A spare that never got an entry still has the initial configuration.
    assert net.restart("n5").conf == Membership.of(["n1", "n2", "n3"])


def test_the_configuration_comes_back_from_a_snapshot_and_is_carried_by_install_snapshot() -> None:
    net = SnapNet(IDS, config=dataclasses.replace(SNAP_CFG, learner_snapshot=False), members=["n1", "n2", "n3"])
    net.elect("n1")
    _reconfigure(net, "n1", {"n1", "n2", "n3", "n4"})
    net.isolate("n5")
    assert net["n1"].reconfigure({"n1", "n2", "n3", "n4", "n5"}) is None
    net.stabilize()  # n5 is a learner now (cut off: it stays one)
    meta = net.take_snapshot("n1")
    assert (meta.voters, meta.learners) == (("n1", "n2", "n3", "n4"), ("n5",))
    assert net.restart("n1").conf == Membership.of(["n1", "n2", "n3", "n4"], ["n5"])


def test_a_learner_missing_its_add_entry_catches_up_from_a_snapshot_taken_after_it() -> None:
    net = SnapNet(IDS, config=SNAP_CFG, members=["n1", "n2", "n3"])
    net.elect("n1")
    for k in range(6):
        net.propose("n1", f"w{k}")
    net.stabilize()
    net.sent = []
    assert net["n1"].reconfigure({"n1", "n2", "n3", "n4"}) is None
    net.stabilize()
    add = net["n1"].log.last_index()  # the entry that made n4 a learner
    assert net["n1"].conf.learners == ("n4",)
    net.tick("n1", SNAP_CFG.heartbeat_ticks)
    net.stabilize()
    # No entry went to n4 (it might be a wiped node whose old entries name it a voter) ...
    assert not [m for m in net.sent if isinstance(m, AppendEntries) and m.dest == "n4"]
    assert net["n1"].snapshot_wanted == add  # ... the leader wants a snapshot at least that new
    net.take_snapshot("n1")
    assert net["n1"].snapshot_wanted == 0
    _reconfigure(net, "n1", {"n1", "n2", "n3", "n4"})
    sent = [m for m in net.sent if m.dest == "n4" and isinstance(m, (AppendEntries, InstallSnapshot))]
    assert isinstance(sent[0], InstallSnapshot) and sent[0].last_index >= add
    assert net.installed["n4"] == 1 and net["n4"].conf.voters == ("n1", "n2", "n3", "n4")


def test_a_removed_node_cannot_move_the_term_of_the_cluster() -> None:
    net = _net()
    _reconfigure(net, "n1", {"n1", "n2"})
    for nid in ("n1", "n2"):
        before = net[nid].current_term
        net[nid].step(RequestVote("n3", nid, before + 5, 100, before))
        assert net[nid].current_term == before and net[nid].voted_for in (None, "n1")


def test_bootstrap_rule_an_empty_log_needs_every_voter_when_members_are_named() -> None:
    cfg = dataclasses.replace(NO_SNAP, bootstrap_unanimous=True)
    net = RaftNet(("n1", "n2", "n3"), config=cfg, members=["n1", "n2", "n3"])
    net.isolate("n3")
    net.campaign("n1")
    net.stabilize()
    assert net["n1"].role is not Role.LEADER  # two of three fresh nodes (perhaps wiped ones) do not decide
    net.heal()
    net.tick("n1", 2 * cfg.election_ticks)  # its next campaign
    net.stabilize()
    assert net["n1"].role is Role.LEADER
    net.propose("n1", "x")
    net.stabilize()
    net.isolate("n1")  # with a log, a quorum elects as ever
    net.campaign("n2")
    net.stabilize()
    assert net["n2"].role is Role.LEADER


def test_a_wiped_node_started_with_the_current_members_is_a_spare_that_refuses_every_vote() -> None:
    # A replaced machine is started with init's members = the configuration it rejoins (without
    # it): it votes for nobody (not even a node that lagged since a configuration naming it), until
    # a snapshot taken after its learner entry gives it a configuration.
    from rast_maelstrom.core import Raft
    import random
    wiped = Raft("n3", list(IDS), random.Random(1), NO_SNAP, members=["n1", "n2", "n4"])
    assert not wiped.is_voter
    wiped.step(RequestVote("n5", "n3", 9, 300, 1))  # a node lagging with an old configuration
    assert [m.granted for m in wiped.ready().messages] == [False]
    for _ in range(100):
        wiped.tick()
    assert wiped.role is Role.FOLLOWER and wiped.current_term == 0


def test_messages_and_snapshot_metas_carry_learners() -> None:
    m = InstallSnapshot("n1", "n2", 2, 5, 1, ("n1",), 3, 0, b"abc", ("n1",))
    from rast_maelstrom.core.messages import check_message
    assert check_message(m) == "a snapshot whose learners repeat or are voters too"
    assert check_message(TimeoutNow("n1", "n2", 0)) is not None
    assert SnapshotMeta(1, 1, ("n1",), 0).learners == ()
    assert Heartbeat("n1", "n2", 1, 0, 0).commit_index == 0
