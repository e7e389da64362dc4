//! Replay protection with the built `ucarp` in network namespaces: a
//! leave advertisement captured from an earlier run and sent again moves
//! nothing; a master restarted with its wall clock an hour behind (its
//! counters below what its peer accepted) ends with one master; and the
//! claim the default mode rests on, checked against the real UCARP 1.5.2:
//! it never repeats a counter, and continues from a peer's counter + 1
//! after hearing one. Runs as root with UCARP and faketime (both in CI).
//! (The replay-after-kill test, behind our master and UCARP's, is
//! `replayed_adverts_after_the_master_dies` in faults.rs.)

use std::time::Duration;

use test_support::control::{vhost_of, wait_state};
use test_support::lab::{built, privileged, until, Capture, Lab, Proc};
use test_support::peers::{self, Impl};

const SECOND: Duration = Duration::from_secs(1);
const CARP: usize = 14 + 20;

/// A captured frame's IPv4 source, CARP advbase/advskew and counter.
fn advert(frame: &[u8]) -> ([u8; 4], u8, u8, u64) {
    let src = frame[26..30].try_into().unwrap();
    let counter = u64::from_be_bytes(frame[CARP + 8..CARP + 16].try_into().unwrap());
    (src, frame[CARP + 5], frame[CARP + 2], counter)
}

fn send_frames(lab: &Lab, host: usize, frames: &[Vec<u8>], pps: u32, seconds: u32) {
    let flood = built("examples/flood", &["-p", "carp-io", "--example", "flood"]);
    let hex: Vec<String> = frames
        .iter()
        .map(|f| f.iter().map(|b| format!("{b:02x}")).collect())
        .collect();
    let status = lab
        .command(host, flood.to_str().unwrap())
        .arg("iface=eth0")
        .arg(format!("src={}", lab.addr(host)))
        .arg("kind=replay")
        .arg(format!("replay={}", hex.join(",")))
        .arg(format!("pps={pps}"))
        .arg(format!("seconds={seconds}"))
        .status()
        .unwrap();
    assert!(status.success());
}

/// a (preferred, preempt) leaves cleanly and its leave advert is captured;
/// it comes back and is master again. The old leave advert, sent ten times
/// from a third host, moves nothing: b refuses it (a's counters have grown
/// since) and stays backup.
#[test]
fn a_leave_advert_from_an_earlier_run_moves_nothing() {
    if !privileged("a_leave_advert_from_an_earlier_run_moves_nothing") {
        return;
    }
    let lab = Lab::new(3);
    let mut a = peers::start(&lab, 0, Impl::Ours, &["-k", "0", "-P"]);
    wait_state(&lab, 0, "MASTER", 6 * SECOND);
    let _b = peers::start(&lab, 1, Impl::Ours, &["-k", "50"]);
    wait_state(&lab, 1, "BACKUP", 3 * SECOND);
    std::thread::sleep(2 * SECOND);

    let capture = Capture::start(&lab);
    // tcpdump needs a moment before it captures.
    std::thread::sleep(2 * SECOND);
    a.signal(nix::sys::signal::Signal::SIGTERM);
    a.wait_exit(5 * SECOND).expect("a stops");
    let b_master = wait_state(&lab, 1, "MASTER", 2 * SECOND);
    let frames = capture.stop();
    let seen: Vec<_> = frames.iter().map(|f| advert(f)).collect();
    let leave: Vec<Vec<u8>> = frames
        .into_iter()
        .filter(|f| {
            let (_, advbase, advskew, _) = advert(f);
            (advbase, advskew) == (255, 255)
        })
        .collect();
    assert_eq!(
        leave.len(),
        1,
        "one leave advert captured: {seen:?} {b_master}"
    );

    let _a = peers::start(&lab, 0, Impl::Ours, &["-k", "0", "-P"]);
    wait_state(&lab, 0, "MASTER", 6 * SECOND);
    let b = wait_state(&lab, 1, "BACKUP", 2 * SECOND);
    std::thread::sleep(SECOND);
    let before = b["counters"]["transitions"].as_u64().unwrap();

    send_frames(&lab, 2, &leave, 2, 5);
    std::thread::sleep(SECOND);
    let b = vhost_of(&lab, 1).unwrap();
    assert_eq!(b["state"], "BACKUP", "{b}");
    assert_eq!(b["counters"]["transitions"].as_u64(), Some(before), "{b}");
    let rejected = &b["counters"]["rejected"];
    let refused: u64 = [
        "old_counter",
        "replayed",
        "old_leave",
        "leave_not_from_master",
    ]
    .iter()
    .map(|k| rejected[k].as_u64().unwrap_or(0))
    .sum();
    assert_eq!(refused, 10, "{b}");
    assert_eq!(vhost_of(&lab, 0).unwrap()["state"], "MASTER");
}

/// a dies and comes straight back with its wall clock an hour behind
/// (faketime): its new counters are below what b accepted from it, but in
/// a new lane, so b judges them by themselves; with preempt, a ends as
/// the one master and b refused nothing.
#[test]
fn a_master_restarted_with_its_clock_an_hour_back_is_not_locked_out() {
    if !privileged("a_master_restarted_with_its_clock_an_hour_back_is_not_locked_out") {
        return;
    }
    if !std::path::Path::new("/usr/bin/faketime").exists() {
        assert!(
            std::env::var("CI").is_err(),
            "faketime is missing (apt-get install faketime); CI must run this test"
        );
        eprintln!("SKIPPED: faketime not installed (apt-get install faketime)");
        return;
    }
    let lab = Lab::new(2);
    let mut a = peers::start(&lab, 0, Impl::Ours, &["-k", "0", "-P"]);
    wait_state(&lab, 0, "MASTER", 6 * SECOND);
    let _b = peers::start(&lab, 1, Impl::Ours, &["-k", "50"]);
    wait_state(&lab, 1, "BACKUP", 3 * SECOND);
    std::thread::sleep(2 * SECOND);
    a.kill9();

    let mut command = lab.command(0, "faketime");
    command
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        .arg("-f")
        .arg("-1h")
        .arg(peers::ours())
        .args(["-i", "eth0", "-s", &lab.addr(0).to_string(), "-v", "7"])
        .args([
            "-p",
            "secret",
            "-a",
            peers::VIP,
            "-f",
            "none",
            "-k",
            "0",
            "-P",
        ]);
    let _a = Proc::spawn("a-restarted", command);

    // One master after convergence, and it stays so.
    until("a master, b backup", 15 * SECOND, || {
        let (a, b) = (vhost_of(&lab, 0)?, vhost_of(&lab, 1)?);
        (a["state"] == "MASTER" && b["state"] == "BACKUP").then_some(())
    });
    std::thread::sleep(5 * SECOND);
    let (a, b) = (vhost_of(&lab, 0).unwrap(), vhost_of(&lab, 1).unwrap());
    assert_eq!(
        (a["state"].as_str(), b["state"].as_str()),
        (Some("MASTER"), Some("BACKUP"))
    );
    assert_eq!(b["counters"]["rejected"], serde_json::json!({}), "{b}");
}

/// What the default mode assumes of UCARP, checked on the real binary: a
/// lone UCARP master sends a different counter in every advert, and our
/// backup (enforce) refuses none of them; after hearing a peer's advert,
/// UCARP continues from that counter + 1 (so it never repeats one either).
#[test]
fn ucarp_never_repeats_a_counter() {
    if !peers::ready("ucarp_never_repeats_a_counter") {
        return;
    }
    let lab = Lab::new(2);
    let capture = Capture::start(&lab);
    let _u = peers::start(&lab, 0, Impl::Ucarp, &["-b", "1", "-k", "0"]);
    peers::wait_master(&_u, 6 * SECOND);
    let _o = peers::start(&lab, 1, Impl::Ours, &["-b", "1", "-k", "50"]);
    wait_state(&lab, 1, "BACKUP", 3 * SECOND);
    std::thread::sleep(10 * SECOND);
    let ours = vhost_of(&lab, 1).unwrap();
    assert_eq!(ours["state"], "BACKUP", "{ours}");
    assert!(ours["counters"]["adverts_received"].as_u64().unwrap() >= 9);
    assert_eq!(
        ours["counters"]["rejected"],
        serde_json::json!({}),
        "{ours}"
    );

    // Cut them apart: ours becomes master too. Joined again, UCARP hears
    // ours (a weaker master), ours yields to it.
    lab.isolate(0, true);
    lab.isolate(1, true);
    wait_state(&lab, 1, "MASTER", 6 * SECOND);
    std::thread::sleep(2 * SECOND);
    lab.isolate(0, false);
    lab.isolate(1, false);
    wait_state(&lab, 1, "BACKUP", 4 * SECOND);
    std::thread::sleep(3 * SECOND);
    let frames = capture.stop();

    let ucarp_src = lab.addr(0).octets();
    let adverts: Vec<([u8; 4], u64)> = frames
        .iter()
        .map(|f| advert(f))
        .map(|(src, _, _, counter)| (src, counter))
        .collect();
    let ucarp: Vec<u64> = adverts
        .iter()
        .filter(|(src, _)| *src == ucarp_src)
        .map(|(_, c)| *c)
        .collect();
    let mut distinct = ucarp.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(ucarp.len() >= 15, "{}", ucarp.len());
    assert_eq!(
        distinct.len(),
        ucarp.len(),
        "UCARP repeated a counter: {ucarp:x?}"
    );
    // Some UCARP advert follows one of ours and continues from its
    // counter + 1.
    let continued = adverts.windows(2).any(|w| {
        let ((s0, c0), (s1, c1)) = (w[0], w[1]);
        s0 != ucarp_src && s1 == ucarp_src && c1 == c0.wrapping_add(1)
    });
    eprintln!(
        "UCARP counters: {} adverts, all distinct; continues from a peer's + 1: {continued}",
        ucarp.len()
    );
    assert!(continued, "{adverts:x?}");
}
