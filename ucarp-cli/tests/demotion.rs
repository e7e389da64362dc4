//! Demotion by a tracked interface, with the built `ucarp` binary in
//! network namespaces: a tracked interface going down demotes the master
//! and the backup takes over at once; it comes back and the demotion ends;
//! the skew penalty makes a real UCARP backup with `-P` take over too.
//! Runs as root (for real in CI).

use std::time::Duration;

use test_support::lab::{privileged, Lab, Proc};
use test_support::peers::{self, Impl};

const SECOND: Duration = Duration::from_secs(1);

/// A veth pair `trk0`–`trk1`, both up, in each host: `trk0` is the thing
/// we track (this kernel has no dummy interfaces).
fn tracked(lab: &Lab, hosts: usize) {
    for host in 0..hosts {
        for args in [
            &["link", "add", "trk0", "type", "veth", "peer", "name", "trk1"][..],
            &["link", "set", "trk1", "up"][..],
            &["link", "set", "trk0", "up"][..],
        ] {
            let status = lab.command(host, "ip").args(args).status().unwrap();
            assert!(status.success(), "ip {args:?}");
        }
    }
}

fn set_tracked(lab: &Lab, host: usize, up: bool) {
    let state = if up { "up" } else { "down" };
    let status = lab
        .command(host, "ip")
        .args(["link", "set", "trk0", state])
        .status()
        .unwrap();
    assert!(status.success());
}

fn is_master(line: &str) -> bool {
    line.contains("Switching to state: MASTER")
}

/// The master's tracked interface goes down: it is demoted, advertises
/// that at once, and the backup takes over on that advert (no preempt
/// needed). Back up, the demotion ends and, without preempt, the address
/// stays where it is.
#[test]
fn a_tracked_interface_going_down_hands_over() {
    if !privileged("a_tracked_interface_going_down_hands_over") {
        return;
    }
    let lab = Lab::new(2);
    tracked(&lab, 2);
    let a = peers::start(
        &lab,
        0,
        Impl::Ours,
        &["-k", "0", "--track-interface", "trk0"],
    );
    peers::wait_master(&a, 6 * SECOND);
    let b = peers::start(
        &lab,
        1,
        Impl::Ours,
        &["-k", "50", "--track-interface", "trk0"],
    );
    b.wait_for("b backup", 3 * SECOND, |l| l.contains("state: BACKUP"));
    std::thread::sleep(SECOND);

    let (mark_a, mark_b) = (a.mark(), b.mark());
    set_tracked(&lab, 0, false);
    a.wait_for_after(mark_a, "a demoted", 2 * SECOND, |l| {
        l.contains("demoted to 1: tracked interface trk0 down")
    });
    let takeover = b.wait_for_after(mark_b, "b master", 2 * SECOND, is_master);
    assert!(takeover.contains("is demoted (1)"), "{takeover}");
    a.wait_for_after(mark_a, "a yields", 2 * SECOND, |l| {
        l.contains("Switching to state: BACKUP")
    });

    let mark_a = a.mark();
    set_tracked(&lab, 0, true);
    a.wait_for_after(mark_a, "a no longer demoted", 2 * SECOND, |l| {
        l.contains("no longer demoted")
    });
    std::thread::sleep(3 * SECOND);
    assert!(
        !a.lines().iter().skip(mark_a).any(|l| is_master(l)),
        "a took the address back without preempt"
    );
    assert!(peers::is_master(&b));
}

/// Ours demoted by 10 advertises skew 0 + 10: a real UCARP 1.5.2 backup at
/// skew 5 with -P, which ignores the demote byte, sees a slower master and
/// preempts it; ours then yields to UCARP's undemoted advert.
#[test]
fn a_ucarp_backup_with_preempt_takes_over_from_a_demoted_master() {
    if !privileged("a_ucarp_backup_with_preempt_takes_over_from_a_demoted_master")
        || !peers::ready("a_ucarp_backup_with_preempt_takes_over_from_a_demoted_master")
    {
        return;
    }
    let lab = Lab::new(2);
    tracked(&lab, 1);
    let ours = peers::start(
        &lab,
        0,
        Impl::Ours,
        &["-k", "0", "--track-interface", "trk0:10"],
    );
    peers::wait_master(&ours, 6 * SECOND);
    let ucarp: Proc = peers::start(&lab, 1, Impl::Ucarp, &["-k", "5", "-P"]);
    std::thread::sleep(4 * SECOND);
    assert!(!peers::is_master(&ucarp), "UCARP preempted a faster master");

    let mark = ours.mark();
    set_tracked(&lab, 0, false);
    peers::wait_master(&ucarp, 3 * SECOND);
    let yielded = ours.wait_for_after(mark, "ours yields", 3 * SECOND, |l| {
        l.contains("Switching to state: BACKUP")
    });
    assert!(yielded.contains("better master"), "{yielded}");
}
