//! The fuzz body for the election, shared by the cargo-fuzz target
//! `engines` and the stable test that replays its committed corpus.
//!
//! The input drives several engines on the [`crate::sim`] segment: how
//! many, on which vhids, with which intervals, then a sequence of faults
//! (kills, restarts, unplugging, step-downs, shutdowns, partitions, loss)
//! and of adverts injected from outside with any field values (signed, so
//! that they reach the engines). The simulator's invariants are checked
//! all along (every transition has its cause, hooks alternate); at the end,
//! with the injections over and every node restarted on a healed segment,
//! each vhid must elect exactly one master and stay stable. Any broken
//! invariant or panic is a finding.

use std::net::Ipv4Addr;
use std::time::Duration;

use carp_proto::AdvertRepr;

use crate::sim::{auth_for, Sim};

/// Operations read from one input at most: keeps every run short.
const MAX_OPS: usize = 64;

/// Reads an input front to back; past its end, zeros.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&first, rest)) => {
                self.0 = rest;
                first
            }
            None => 0,
        }
    }

    fn below(&mut self, n: u8) -> u8 {
        self.byte() % n
    }

    fn u64(&mut self) -> u64 {
        (0..8).fold(0, |acc, _| (acc << 8) | u64::from(self.byte()))
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Runs one input; panics on a broken invariant.
pub fn engines(data: &[u8]) {
    let mut input = Input(data);
    let mut sim = Sim::new(input.u64());
    let count = 2 + usize::from(input.below(3));
    let vhids = 1 + input.below(2);
    for i in 0..count {
        let advbase = input.below(3);
        let advskew = match advbase {
            // Sub-second intervals of at least 0.1 s keep runs short.
            0 => 26 + input.below(230),
            _ => input.byte(),
        };
        let deadratio = 1 + u32::from(input.below(4));
        let preempt = input.byte() & 1 == 1;
        let vhid = 1 + (i as u8 % vhids);
        sim.add_vhost(
            &format!("n{i}"),
            Ipv4Addr::new(10, 1, 1, i as u8 + 1),
            vhid,
            |c| {
                c.with_interval(advbase, advskew)
                    .with_deadratio(deadratio)
                    .with_preempt(preempt)
            },
        );
    }
    sim.latency = Duration::from_micros(100 + u64::from(input.byte()) * 8);
    for _ in 0..MAX_OPS {
        if input.is_empty() {
            break;
        }
        let op = input.byte();
        let node = usize::from(input.byte()) % count;
        match op % 11 {
            0 => sim.kill(node),
            1 => sim.restart(node),
            2 => sim.set_link(node, false),
            3 => sim.set_link(node, true),
            4 => sim.step_down(node),
            5 => sim.shutdown(node),
            6 => {
                let bits = input.byte();
                let groups: Vec<u32> = (0..count).map(|i| u32::from(bits >> i & 1)).collect();
                sim.partition(&groups);
            }
            7 => sim.loss_percent = u32::from(input.below(50)),
            8 => sim.heal(),
            _ => inject(&mut sim, &mut input, vhids),
        }
        sim.run_for(Duration::from_millis(u64::from(input.byte()) * 40));
    }
    settle(&mut sim, count);
}

/// An advert with arbitrary fields, correctly signed for its vhid, from an
/// address outside the simulated nodes.
fn inject(sim: &mut Sim, input: &mut Input<'_>, vhids: u8) {
    let vhid = 1 + input.below(vhids);
    let counter = input.u64();
    let advert = AdvertRepr {
        vhid,
        advbase: input.byte(),
        advskew: input.byte(),
        demote: input.byte(),
        counter,
        digest: auth_for(vhid).sign(counter),
    };
    let src = Ipv4Addr::new(10, 1, 2, 1 + input.below(250));
    sim.inject(src, advert);
}

/// Heals everything and restarts every node (engines that followed an
/// injected master could wait out its interval of up to 255 s), then
/// checks one master per vhid and no transition once settled.
fn settle(sim: &mut Sim, count: usize) {
    sim.loss_percent = 0;
    sim.heal();
    for node in 0..count {
        sim.kill(node);
        sim.set_link(node, true);
        sim.restart(node);
    }
    let settle = sim.worst_master_down() * 3 + Duration::from_secs(4);
    sim.run_for(settle);
    sim.assert_one_master_per_vhid();
    let settled = sim.now;
    sim.run_for(settle);
    sim.assert_one_master_per_vhid();
    assert_eq!(
        sim.transitions_since(settled),
        0,
        "not stable after settling"
    );
}
