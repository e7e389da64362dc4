//! One engine driven by hand: each rule of notes §4–§6 in isolation.

use carp_engine::sim;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use carp_engine::{
    Config, ConfigError, Engine, Hook, Reason, State, Time, Transmit, DEGRADED_ADVSKEW,
};
use carp_proto::AdvertRepr;
use sim::{addr, at, auth, secs};

const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 1, 1, 9));

fn config() -> Config {
    Config::new(auth(), addr(1), 1000)
}

fn engine(tune: impl FnOnce(Config) -> Config) -> Engine {
    Engine::new(tune(config()), Time::ZERO).unwrap()
}

fn advert(advbase: u8, advskew: u8, counter: u64) -> AdvertRepr {
    AdvertRepr {
        vhid: sim::VHID,
        advbase,
        advskew,
        demote: 0,
        counter,
        digest: auth().sign(counter),
    }
}

fn drain(engine: &mut Engine) -> (Vec<carp_engine::Transition>, Vec<Transmit>) {
    let events = std::iter::from_fn(|| engine.poll_event()).collect();
    let transmits = std::iter::from_fn(|| engine.poll_transmit()).collect();
    (events, transmits)
}

fn sent_adverts(transmits: &[Transmit]) -> Vec<AdvertRepr> {
    transmits
        .iter()
        .filter_map(|t| match t {
            Transmit::Advert(a) => Some(*a),
            Transmit::GratuitousArp => None,
        })
        .collect()
}

/// Runs the engine to master (nobody else talks) and drains its outputs.
fn master(tune: impl FnOnce(Config) -> Config) -> Engine {
    let mut e = engine(tune);
    let due = e.poll_timeout().unwrap();
    e.handle_timeout(due);
    assert_eq!(e.state(), State::Master);
    drain(&mut e);
    e
}

#[test]
fn configuration_is_validated() {
    let zero = Engine::new(config().with_interval(0, 0), Time::ZERO).unwrap_err();
    assert_eq!(zero, ConfigError::ZeroInterval);
    let dead = Engine::new(config().with_deadratio(0), Time::ZERO).unwrap_err();
    assert_eq!(dead, ConfigError::ZeroDeadratio);
    let mut unspecified = config();
    unspecified.src_addr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    assert_eq!(
        Engine::new(unspecified, Time::ZERO).unwrap_err(),
        ConfigError::UnspecifiedSource
    );
    assert!(Engine::new(config().with_interval(0, 1), Time::ZERO).is_ok());
    // A second source is the IPv6 one of a dual-stack host.
    let mut v6_twice = config();
    v6_twice.src_addr = IpAddr::V6(sim::addr6(1));
    v6_twice.src_addr_v6 = Some(sim::addr6(2));
    assert_eq!(
        Engine::new(v6_twice, Time::ZERO).unwrap_err(),
        ConfigError::SecondSourceWithoutIpv4
    );
    let mut dual = config();
    dual.src_addr_v6 = Some(std::net::Ipv6Addr::UNSPECIFIED);
    assert_eq!(
        Engine::new(dual, Time::ZERO).unwrap_err(),
        ConfigError::UnspecifiedSource
    );
    // 255/255 is the leave advertisement: advertising it would hand over
    // to every backup at every advert.
    let leave = Engine::new(config().with_interval(255, 255), Time::ZERO).unwrap_err();
    assert_eq!(leave, ConfigError::LeaveInterval);
    assert!(Engine::new(config().with_interval(255, 254), Time::ZERO).is_ok());
    assert!(Engine::new(config().with_interval(254, 255), Time::ZERO).is_ok());
}

#[test]
fn startup_runs_down_hook_unless_neutral() {
    let (events, _) = drain(&mut engine(|c| c));
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].from, events[0].to), (State::Init, State::Backup));
    assert_eq!(
        (events[0].reason, events[0].hook),
        (Reason::Startup, Some(Hook::Down))
    );
    let (events, _) = drain(&mut engine(|mut c| {
        c.neutral = true;
        c
    }));
    assert_eq!(events[0].hook, None);
}

#[test]
fn takeover_sends_arp_then_advert_and_a_delayed_arp_two_adverts_later() {
    let mut e = engine(|c| c);
    e.handle_timeout(at(3.0));
    assert!(e.has_output());
    let (events, transmits) = drain(&mut e);
    assert!(
        !e.has_output(),
        "drained, yet it claims output: a runtime would visit it for nothing"
    );
    assert_eq!(events[1].hook, Some(Hook::Up));
    assert_eq!(transmits[0], Transmit::GratuitousArp);
    assert!(matches!(transmits[1], Transmit::Advert(_)));
    assert_eq!(transmits.len(), 2);
    // Next advert exactly one interval later, no ARP yet; the one after
    // carries the delayed ARP.
    assert_eq!(e.poll_timeout(), Some(at(4.0)));
    e.handle_timeout(at(4.0));
    assert_eq!(drain(&mut e).1.len(), 1);
    e.handle_timeout(at(5.0));
    let (_, transmits) = drain(&mut e);
    assert!(matches!(transmits[0], Transmit::Advert(_)));
    assert_eq!(transmits[1], Transmit::GratuitousArp);
    e.handle_timeout(at(6.0));
    assert_eq!(drain(&mut e).1.len(), 1, "only one delayed ARP");
}

#[test]
fn advert_cadence_is_exact_even_when_woken_late() {
    let mut e = master(|c| c.with_interval(0, 51));
    let first = e.poll_timeout().unwrap();
    // Woken 10 ms late: the next deadline still follows the first's cadence.
    e.handle_timeout(first + secs(0.010));
    assert_eq!(e.poll_timeout().unwrap(), first + secs(0.199218));
}

#[test]
fn counter_keeps_its_lane_and_the_clock_and_never_takes_a_peers() {
    // A peer's counter, higher or lower, is not adopted (UCARP's rule):
    // ours step by 2^16 in the start counter's lane and never fall behind
    // the start counter + ms since start × 2^16.
    for heard in [5_000u64, 1 << 62] {
        let mut e = engine(|c| c);
        e.handle_advert(at(1.0), PEER, &advert(1, 0, heard));
        assert_eq!(e.send_counter(), 1000);
        assert_eq!(e.state(), State::Backup);
        let down = at(1.0) + e.master_down_time();
        e.handle_timeout(down);
        let adverts = sent_adverts(&drain(&mut e).1);
        let elapsed_ms = down.since_origin().as_millis() as u64;
        assert_eq!(adverts[0].counter, 1000 + (elapsed_ms << 16));
        assert_eq!(adverts[0].digest, auth().sign(adverts[0].counter));
        e.handle_timeout(e.poll_timeout().unwrap());
        let next = sent_adverts(&drain(&mut e).1)[0].counter;
        assert_eq!(next, 1000 + ((elapsed_ms + 1000) << 16), "one second later");
    }
}

#[test]
fn backup_rearms_on_each_advert_exactly() {
    let mut e = engine(|c| c.with_interval(1, 100));
    e.handle_advert(at(2.5), PEER, &advert(1, 0, 1));
    // 100/256 s + 3 × max(1 s, 1 s).
    assert_eq!(
        e.poll_timeout(),
        Some(at(2.5) + Duration::from_micros(3_390_625))
    );
}

#[test]
fn backup_takes_over_from_a_master_that_will_time_out_anyway() {
    // Ours: 3 × 1 s. A master advertising every 4 s would time out.
    let mut e = engine(|c| c);
    e.handle_advert(at(1.0), PEER, &advert(4, 0, 1));
    let (events, _) = drain(&mut e);
    assert!(matches!(events[1].reason, Reason::PeerWillTimeOut { peer, .. } if peer == PEER));
}

#[test]
fn backup_preempts_only_when_told_to_and_strictly_better() {
    let mut e = engine(|c| c.with_preempt(true));
    e.handle_advert(at(1.0), PEER, &advert(1, 0, 1));
    assert_eq!(e.state(), State::Backup, "equal interval never preempts");
    e.handle_advert(at(2.0), PEER, &advert(1, 1, 2));
    assert_eq!(e.state(), State::Master);
    let mut e = engine(|c| c);
    e.handle_advert(at(1.0), PEER, &advert(1, 200, 1));
    assert_eq!(e.state(), State::Backup, "no preemption");
}

#[test]
fn demoted_master_is_replaced_and_a_better_demote_wins() {
    let mut e = engine(|c| c);
    let demoted = AdvertRepr {
        demote: 1,
        ..advert(1, 0, 1)
    };
    e.handle_advert(at(1.0), PEER, &demoted);
    let (events, _) = drain(&mut e);
    assert_eq!(
        events[1].reason,
        Reason::PeerDemoted {
            peer: PEER,
            demote: 1
        }
    );
    // Now master with demote 0; a peer with a lower demote? 0 is the floor,
    // so demote ourselves and hear a demote-0 peer with a worse interval.
    let mut e = master(|mut c| {
        c.demote = 2;
        c
    });
    e.handle_advert(at(10.0), PEER, &advert(5, 0, 1));
    assert_eq!(e.state(), State::Backup);
}

#[test]
fn master_yields_to_better_after_one_more_advert() {
    let mut e = master(|c| c.with_interval(1, 50));
    e.handle_advert(at(10.0), PEER, &advert(1, 0, 77));
    let (events, transmits) = drain(&mut e);
    assert_eq!(events[0].reason, Reason::Yield { peer: PEER });
    assert_eq!(events[0].hook, Some(Hook::Down));
    let adverts = sent_adverts(&transmits);
    assert_eq!(adverts.len(), 1, "one more advert before yielding");
    assert!(adverts[0].counter > 77, "above the counter heard");
    // Now following the peer: its interval, our skew.
    assert_eq!(
        e.poll_timeout(),
        Some(at(10.0) + secs(3.0) + Duration::from_micros(195_312))
    );
}

#[test]
fn master_hearing_a_weaker_master_arps_now_and_two_adverts_later() {
    let mut e = master(|c| c);
    e.handle_advert(at(10.0), PEER, &advert(1, 10, 1));
    assert_eq!(e.state(), State::Master);
    assert_eq!(drain(&mut e).1, vec![Transmit::GratuitousArp]);
    let next = e.poll_timeout().unwrap();
    e.handle_timeout(next);
    assert_eq!(drain(&mut e).1.len(), 1);
    e.handle_timeout(next + secs(1.0));
    assert_eq!(drain(&mut e).1.last(), Some(&Transmit::GratuitousArp));
}

#[test]
fn repeated_send_failures_degrade_the_advertised_skew() {
    let mut e = master(|c| c.with_interval(1, 10));
    let mut now = e.poll_timeout().unwrap();
    let mut skews = Vec::new();
    let mut demotes = Vec::new();
    let sent = Transmit::Advert(advert(1, 10, 1));
    for ok in [false, false, false, true, true, true, true] {
        e.handle_send_result(now, &sent, ok);
        e.handle_timeout(now);
        let advert = sent_adverts(&drain(&mut e).1)[0];
        skews.push(advert.advskew);
        demotes.push(advert.demote);
        now = now + secs(1.0 + 10.0 / 256.0);
        now = e.poll_timeout().unwrap().max(now);
    }
    assert_eq!(
        skews,
        vec![
            10,
            10,
            DEGRADED_ADVSKEW,
            DEGRADED_ADVSKEW,
            DEGRADED_ADVSKEW,
            10,
            10
        ]
    );
    // Demoted by one meanwhile, as OpenBSD does on send errors.
    assert_eq!(demotes, vec![0, 0, 1, 1, 1, 0, 0]);
}

/// A gratuitous ARP that could not be sent says nothing about whether
/// peers hear our adverts: it must not degrade the advertised skew.
#[test]
fn failed_gratuitous_arps_do_not_degrade_the_advertised_skew() {
    let mut e = master(|c| c.with_interval(1, 10));
    for _ in 0..5 {
        e.handle_send_result(at(1.0), &Transmit::GratuitousArp, false);
    }
    assert!(!e.is_degraded());
    let due = e.poll_timeout().unwrap();
    e.handle_timeout(due);
    assert_eq!(sent_adverts(&drain(&mut e).1)[0].advskew, 10);
}

/// A re-created interface has lost the address: a master releases and
/// takes it again after the master-down time, unless a peer does first.
#[test]
fn an_interface_reset_makes_a_master_take_the_address_again() {
    let mut e = master(|c| c);
    e.handle_interface_reset(at(10.0));
    let (events, transmits) = drain(&mut e);
    assert_eq!(
        (events[0].to, events[0].reason, events[0].hook),
        (State::Backup, Reason::InterfaceReset, Some(Hook::Down))
    );
    assert!(transmits.is_empty());
    let due = e.poll_timeout().unwrap();
    assert_eq!(due, at(10.0) + e.master_down_time());
    e.handle_timeout(due);
    let (events, transmits) = drain(&mut e);
    assert_eq!(
        (events[0].to, events[0].hook),
        (State::Master, Some(Hook::Up))
    );
    assert_eq!(transmits[0], Transmit::GratuitousArp);
    // A backup only starts listening afresh.
    let mut b = engine(|c| c);
    drain(&mut b);
    b.handle_interface_reset(at(0.5));
    assert!(drain(&mut b).0.is_empty());
    assert_eq!(b.poll_timeout(), Some(at(0.5) + b.master_down_time()));
}

#[test]
fn link_down_silences_and_link_up_listens_afresh() {
    let mut e = master(|c| c);
    e.handle_link_change(at(10.0), false);
    let (events, _) = drain(&mut e);
    assert_eq!(
        (events[0].reason, events[0].hook),
        (Reason::LinkDown, Some(Hook::Down))
    );
    assert_eq!(
        e.poll_timeout(),
        None,
        "silent and no timers while unplugged"
    );
    e.handle_advert(at(11.0), PEER, &advert(1, 0, 1));
    assert_eq!(e.stats().adverts_accepted, 0, "deaf while unplugged");
    e.handle_link_change(at(12.0), true);
    assert_eq!(e.poll_timeout(), Some(at(15.0)));

    let mut ignoring = master(|mut c| {
        c.ignore_link_state = true;
        c
    });
    ignoring.handle_link_change(at(10.0), false);
    assert_eq!(ignoring.state(), State::Master);
}

#[test]
fn step_down_holds_then_listens() {
    let mut e = master(|c| c);
    assert!(e.step_down(at(10.0)));
    assert_eq!(e.state(), State::Backup);
    assert_eq!(e.poll_timeout(), Some(at(13.0)), "deaf for 3 s");
    e.handle_advert(at(11.0), PEER, &advert(1, 0, 1));
    assert_eq!(e.stats().adverts_accepted, 0);
    e.handle_timeout(at(13.0));
    assert_eq!(e.poll_timeout(), Some(at(16.0)), "then a fresh backup");
    assert!(
        !e.step_down(at(14.0)),
        "a backup has nothing to step down from"
    );
}

#[test]
fn shutdown_sends_leave_advert_only_as_master() {
    let mut e = master(|c| c);
    e.shutdown(at(10.0), false);
    let (events, transmits) = drain(&mut e);
    assert_eq!((events[0].to, events[0].hook), (State::Init, None));
    let leave = sent_adverts(&transmits);
    assert_eq!((leave[0].advbase, leave[0].advskew), (255, 255));
    assert_eq!(e.poll_timeout(), None);

    let mut backup = engine(|c| c);
    drain(&mut backup);
    backup.shutdown(at(1.0), true);
    let (events, transmits) = drain(&mut backup);
    assert_eq!(
        events[0].hook, None,
        "no down hook: it never held the address"
    );
    assert!(transmits.is_empty());
}

/// Demotion is advertised in the demote byte and, by default, added to
/// the skew (capped at 240) for UCARP peers, which read only the skew.
#[test]
fn demotion_is_advertised_at_once_in_the_byte_and_the_skew() {
    for (demote_skew, advskew, demote, expected) in [
        (true, 10, 5, 15),
        (true, 10, 250, 240),
        (true, 250, 5, 250),
        (false, 10, 5, 10),
    ] {
        let mut e = master(|mut c| {
            c.demote_skew = demote_skew;
            c.with_interval(1, advskew)
        });
        let now = at(3.5);
        e.handle_demote(now, demote);
        let (_, transmits) = drain(&mut e);
        let sent = sent_adverts(&transmits);
        assert_eq!(sent.len(), 1, "advertised at once");
        assert_eq!((sent[0].demote, sent[0].advskew), (demote, expected));
        // The next advert is an interval after this one.
        assert_eq!(
            e.poll_timeout(),
            Some(now + carp_engine::Interval::new(1, advskew).as_duration())
        );
    }
}
