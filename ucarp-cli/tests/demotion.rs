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
            &[
                "link", "add", "trk0", "type", "veth", "peer", "name", "trk1",
            ][..],
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
        l.contains("tracked interface trk0 down (demotion 1)")
    });
    let takeover = b.wait_for_after(mark_b, "b master", 2 * SECOND, is_master);
    assert!(takeover.contains("is demoted (1)"), "{takeover}");
    a.wait_for_after(mark_a, "a yields", 2 * SECOND, |l| {
        l.contains("Switching to state: BACKUP")
    });
    let status = peers::status(&a);
    assert_eq!(peers::status_count(&status, "demote"), 1, "{status}");

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

/// A track script starts failing on the master: after `fall` failures in
/// a row it is demoted and the backup takes over, within fall × interval
/// plus one advert interval; healthy again, the master takes the address
/// back because it preempts (and only then).
#[test]
fn a_failing_track_script_hands_over_and_recovery_returns_with_preempt() {
    if !privileged("a_failing_track_script_hands_over_and_recovery_returns_with_preempt") {
        return;
    }
    let lab = Lab::new(2);
    let dir = test_support::scripts::Dir::new("track-script");
    let healthy = |host: usize| dir.path(&format!("h{host}-healthy"));
    let start = |host: usize, skew: &str| {
        std::fs::write(healthy(host), "").unwrap();
        let check = format!("test -e {}", healthy(host).display());
        peers::start(
            &lab,
            host,
            Impl::Ours,
            &[
                "-k",
                skew,
                "-P",
                "--track-script",
                &check,
                "--track-interval=1",
                "--track-fall=2",
                "--track-weight=3",
            ],
        )
    };
    let a = start(0, "0");
    peers::wait_master(&a, 6 * SECOND);
    let b = start(1, "50");
    b.wait_for("b backup", 3 * SECOND, |l| l.contains("state: BACKUP"));
    std::thread::sleep(2 * SECOND);
    assert!(peers::is_master(&a));

    let (mark_a, mark_b) = (a.mark(), b.mark());
    let broken = std::time::Instant::now();
    std::fs::remove_file(healthy(0)).unwrap();
    let takeover = b.wait_for_after(mark_b, "b master", 5 * SECOND, is_master);
    // fall 2 × interval 1 s, plus the check already under way and the
    // advert: well under 4 s.
    assert!(broken.elapsed() < 4 * SECOND, "{:?}", broken.elapsed());
    assert!(takeover.contains("is demoted (3)"), "{takeover}");
    a.wait_for_after(mark_a, "a's script failed", SECOND, |l| {
        l.contains("failed 2 time(s) in a row: demoted by 3")
    });

    let mark_a = a.mark();
    std::fs::write(healthy(0), "").unwrap();
    let back = a.wait_for_after(mark_a, "a master again", 5 * SECOND, is_master);
    assert!(back.contains("preempting"), "{back}");
}

/// From configuration files: three vhids in one `demote-group`, only one
/// of them tracking an interface; that interface going down moves all
/// three. Then the operator's `demote` changed in the other host's file
/// and reloaded is applied live (no restart) and hands that vhid back.
#[test]
fn a_demote_group_moves_together_and_demote_is_applied_live_on_reload() {
    if !privileged("a_demote_group_moves_together_and_demote_is_applied_live_on_reload") {
        return;
    }
    let lab = Lab::new(2);
    tracked(&lab, 1);
    let dir = test_support::scripts::Dir::new("demote-group");
    let file = |host: usize, skew: u8, vhid1_demote: u8| {
        let mut text = format!(
            "[defaults]\ninterface = \"eth0\"\nsrcip = \"{}\"\npassword = \"pw\"\n\
             advskew = {skew}\ndemote-group = \"db\"\n",
            lab.addr(host)
        );
        for vhid in 1..=3 {
            text += &format!("[[vhost]]\nvhid = {vhid}\naddresses = [\"10.99.1.{vhid}\"]\n");
            if vhid == 1 {
                text += &format!("demote = {vhid1_demote}\n");
                if host == 0 {
                    text += "track-interfaces = [\"trk0\"]\n";
                }
            }
        }
        let path = dir.path(&format!("h{host}.toml"));
        std::fs::write(&path, text).unwrap();
        path
    };
    let start = |host: usize, path: &std::path::Path| {
        let mut command = lab.command(host, env!("CARGO_BIN_EXE_ucarp"));
        command.arg("--config").arg(path);
        Proc::spawn(&format!("h{host}"), command)
    };
    let masters = |proc: &Proc| {
        let mut seen = std::collections::BTreeMap::new();
        for line in proc.lines() {
            for vhid in 1..=3 {
                if line.contains(&format!("(vhid {vhid} on eth0:")) {
                    seen.insert(vhid, is_master(&line));
                }
            }
        }
        seen.values().filter(|m| **m).count()
    };
    let a = start(0, &file(0, 0, 0));
    let b_file = file(1, 50, 0);
    let b = start(1, &b_file);
    test_support::lab::eventually(8 * SECOND, Duration::from_millis(50), || {
        (masters(&a) == 3)
            .then_some(())
            .ok_or(format!("a is master of {} vhids", masters(&a)))
    });

    set_tracked(&lab, 0, false);
    test_support::lab::eventually(3 * SECOND, Duration::from_millis(20), || {
        (masters(&b) == 3 && masters(&a) == 0)
            .then_some(())
            .ok_or(format!(
                "b masters {}, a masters {}",
                masters(&b),
                masters(&a)
            ))
    });
    set_tracked(&lab, 0, true);
    std::thread::sleep(SECOND);
    assert_eq!(masters(&b), 3, "without preempt they stay on b");

    // The operator demotes vhid 1 on b: it moves back to a, live.
    let mark = b.mark();
    file(1, 50, 20);
    b.signal(nix::sys::signal::Signal::SIGHUP);
    b.wait_for_after(mark, "live demote", 2 * SECOND, |l| {
        l.contains("vhid 1 on eth0 demote set to 20 (live)")
    });
    test_support::lab::eventually(3 * SECOND, Duration::from_millis(20), || {
        (masters(&a) >= 1)
            .then_some(())
            .ok_or("a never took anything back".to_string())
    });
    assert!(
        !b.lines()
            .iter()
            .skip(mark)
            .any(|l| l.contains("restarting")),
        "a demote change restarted the vhost"
    );
}

/// A host started with `startup-demote` does not preempt while it lasts,
/// even with a better interval and preempt; it takes over once it ends.
#[test]
fn startup_demotion_holds_off_preemption_until_it_ends() {
    if !privileged("startup_demotion_holds_off_preemption_until_it_ends") {
        return;
    }
    let lab = Lab::new(2);
    let dir = test_support::scripts::Dir::new("startup-demote");
    let b = peers::start(&lab, 1, Impl::Ours, &["-k", "50"]);
    peers::wait_master(&b, 6 * SECOND);
    let path = dir.path("h0.toml");
    std::fs::write(
        &path,
        format!(
            "[[vhost]]\ninterface = \"eth0\"\nsrcip = \"{}\"\nvhid = 7\npassword = \"secret\"\n\
             addresses = [\"{}\"]\nadvskew = 0\npreempt = true\n\
             startup-demote = 100\nstartup-demote-for = 3\n",
            lab.addr(0),
            peers::VIP
        ),
    )
    .unwrap();
    let mut command = lab.command(0, env!("CARGO_BIN_EXE_ucarp"));
    command.arg("--config").arg(&path);
    let started = std::time::Instant::now();
    let a = Proc::spawn("h0", command);
    a.wait_for("a demoted at start", 2 * SECOND, |l| {
        l.contains("demoted to 100")
    });
    let takeover = a.wait_for("a master once it ends", 8 * SECOND, is_master);
    assert!(
        started.elapsed() >= 3 * SECOND,
        "preempted during the start-up demotion: {:?}",
        started.elapsed()
    );
    assert!(takeover.contains("preempting"), "{takeover}");
    assert!(a
        .lines()
        .iter()
        .any(|l| l.contains("start-up demotion over")));
}

/// Track-script threads start after `--daemonize` forks (a thread does not
/// survive a fork) and block the signals the signal thread waits for: the
/// daemonized node runs its checks, and SIGUSR1 and SIGHUP to a foreground
/// node with a track script do what they should instead of killing it.
#[test]
fn track_scripts_survive_daemonizing_and_signals() {
    if !privileged("track_scripts_survive_daemonizing_and_signals") {
        return;
    }
    let lab = Lab::new(2);
    let dir = test_support::scripts::Dir::new("track-daemon");
    let runs = dir.path("runs");
    let check = format!("echo run >> {}", runs.display());
    let mut daemon = peers::start(
        &lab,
        0,
        Impl::Ours,
        &["-B", "--track-script", &check, "--track-interval=1"],
    );
    assert_eq!(daemon.wait_exit(5 * SECOND).and_then(|s| s.code()), Some(0));
    test_support::lab::eventually(5 * SECOND, Duration::from_millis(50), || {
        let count = dir.read("runs").lines().count();
        (count >= 2)
            .then_some(())
            .ok_or(format!("the daemon ran its track script {count} times"))
    });

    let mut node = peers::start(&lab, 1, Impl::Ours, &["--track-script", "true"]);
    node.wait_for("started", 3 * SECOND, |l| l.contains("state: BACKUP"));
    std::thread::sleep(Duration::from_millis(500));
    for signal in [
        nix::sys::signal::Signal::SIGUSR1,
        nix::sys::signal::Signal::SIGUSR1,
    ] {
        let mark = node.mark();
        node.signal(signal);
        node.wait_for_after(mark, "status line", 2 * SECOND, |l| {
            l.contains(" on eth0 id 7: ")
        });
    }
    assert!(
        node.wait_exit(Duration::from_millis(300)).is_none(),
        "a signal killed it"
    );
}
