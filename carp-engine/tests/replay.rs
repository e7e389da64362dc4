//! Replay protection on the deterministic simulator: each rule of
//! `carp_engine::replay`, a restarted master whose clock went back, and
//! the random counters of a lone UCARP master. Virtual time.

use carp_engine::sim::{self, addr, at, secs, Sim};
use carp_engine::{Reason, ReplayMode, State};
use carp_proto::AdvertRepr;
use std::net::Ipv4Addr;

/// a (preferred) and b, advbase 1; a is master by 10 s.
fn pair(seed: u64, tune_b: impl FnOnce(carp_engine::Config) -> carp_engine::Config) -> Sim {
    let mut sim = Sim::new(seed);
    sim.add_node("a", addr(1), |c| c.with_interval(1, 0));
    sim.add_node("b", addr(2), |c| tune_b(c.with_interval(1, 50)));
    sim.run_until(at(10.0));
    assert_eq!(sim.assert_one_master(), 0);
    sim
}

/// An advert of vhid [`sim::VHID`] signed with the simulator's password,
/// as a third host that knows it would send.
fn signed(counter: u64, advbase: u8, advskew: u8) -> AdvertRepr {
    AdvertRepr {
        vhid: sim::VHID,
        advbase,
        advskew,
        demote: 0,
        counter,
        digest: sim::auth_for(sim::VHID).sign(counter),
    }
}

/// What a has sent while captured, from `from` seconds to `to`.
fn capture(sim: &mut Sim, until: f64) -> Vec<Vec<u8>> {
    sim.capture = true;
    sim.run_until(at(until));
    sim.capture = false;
    sim.captured
        .drain(..)
        .filter(|(from, _)| *from == 0)
        .map(|(_, bytes)| bytes)
        .collect()
}

/// Replays `frames` one a second from `start`, cycling, until `end`.
fn replay(sim: &mut Sim, frames: &[Vec<u8>], start: f64, end: f64) {
    let mut t = start;
    let mut i = 0;
    while t < end {
        sim.run_until(at(t));
        sim.inject_bytes(&frames[i % frames.len()]);
        i += 1;
        t += 1.0;
    }
}

#[test]
fn replayed_adverts_after_the_master_dies_do_not_delay_the_takeover() {
    let mut sim = pair(1, |c| c);
    let frames = capture(&mut sim, 20.0);
    assert!(frames.len() >= 9, "{}", frames.len());
    sim.kill(0);
    let killed = sim.now;
    let last = sim.nodes[0].last_advert_sent.unwrap();
    replay(
        &mut sim,
        &frames,
        killed.since_origin().as_secs_f64() + 0.1,
        40.0,
    );
    assert_eq!(sim.assert_one_master(), 1);
    let takeover = *sim.nodes[1].transitions.last().unwrap();
    assert!(matches!(takeover.reason, Reason::MasterDown { .. }));
    let b = &sim.nodes[1].config;
    assert_eq!(
        takeover.at,
        last + sim.latency + b.master_down(carp_engine::Interval::new(1, 0)),
        "as if nothing were replayed"
    );
    let refused = sim.nodes[1]
        .rejected
        .get("old_counter")
        .copied()
        .unwrap_or(0)
        + sim.nodes[1].rejected.get("replayed").copied().unwrap_or(0);
    assert!(refused >= 19, "{:?}", sim.nodes[1].rejected);
}

#[test]
fn in_permissive_mode_replays_are_accepted_and_counted() {
    let mut sim = pair(2, |mut c| {
        c.replay = ReplayMode::Permissive;
        c
    });
    let frames = capture(&mut sim, 20.0);
    sim.kill(0);
    replay(&mut sim, &frames, 20.1, 40.0);
    // Fooled, as UCARP is: still backup while the replay lasts.
    assert_eq!(sim.nodes[1].state(), Some(State::Backup));
    let stats = sim.nodes[1].engine.as_ref().unwrap().stats();
    assert!(stats.adverts_tolerated >= 19, "{stats:?}");
    assert_eq!(stats.adverts_refused, 0);
    // Once it stops, b takes over.
    sim.run_until(at(45.0));
    assert_eq!(sim.assert_one_master(), 1);
}

#[test]
fn a_captured_leave_advert_replayed_ten_times_moves_nothing() {
    let mut sim = Sim::new(3);
    sim.add_node("a", addr(1), |c| c.with_interval(1, 0).with_preempt(true));
    sim.add_node("b", addr(2), |c| c.with_interval(1, 50));
    sim.run_until(at(10.0));
    // a leaves cleanly: its leave advert is captured; b takes over.
    sim.capture = true;
    sim.shutdown(0);
    sim.run_until(at(10.5));
    sim.capture = false;
    let leave = sim
        .captured
        .iter()
        .find(|(from, _)| *from == 0)
        .expect("a's leave advert")
        .1
        .clone();
    assert_eq!(sim.assert_one_master(), 1);
    // a comes back and, with preempt, takes over again.
    sim.restart(0);
    sim.run_until(at(30.0));
    assert_eq!(sim.assert_one_master(), 0);
    let before = sim.transitions_since(at(30.0));
    for i in 0..10 {
        sim.run_until(at(30.0 + f64::from(i) * 0.5));
        sim.inject_bytes(&leave);
    }
    sim.run_until(at(40.0));
    assert_eq!(sim.transitions_since(at(30.0)), before, "no transition");
    assert_eq!(sim.assert_one_master(), 0);
    let b = &sim.nodes[1].rejected;
    let refused: u64 = [
        "old_counter",
        "replayed",
        "old_leave",
        "leave_not_from_master",
    ]
    .iter()
    .map(|k| b.get(k).copied().unwrap_or(0))
    .sum();
    assert_eq!(refused, 10, "{b:?}");
}

#[test]
fn a_leave_advert_counts_only_from_the_master_followed() {
    let mut sim = pair(4, |c| c);
    // A third host with the password sends a fresh, signed leave advert:
    // b follows a, so it is refused.
    let counter = u64::MAX / 3;
    let leave = signed(counter, 255, 255);
    sim.inject(Ipv4Addr::new(10, 1, 1, 9), leave);
    sim.run_until(at(12.0));
    assert_eq!(sim.nodes[1].state(), Some(State::Backup));
    assert_eq!(sim.nodes[1].rejected.get("leave_not_from_master"), Some(&1));
    assert_eq!(sim.assert_one_master(), 0);
}

/// a dies and comes back at once with its wall clock an hour behind (its
/// counters now below what b accepted from it). Its new run has a new
/// lane, so b judges it by itself: nothing is refused, and a (preferred,
/// with preempt) is the one master again.
#[test]
fn a_master_restarted_with_its_clock_back_is_not_locked_out() {
    let mut sim = Sim::new(5);
    sim.add_node("a", addr(1), |c| c.with_interval(1, 0).with_preempt(true));
    sim.add_node("b", addr(2), |c| c.with_interval(1, 50));
    sim.run_until(at(10.0));
    assert_eq!(sim.assert_one_master(), 0);
    sim.kill(0);
    sim.nodes[0].wall_offset_ms = -3_600_000;
    sim.restart(0);
    sim.run_until(at(40.0));
    assert_eq!(sim.assert_one_master(), 0, "one master after convergence");
    assert!(
        sim.nodes[1].rejected.is_empty(),
        "{:?}",
        sim.nodes[1].rejected
    );
    let settled = sim.transitions_since(at(40.0));
    sim.run_until(at(100.0));
    assert_eq!(sim.transitions_since(at(40.0)), settled);
    assert_eq!(sim.assert_one_master(), 0);
}

/// Beside UCARP: our master n dies after an advert that a UCARP backup u
/// missed but our backup b heard. u takes over and counts on by 1 from the
/// counter it last heard, below n's last: those counters are in no lane
/// of ours, so b follows u and does not take over. (Refusing them as old
/// would make b a second master.)
#[test]
fn a_ucarp_master_continuing_below_our_last_counter_is_followed() {
    let mut sim = Sim::new(7);
    sim.add_node("n", addr(1), |c| c.with_interval(1, 0));
    sim.add_node("b", addr(3), |c| c.with_interval(1, 100));
    sim.capture = true;
    sim.run_until(at(10.0));
    let last_but_one = sim
        .captured
        .iter()
        .filter(|(from, _)| *from == 0)
        .map(|(_, bytes)| u64::from_be_bytes(bytes[28..36].try_into().unwrap()))
        .rev()
        .nth(1)
        .unwrap();
    sim.capture = false;
    sim.kill(0);
    for i in 1..=30u64 {
        sim.run_until(at(10.5 + i as f64));
        let counter = last_but_one + i;
        sim.inject(Ipv4Addr::new(10, 1, 1, 2), signed(counter, 1, 50));
    }
    sim.run_until(at(41.0));
    assert_eq!(sim.nodes[1].state(), Some(State::Backup));
    assert!(
        sim.nodes[1].rejected.is_empty(),
        "{:?}",
        sim.nodes[1].rejected
    );
}

/// A dual-stack master's leave advert goes out on both families; the
/// backup followed it by one address or the other, and hands over at once.
#[test]
fn a_dual_stack_masters_leave_advert_hands_over_at_once() {
    use std::net::Ipv6Addr;
    let mut sim = Sim::new(8);
    for (name, last, skew) in [("a", 1u8, 0u8), ("b", 2, 50)] {
        sim.add_node(name, addr(last), |mut c| {
            c.auth = sim::auth_dual_for(sim::VHID);
            c.src_addr_v6 = Some(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, u16::from(last)));
            c.with_interval(1, skew)
        });
    }
    sim.run_until(at(10.0));
    assert_eq!(sim.assert_one_master(), 0);
    sim.shutdown(0);
    let shutdown_at = sim.now;
    sim.run_until(at(10.5));
    assert_eq!(sim.assert_one_master(), 1);
    let takeover = *sim.nodes[1].transitions.last().unwrap();
    assert!(
        matches!(takeover.reason, Reason::PeerLeft { .. }),
        "{takeover:?}"
    );
    assert_eq!(takeover.at, shutdown_at + sim.latency);
}

/// The same with a clock a day behind and b without preempt anywhere:
/// whoever ends up master, there is exactly one.
#[test]
fn restarts_with_clocks_stepped_back_converge_for_many_seeds() {
    for seed in 0..200u64 {
        let mut sim = Sim::new(seed);
        sim.add_node("a", addr(1), |c| {
            c.with_interval(1, 0).with_preempt(seed % 2 == 0)
        });
        sim.add_node("b", addr(2), |c| c.with_interval(1, 50));
        sim.add_node("c", addr(3), |c| c.with_interval(1, 100));
        sim.run_until(at(10.0));
        let victim = (seed % 3) as usize;
        sim.kill(victim);
        sim.nodes[victim].wall_offset_ms = -((seed as i64 % 7) + 1) * 3_600_000;
        let delay = secs(sim.rng.below(4000) as f64 / 1000.0);
        sim.run_until(at(10.0) + delay);
        sim.restart(victim);
        sim.run_until(at(60.0));
        sim.assert_one_master();
    }
}

/// A lone UCARP master draws a random counter for every advert: none is
/// refused, and the backup stays quiet for as long as it advertises.
#[test]
fn random_counters_like_a_lone_ucarp_masters_are_accepted() {
    let mut sim = Sim::new(6);
    sim.add_node("b", addr(2), |c| c.with_interval(1, 50));
    for i in 0..300 {
        let counter = sim.rng.next_u64();
        sim.run_until(at(1.0 + f64::from(i)));
        sim.inject(Ipv4Addr::new(10, 1, 1, 1), signed(counter, 1, 0));
    }
    sim.run_until(at(301.5));
    assert_eq!(sim.nodes[0].state(), Some(State::Backup));
    assert!(
        sim.nodes[0].rejected.is_empty(),
        "{:?}",
        sim.nodes[0].rejected
    );
}
