//! Mixed clusters of our `ucarp` and the real UCARP 1.5.2: they must
//! authenticate each other and elect exactly one master, in both roles.
//! Root and /usr/sbin/ucarp needed (both present in CI). Independent cases
//! run in parallel, each in its own lab.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use test_support::lab::Lab;
use test_support::peers::{
    in_parallel, is_master, ready, start, state, status, status_count, takeovers, wait_master,
    Impl, SECOND,
};

const BOTH_WAYS: [(Impl, Impl); 2] = [(Impl::Ucarp, Impl::Ours), (Impl::Ours, Impl::Ucarp)];

/// Master on host 0 (advskew 0), backup on host 1 (advskew 50): the backup
/// hears and accepts the master; kill -9 the master and the backup takes
/// over; restart the old master and it stays backup (no preemption).
#[test]
fn each_backs_up_the_other() {
    if !ready("each_backs_up_the_other") {
        return;
    }
    in_parallel(&BOTH_WAYS, |&(master_impl, backup_impl)| {
        let lab = Lab::new(2);
        let mut master = start(&lab, 0, master_impl, &["-k", "0"]);
        wait_master(&master, 8 * SECOND);
        let backup = start(&lab, 1, backup_impl, &["-k", "50"]);
        std::thread::sleep(5 * SECOND);
        assert_eq!(
            state(&backup).as_deref(),
            Some("BACKUP"),
            "{backup_impl:?} backup"
        );
        assert_eq!(
            takeovers(&backup),
            0,
            "{backup_impl:?} took over from a healthy master"
        );
        if backup_impl == Impl::Ours {
            let line = status(&backup);
            assert!(status_count(&line, "accepted") >= 3, "{line}");
            assert_eq!(status_count(&line, "bad_digest"), 0, "{line}");
        }
        master.kill9();
        // 3.2 s master-down; UCARP checks it only when its poll wakes
        // (every 1.195 s: the third wake, 3.6 s after its last read) and
        // reads adverts up to 1 s late, so up to about 4.6 s after the kill.
        // Well below two master-down times all the same.
        let took = wait_master(&backup, 8 * SECOND);
        assert!(
            took < Duration::from_millis(5500),
            "{backup_impl:?} took {took:?}"
        );
        // Deadratio 4: a restarted UCARP with skew 0 would otherwise time
        // out 0.8 s after its latest possible first read of the master
        // (1.195 s interval + 1 s of libpcap lateness), and take over.
        let restarted = start(&lab, 0, master_impl, &["-k", "0", "-r", "4"]);
        std::thread::sleep(5 * SECOND);
        assert_eq!(
            state(&restarted).as_deref(),
            Some("BACKUP"),
            "restarted {master_impl:?}"
        );
        assert!(is_master(&backup));
    });
}

#[test]
fn wrong_password_makes_both_master_and_is_counted() {
    if !ready("wrong_password_makes_both_master_and_is_counted") {
        return;
    }
    let lab = Lab::new(2);
    let ucarp = start(&lab, 0, Impl::Ucarp, &["-p", "right", "-k", "0"]);
    let ours = start(&lab, 1, Impl::Ours, &["-p", "wrong", "-k", "50"]);
    wait_master(&ucarp, 8 * SECOND);
    wait_master(&ours, 8 * SECOND);
    // UCARP advertises every second once master: three of its adverts
    // have been refused within a few seconds.
    test_support::lab::eventually(8 * SECOND, Duration::from_millis(500), || {
        let line = status(&ours);
        match status_count(&line, "bad_digest") {
            3.. => Ok(()),
            _ => Err(format!("not three bad digests counted: {line}")),
        }
    });
    assert!(
        ucarp
            .lines()
            .iter()
            .any(|l| l.to_lowercase().contains("digest")),
        "UCARP did not log the bad digest:\n{}",
        ucarp.lines().join("\n")
    );
    // Our log says it once, not once per packet.
    let logged = ours
        .lines()
        .iter()
        .filter(|l| l.contains("bad digest"))
        .count();
    assert_eq!(logged, 1, "{}", ours.lines().join("\n"));
    assert!(is_master(&ucarp) && is_master(&ours));
}

#[test]
fn preemption_across_implementations() {
    if !ready("preemption_across_implementations") {
        return;
    }
    in_parallel(&BOTH_WAYS, |&(slow_impl, fast_impl)| {
        let lab = Lab::new(2);
        let slow = start(&lab, 0, slow_impl, &["-k", "100"]);
        wait_master(&slow, 8 * SECOND);
        let fast = start(&lab, 1, fast_impl, &["-k", "0", "-P"]);
        wait_master(&fast, 8 * SECOND);
        std::thread::sleep(3 * SECOND);
        assert_eq!(
            state(&slow).as_deref(),
            Some("BACKUP"),
            "{slow_impl:?} did not yield"
        );
        assert!(is_master(&fast));
    });
}

/// Equal intervals, for address pairs including ones where numeric order
/// and UCARP's (last octet first) disagree. Both start cut off from each
/// other (isolated bridge ports, carrier up) so that both become master;
/// then they meet and the tie-break alone must leave exactly one master,
/// and it stays so.
#[test]
fn equal_intervals_elect_exactly_one_master() {
    if !ready("equal_intervals_elect_exactly_one_master") {
        return;
    }
    let pairs = [
        ([10, 99, 2, 1], [10, 99, 1, 2]), // numeric and UCARP order disagree
        ([10, 99, 3, 4], [10, 99, 4, 3]), // disagree
        ([10, 99, 0, 9], [10, 99, 0, 10]), // agree
    ];
    let mut cases = Vec::new();
    for (x, y) in pairs {
        for ours_first in [true, false] {
            cases.push((Ipv4Addr::from(x), Ipv4Addr::from(y), ours_first));
        }
    }
    in_parallel(&cases, |&(x, y, ours_first)| {
        let lab = Lab::with_addrs(vec![x, y]);
        let (a_impl, b_impl) = if ours_first {
            (Impl::Ours, Impl::Ucarp)
        } else {
            (Impl::Ucarp, Impl::Ours)
        };
        lab.isolate(0, true);
        lab.isolate(1, true);
        let a = start(&lab, 0, a_impl, &[]);
        let b = start(&lab, 1, b_impl, &[]);
        wait_master(&a, 8 * SECOND);
        wait_master(&b, 8 * SECOND);
        lab.isolate(0, false);
        lab.isolate(1, false);
        std::thread::sleep(5 * SECOND);
        let masters = [&a, &b].iter().filter(|p| is_master(p)).count();
        assert_eq!(
            masters, 1,
            "{x} ({a_impl:?}) / {y} ({b_impl:?}): {masters} masters"
        );
        let before = takeovers(&a) + takeovers(&b);
        std::thread::sleep(3 * SECOND);
        assert_eq!(
            takeovers(&a) + takeovers(&b),
            before,
            "{x} / {y}: not stable"
        );
        // The winner is the one UCARP's little-endian comparison picks.
        let winner = if u32::from_le_bytes(x.octets()) < u32::from_le_bytes(y.octets()) {
            &a
        } else {
            &b
        };
        assert!(
            is_master(winner),
            "{x} / {y}: wrong winner\n{}\n{}",
            a.lines().join("\n"),
            b.lines().join("\n")
        );
    });
}

/// Broadcast mode (-M) and a custom group, each way: the backup hears the
/// master (stays backup, and ours counts accepted adverts).
#[test]
fn broadcast_and_custom_group_each_way() {
    if !ready("broadcast_and_custom_group_each_way") {
        return;
    }
    // UCARP 1.5.2 documents -m but does not accept it: --mcast for both.
    let modes: [&[&str]; 2] = [&["-M"], &["--mcast=239.1.2.3"]];
    let mut cases = Vec::new();
    for mode in modes {
        for roles in BOTH_WAYS {
            cases.push((mode, roles));
        }
    }
    in_parallel(&cases, |&(mode, (master_impl, backup_impl))| {
        let lab = Lab::new(2);
        let master = start(&lab, 0, master_impl, &[&["-k", "0"], mode].concat());
        wait_master(&master, 8 * SECOND);
        let backup = start(&lab, 1, backup_impl, &[&["-k", "50"], mode].concat());
        std::thread::sleep(5 * SECOND);
        assert_eq!(
            takeovers(&backup),
            0,
            "{mode:?}: {backup_impl:?} did not hear {master_impl:?}"
        );
        if backup_impl == Impl::Ours {
            let line = status(&backup);
            assert!(status_count(&line, "accepted") >= 3, "{mode:?}: {line}");
        }
    });
}

/// advbase 0 each way. Ours as backup never takes over from a healthy UCARP
/// master; UCARP as backup flaps (its master-down is one interval at
/// advbase 0, see the notes), but ours stays master throughout, and the
/// flaps are recorded. Killing the master hands over either way.
#[test]
fn sub_second_intervals_each_way() {
    if !ready("sub_second_intervals_each_way") {
        return;
    }
    in_parallel(&BOTH_WAYS, |&(master_impl, backup_impl)| {
        let lab = Lab::new(2);
        let mut master = start(&lab, 0, master_impl, &["-b", "0", "-k", "20"]);
        wait_master(&master, 5 * SECOND);
        let backup = start(&lab, 1, backup_impl, &["-b", "0", "-k", "60"]);
        std::thread::sleep(5 * SECOND);
        match backup_impl {
            Impl::Ours => assert_eq!(takeovers(&backup), 0, "ours flapped under a healthy UCARP"),
            Impl::Ucarp => {
                assert_eq!(
                    takeovers(&master),
                    1,
                    "ours lost mastership to a flapping UCARP"
                );
                assert!(is_master(&master));
                eprintln!(
                    "UCARP backup at advbase 0: {} false takeovers in 5 s",
                    takeovers(&backup)
                );
            }
        }
        master.kill9();
        let killed = Instant::now();
        while !is_master(&backup) {
            assert!(
                killed.elapsed() < 3 * SECOND,
                "{backup_impl:?} did not take over"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    });
}

/// Our leave advertisement makes a UCARP backup take over at once, long
/// before its 6 s master-down time (advbase 2).
#[test]
fn our_leave_advert_hands_over_to_ucarp_at_once() {
    if !ready("our_leave_advert_hands_over_to_ucarp_at_once") {
        return;
    }
    let lab = Lab::new(2);
    let mut ours = start(&lab, 0, Impl::Ours, &["-b", "2", "-k", "0"]);
    wait_master(&ours, 10 * SECOND);
    let ucarp = start(&lab, 1, Impl::Ucarp, &["-b", "2", "-k", "50"]);
    std::thread::sleep(5 * SECOND);
    assert_eq!(takeovers(&ucarp), 0);
    let sent = Instant::now();
    ours.signal(Signal::SIGTERM);
    let took = wait_master(&ucarp, 8 * SECOND);
    // The leave advert reaches UCARP up to 1 s late (libpcap); its own
    // master-down (6.2 s) could end no earlier than 4 s after the signal.
    assert!(
        took < Duration::from_millis(3500),
        "UCARP took {took:?}: no immediate handover"
    );
    assert_eq!(ours.wait_exit(5 * SECOND).and_then(|s| s.code()), Some(0));
    eprintln!(
        "leave advert: UCARP master {:?} after SIGTERM",
        sent.elapsed()
    );
}

/// A UCARP master stepping down on SIGUSR2 hands over to ours.
#[test]
fn ucarp_step_down_hands_over_to_ours() {
    if !ready("ucarp_step_down_hands_over_to_ours") {
        return;
    }
    let lab = Lab::new(2);
    let ucarp = start(&lab, 0, Impl::Ucarp, &["-k", "0"]);
    wait_master(&ucarp, 8 * SECOND);
    let ours = start(&lab, 1, Impl::Ours, &["-k", "50"]);
    std::thread::sleep(3 * SECOND);
    assert_eq!(takeovers(&ours), 0);
    ucarp.signal(Signal::SIGUSR2);
    wait_master(&ours, 6 * SECOND);
    std::thread::sleep(2 * SECOND);
    assert_eq!(state(&ucarp).as_deref(), Some("BACKUP"));
    assert!(is_master(&ours));
}

/// Many vhids, mixed per vhid: two hosts run ours with 6 virtual hosts each
/// in one process (the embedding API's `multi` example), the third runs one
/// UCARP 1.5.2 per vhid. Skews differ per vhid (no preemption, so who is
/// first to time out wins): every vhid elects exactly one master, and both
/// implementations end up master of some vhids and backup of others.
#[test]
fn many_vhids_mixed_with_ucarp_elect_one_master_each() {
    if !ready("many_vhids_mixed_with_ucarp_elect_one_master_each") {
        return;
    }
    const VHIDS: u8 = 6;
    let lab = Lab::new(3);
    let start = Instant::now();
    let preferred = |vhid: u8| usize::from(vhid) % 3;
    let skew = |host: usize, vhid: u8| [0u8, 40, 80][(host + 3 - preferred(vhid)) % 3];
    let multi =
        test_support::lab::built("examples/multi", &["-p", "carp-io", "--example", "multi"]);
    let mut ours: Vec<test_support::lab::Proc> = (0..2)
        .map(|host| {
            let skews: Vec<String> = (1..=VHIDS)
                .map(|v| format!("{v}:{}", skew(host, v)))
                .collect();
            let mut command = lab.command(host, multi.to_str().unwrap());
            command.args([
                "iface=eth0".to_string(),
                format!("src={}", lab.addr(host)),
                "first=1".to_string(),
                format!("count={VHIDS}"),
                "addresses=1".to_string(),
                "pass=secret".to_string(),
                format!("skew={}", skews.join(",")),
            ]);
            test_support::lab::Proc::spawn(&format!("ours{host}"), command)
        })
        .collect();
    // UCARP signs 10.98.<vhid>.1, the one address `multi` gives each vhid.
    let ucarps: Vec<test_support::lab::Proc> = (1..=VHIDS)
        .map(|vhid| {
            let mut command = lab.command(2, test_support::peers::UCARP_C);
            command.args([
                "-i".to_string(),
                "eth0".to_string(),
                "-s".to_string(),
                lab.addr(2).to_string(),
                "-v".to_string(),
                vhid.to_string(),
                "-p".to_string(),
                "secret".to_string(),
                "-a".to_string(),
                format!("10.98.{vhid}.1"),
                "-k".to_string(),
                skew(2, vhid).to_string(),
                "-f".to_string(),
                "none".to_string(),
            ]);
            test_support::lab::Proc::spawn(&format!("ucarp-v{vhid}"), command)
        })
        .collect();
    // Start-up is a race UCARP decides late: it checks its timers only when
    // its poll() wakes and reads adverts up to a second late (notes §4), so
    // a UCARP backup may still take over a vhid, and hand it back, well
    // after its 3 s + skew. Settled means after every first decision: the
    // slowest master-down (ours: 80/256 + 3 × (1 + 80/256) s = 4.25 s) and
    // UCARP's (3 + 80/256 s) plus two of its poll periods.
    let first_decisions_over = Instant::now() + 6 * SECOND;
    let deadline = Instant::now() + 20 * SECOND;
    loop {
        let states: Vec<std::collections::BTreeMap<u8, String>> = ours
            .iter_mut()
            .map(|p| {
                let mark = p.mark();
                p.send("status");
                p.wait_for_after(mark, "status", 5 * SECOND, |l| l == "END");
                p.lines()
                    .into_iter()
                    .skip(mark)
                    .filter_map(|l| {
                        let w: Vec<&str> = l.split_whitespace().collect();
                        (w.first() == Some(&"VHOST"))
                            .then(|| (w[1].parse().unwrap(), w[2].to_string()))
                    })
                    .collect()
            })
            .collect();
        let masters = |vhid: u8| -> Vec<usize> {
            let mut m: Vec<usize> = (0..2)
                .filter(|&h| states[h].get(&vhid).map(String::as_str) == Some("MASTER"))
                .collect();
            if is_master(&ucarps[usize::from(vhid) - 1]) {
                m.push(2);
            }
            m
        };
        let one_each = (1..=VHIDS).all(|v| masters(v).len() == 1);
        let ucarp_masters = (1..=VHIDS).filter(|&v| masters(v) == vec![2]).count();
        if one_each
            && ucarp_masters > 0
            && ucarp_masters < usize::from(VHIDS)
            && Instant::now() >= first_decisions_over
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not one master per vhid: {:?}",
            (1..=VHIDS).map(|v| (v, masters(v))).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    // Settled: nobody changes its mind afterwards, neither a UCARP process
    // nor one of our virtual hosts.
    let transitions = |ours: &[test_support::lab::Proc], ucarps: &[test_support::lab::Proc]| {
        let ours = ours
            .iter()
            .map(|p| p.lines().iter().filter(|l| l.starts_with("EVENT")).count());
        let ucarps = ucarps.iter().map(|p| {
            p.lines()
                .iter()
                .filter(|l| l.contains("Switching to state"))
                .count()
        });
        ours.chain(ucarps).collect::<Vec<usize>>()
    };
    let before = transitions(&ours, &ucarps);
    std::thread::sleep(3 * SECOND);
    let after = transitions(&ours, &ucarps);
    if before != after {
        // Who said what when: our transitions and every UCARP line.
        let mut transcript: Vec<String> = ours
            .iter()
            .flat_map(|p| p.transcript(start, |l| l.starts_with("EVENT")))
            .chain(ucarps.iter().flat_map(|p| p.transcript(start, |_| true)))
            .collect();
        transcript.sort();
        panic!(
            "a vhid changed hands after settling: transitions per process (ours0, ours1, \
             ucarp-v1..) {before:?} -> {after:?}\n{}",
            transcript.join("\n")
        );
    }
}
