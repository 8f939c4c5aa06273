"""Beyond the paper: pre-vote (thesis §9.6), check-quorum and leader stickiness in the sans-IO core.

What a user would notice without them: a node behind a flaky link raises its term over and over and
deposes a healthy leader when it comes back; a leader cut off from the majority keeps accepting
requests it can never commit. Each test contrasts the behaviour with the feature turned off, so it
proves the feature and not an accident of the scenario.
"""

from __future__ import annotations

import dataclasses

from raftnet import RaftNet

from rast_maelstrom.core import Config, RequestVote, Role, VoteResponse

CFG = Config(election_ticks=10, heartbeat_ticks=2)


def run(net: RaftNet, ticks: int) -> None:
    """`ticks` ticks of every clock, delivering everything between ticks."""
    for _ in range(ticks):
        net.tick_all()
        net.stabilize()


def partitioned_node_scenario(config: Config) -> tuple[RaftNet, int, int]:
    net = RaftNet(config=config)
    net.elect("n1")
    term = net["n1"].current_term
    net.isolate("n3")
    for k in range(3):
        net.propose(net.leaders()[0], f"w{k}")
    run(net, 10 * config.election_ticks)  # n3 times out again and again
    term_isolated = net["n3"].current_term
    net.heal()
    run(net, 4 * config.election_ticks)
    return net, term, term_isolated


def test_prevote_a_partitioned_node_does_not_raise_its_term_nor_disrupt_the_leader_after_heal() -> None:
    net, term, term_isolated = partitioned_node_scenario(CFG)
    assert term_isolated == term
    assert net.leaders() == ["n1"] and net["n1"].current_term == term
    assert net["n3"].role is Role.FOLLOWER and net["n3"].leader_id == "n1"
    assert net.datas("n3") == ["w0", "w1", "w2"]  # and it caught up
    assert set(net.leaders_by_term) == {term}  # nobody else ever led


def test_without_prevote_the_same_partition_raises_the_term_and_disrupts_the_leader() -> None:
    net, term, term_isolated = partitioned_node_scenario(dataclasses.replace(CFG, pre_vote=False))
    assert term_isolated > term + 5
    assert net["n1"].current_term > term  # the returning node forced a new term on everyone
    assert len(net.leaders_by_term) > 1


def steps_down_after(config: Config) -> int | None:
    net = RaftNet(["n1", "n2", "n3", "n4", "n5"], config=config)
    net.elect("n1")
    net.partition(["n1", "n2"], ["n3", "n4", "n5"])
    for t in range(1, 10 * config.election_ticks):
        net.tick("n1")
        net.tick("n2")
        net.stabilize(["n1", "n2"])
        if net["n1"].role is not Role.LEADER:
            return t
    return None


def test_check_quorum_a_leader_cut_off_from_the_majority_steps_down_within_an_election_timeout() -> None:
    t = steps_down_after(CFG)
    assert t is not None and t <= 2 * CFG.election_ticks, t


def test_without_check_quorum_the_cut_off_leader_keeps_leading() -> None:
    assert steps_down_after(dataclasses.replace(CFG, check_quorum=False)) is None


def test_a_deposed_by_check_quorum_leader_keeps_its_term_and_majority_elects_a_new_leader() -> None:
    net = RaftNet(["n1", "n2", "n3", "n4", "n5"], config=CFG)
    net.elect("n1")
    net.partition(["n1", "n2"], ["n3", "n4", "n5"])
    run(net, 4 * CFG.election_ticks)
    assert net["n1"].role is not Role.LEADER and net["n1"].current_term == 1  # pre-votes only
    majority_leaders = [i for i in ("n3", "n4", "n5") if net[i].role is Role.LEADER]
    assert len(majority_leaders) == 1


def test_leader_stickiness_followers_that_heard_from_the_leader_recently_ignore_vote_requests() -> None:
    net = RaftNet(config=CFG)
    net.elect("n1")
    n2 = net["n2"]
    term = n2.current_term
    for pre_vote in (True, False):
        n2.step(RequestVote("n3", "n2", term + 1, 99, term + 1, pre_vote))
        rd = net.ready("n2")
        assert not any(isinstance(m, VoteResponse) for m in rd.messages + rd.messages_after_persist)
        assert (n2.current_term, n2.voted_for) == (term, "n1")
    # Once a full election timeout passes without the leader, the same request wins the vote.
    net.tick("n2", CFG.election_ticks - 1)
    assert n2.role is Role.FOLLOWER  # its own timeout is drawn from [e, 2e)
    net.tick("n2")
    n2.step(RequestVote("n3", "n2", term + 1, 99, term + 1))
    rd = net.ready("n2")
    assert [(m.term, m.granted) for m in rd.messages_after_persist] == [(term + 1, True)]


def test_without_check_quorum_followers_follow_any_higher_term_vote_request() -> None:
    net = RaftNet(config=dataclasses.replace(CFG, check_quorum=False))
    net.elect("n1")
    n2 = net["n2"]
    term = n2.current_term
    n2.step(RequestVote("n3", "n2", term + 1, 99, term + 1))
    assert n2.current_term == term + 1


def test_a_pre_vote_changes_no_state_on_either_side() -> None:
    net = RaftNet(config=CFG)
    net.campaign("n3")
    assert net["n3"].role is Role.PRE_CANDIDATE and net["n3"].current_term == 0
    rd = net.ready("n3")
    assert rd.hard_state is None and rd.messages_after_persist == []
    assert [(m.dest, m.term, m.pre_vote) for m in rd.messages] == [("n1", 1, True), ("n2", 1, True)]
    net.deliver()
    for i in ("n1", "n2"):
        rd = net.ready(i)
        assert rd.hard_state is None
        assert [(m.granted, m.pre_vote) for m in rd.messages] == [(True, True)]
        assert net[i].current_term == 0 and net[i].voted_for is None
    net.deliver()
    assert net["n3"].role is Role.CANDIDATE and net["n3"].current_term == 1
