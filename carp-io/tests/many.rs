//! Many virtual hosts per process, through the embedding API (the example
//! program `multi`): 3 hosts × 20 vhids × 3 addresses in network
//! namespaces. Each vhid has its own preferred host; killing one host moves
//! exactly the vhids it was master of, and no other vhid transitions.
//! Adding, replacing and removing virtual hosts while running touches only
//! those. Runs as root (for real in CI).

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use test_support::lab::{built, eventually, privileged, Lab, Proc};
use test_support::layout::{preferred, second, skew, HOSTS};

const VHIDS: u8 = 20;
const SECOND: Duration = Duration::from_secs(1);

/// The `multi` example on `host`: `pass=secret`, our address, eth0, and
/// `args` (`first=`, `count=`, `skew=`, …).
fn multi(lab: &Lab, host: usize, args: &[&str]) -> Proc {
    let program = built("examples/multi", &["-p", "carp-io", "--example", "multi"]);
    let mut command: Command = lab.command(host, program.to_str().unwrap());
    command
        .args(["iface=eth0", "pass=secret"])
        .arg(format!("src={}", lab.addr(host)))
        .args(args);
    Proc::spawn(&format!("host{host}"), command)
}

fn start(lab: &Lab, host: usize) -> Proc {
    let skews: Vec<String> = (1..=VHIDS)
        .map(|v| format!("{v}:{}", skew(host, v)))
        .collect();
    let count = format!("count={VHIDS}");
    let skews = format!("skew={}", skews.join(","));
    multi(lab, host, &["first=1", &count, "addresses=3", &skews])
}

/// One virtual host's line of the `status` command.
#[derive(Debug, Clone)]
struct Vhost {
    state: String,
    transitions: u64,
    master: String,
    sent: u64,
    accepted: u64,
}

/// vhid → its status, from the `status` command.
fn status(proc: &mut Proc) -> BTreeMap<u8, Vhost> {
    let mark = proc.mark();
    proc.send("status");
    proc.wait_for_after(mark, "status", 5 * SECOND, |l| l == "END");
    proc.lines()
        .into_iter()
        .skip(mark)
        .take_while(|l| l != "END")
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.first() == Some(&"VHOST") && w.len() == 7).then(|| {
                let vhost = Vhost {
                    state: w[2].to_string(),
                    transitions: w[3].parse().unwrap(),
                    master: w[4].to_string(),
                    sent: w[5].parse().unwrap(),
                    accepted: w[6].parse().unwrap(),
                };
                (w[1].parse().unwrap(), vhost)
            })
        })
        .collect()
}

/// Host `h`'s address, as the lab gives it.
fn lab_addr(h: usize) -> String {
    format!("10.99.0.{}", h + 1)
}

/// Waits until each vhid has exactly the expected master among `alive`.
fn converge(
    procs: &mut [Proc],
    alive: &[usize],
    expected: impl Fn(u8) -> usize,
    timeout: Duration,
) -> Vec<BTreeMap<u8, Vhost>> {
    eventually(timeout, Duration::from_millis(200), || {
        let all: Vec<_> = alive.iter().map(|&h| status(&mut procs[h])).collect();
        // Each host in the right state and knowing who the master is.
        let ok = (1..=VHIDS).all(|v| {
            alive.iter().zip(&all).all(|(&h, s)| {
                let want = if h == expected(v) { "MASTER" } else { "BACKUP" };
                let master = lab_addr(expected(v));
                s.get(&v)
                    .is_some_and(|s| s.state == want && s.master == master)
            })
        });
        if ok {
            Ok(all)
        } else {
            Err(format!("no convergence within {timeout:?}: {all:#?}"))
        }
    })
}

#[test]
fn three_hosts_twenty_vhids_three_addresses_each() {
    if !privileged("three_hosts_twenty_vhids_three_addresses_each") {
        return;
    }
    let lab = Lab::new(HOSTS);
    let mut procs: Vec<Proc> = (0..HOSTS).map(|h| start(&lab, h)).collect();
    // Converged means every host also knows each vhid's master.
    let before = converge(&mut procs, &[0, 1, 2], preferred, 15 * SECOND);
    assert_eq!(lab.addr(2).to_string(), lab_addr(2));
    // One protocol thread serves all 20 (the process has the main thread,
    // the protocol thread and the stdin reader).
    let threads = std::fs::read_dir(format!("/proc/{}/task", procs[0].pid()))
        .unwrap()
        .count();
    assert!(threads <= 3, "{threads} threads for 20 virtual hosts");

    // kill -9 host 0: its vhids move to their second choice, nothing else
    // transitions.
    procs[0].kill9();
    let after = converge(
        &mut procs,
        &[1, 2],
        |v| {
            if preferred(v) == 0 {
                second(v)
            } else {
                preferred(v)
            }
        },
        10 * SECOND,
    );
    for (i, h) in [1usize, 2].into_iter().enumerate() {
        for v in 1..=VHIDS {
            let moved = preferred(v) == 0 && second(v) == h;
            let transitions_before = before[h][&v].transitions;
            let transitions_after = after[i][&v].transitions;
            let expected = transitions_before + u64::from(moved);
            assert_eq!(
                transitions_after, expected,
                "host {h} vhid {v}: only the dead host's vhids may move"
            );
        }
    }
}

/// Virtual hosts added, replaced and removed while running: only those
/// change; removing a master hands its vhid over at once (leave advert).
#[test]
fn virtual_hosts_come_and_go_while_running() {
    if !privileged("virtual_hosts_come_and_go_while_running") {
        return;
    }
    let lab = Lab::new(2);
    let start_with = |host: usize, skews: &str| {
        let skews = format!("skew={skews}");
        multi(&lab, host, &["first=1", "count=3", "addresses=2", &skews])
    };
    let mut a = start_with(0, "1:0,2:0,3:0");
    let mut b = start_with(1, "1:50,2:50,3:50");
    let wait_state = |p: &mut Proc, vhid: u8, want: &str| {
        eventually(10 * SECOND, Duration::from_millis(100), || {
            let s = status(p);
            if s.get(&vhid).is_some_and(|s| s.state == want) {
                Ok(s)
            } else {
                Err(format!("vhid {vhid} not {want}: {s:?}"))
            }
        })
    };
    for v in 1..=3 {
        wait_state(&mut a, v, "MASTER");
        wait_state(&mut b, v, "BACKUP");
    }
    let before = status(&mut b);
    // Remove vhid 2 on the master: b takes it over at once.
    let mark = b.mark();
    let removed = Instant::now();
    a.send("remove 2");
    b.wait_for_after(mark, "takeover of vhid 2", 2 * SECOND, |l| {
        l.starts_with("EVENT 2 BACKUP MASTER") && l.contains("leave advertisement")
    });
    assert!(removed.elapsed() < SECOND, "not an immediate handover");
    eventually(2 * SECOND, Duration::from_millis(50), || {
        match status(&mut a).contains_key(&2) {
            false => Ok(()),
            true => Err("vhid 2 still listed after leaving".into()),
        }
    });
    // Add vhid 4 on both: elected like the others; vhids 1 and 3 untouched.
    a.send("add 4 0");
    b.send("add 4 50");
    wait_state(&mut a, 4, "MASTER");
    wait_state(&mut b, 4, "BACKUP");
    let after = status(&mut b);
    for v in [1, 3] {
        assert_eq!(
            before[&v].transitions, after[&v].transitions,
            "vhid {v} transitioned"
        );
    }
    // Adding one that exists is refused, with a reason.
    let mark = a.mark();
    a.send("add 1 0");
    let error = a.wait_for_after(mark, "refusal", 2 * SECOND, |l| l.starts_with("ERROR"));
    assert!(error.contains("already configured"), "{error}");
}

/// Two vhids on one interface in two different groups: each advert is read
/// once, by the receive socket of its own group (Linux would otherwise hand
/// every socket the groups any socket joined). A backup that loses carrier
/// stops naming the master it last heard.
#[test]
fn two_groups_on_one_interface_read_each_advert_once() {
    if !privileged("two_groups_on_one_interface_read_each_advert_once") {
        return;
    }
    let lab = Lab::new(2);
    let start_with = |host: usize, skews: &str| {
        let skews = format!("skew={skews}");
        multi(
            &lab,
            host,
            &[
                "first=1",
                "count=2",
                "advbase=0",
                "group=2:224.0.0.19",
                &skews,
            ],
        )
    };
    let mut a = start_with(0, "1:20,2:20");
    let mut b = start_with(1, "1:80,2:80");
    eventually(10 * SECOND, Duration::from_millis(100), || {
        match (1..=2)
            .all(|v| status(&mut a)[&v].state == "MASTER" && status(&mut b)[&v].state == "BACKUP")
        {
            true => Ok(()),
            false => Err("no election".into()),
        }
    });
    std::thread::sleep(2 * SECOND);
    let sent_before = status(&mut a);
    let received = status(&mut b);
    let sent_after = status(&mut a);
    for v in 1..=2 {
        let accepted = received[&v].accepted;
        assert!(
            accepted <= sent_after[&v].sent && accepted >= sent_before[&v].sent / 2,
            "vhid {v}: b accepted {accepted}, a sent {}..{}",
            sent_before[&v].sent,
            sent_after[&v].sent
        );
        assert_eq!(received[&v].master, lab_addr(0));
    }
    // Without carrier nobody is heard: b no longer claims to know a master.
    lab.set_cable(1, false);
    eventually(5 * SECOND, Duration::from_millis(100), || {
        match status(&mut b)[&1].master.as_str() {
            "-" => Ok(()),
            _ => Err("b still names a master without carrier".into()),
        }
    });
}

/// A replaced virtual host starts again only once the old configuration
/// has left (its down action finished, its leave advert sent), so the two
/// never act on the same addresses at once; the other vhid is untouched.
#[test]
fn a_replacement_starts_after_the_old_configuration_has_left() {
    if !privileged("a_replacement_starts_after_the_old_configuration_has_left") {
        return;
    }
    let lab = Lab::new(2);
    let start_with = |host: usize, skews: &str| {
        let skews = format!("skew={skews}");
        multi(
            &lab,
            host,
            &["first=1", "count=2", "hook-delay=500", &skews],
        )
    };
    let mut a = start_with(0, "1:0,2:0");
    let mut b = start_with(1, "1:50,2:50");
    let converged = |a: &mut Proc, b: &mut Proc| {
        (1..=2).all(|v| status(a)[&v].state == "MASTER" && status(b)[&v].state == "BACKUP")
    };
    eventually(
        15 * SECOND,
        Duration::from_millis(100),
        || match converged(&mut a, &mut b) {
            true => Ok(()),
            false => Err("no election".into()),
        },
    );
    // Let the up actions finish before measuring anything.
    std::thread::sleep(SECOND);
    let before = status(&mut b);
    let (mark_a, mark_b) = (a.mark(), b.mark());
    a.send("replace 1 100");
    b.wait_for_after(mark_b, "takeover of vhid 1", 3 * SECOND, |l| {
        l.starts_with("EVENT 1 BACKUP MASTER") && l.contains("leave advertisement")
    });
    a.wait_for_after(mark_a, "the new vhid 1", 3 * SECOND, |l| {
        l.starts_with("EVENT 1 INIT BACKUP")
    });
    let lines: Vec<String> = a.lines().into_iter().skip(mark_a).collect();
    let position = |prefix: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in {lines:#?}"))
    };
    assert!(
        position("DONE 1 Down") < position("EVENT 1 INIT BACKUP"),
        "the new configuration started before the old one's down action finished: {lines:#?}"
    );
    // The new configuration (skew 100, no preemption) stays backup.
    std::thread::sleep(SECOND);
    assert_eq!(status(&mut a)[&1].state, "BACKUP");
    assert_eq!(status(&mut a)[&1].master, lab_addr(1));
    assert_eq!(status(&mut b)[&2].transitions, before[&2].transitions);
    // Replacing one that does not exist is refused.
    let mark = a.mark();
    a.send("replace 9 0");
    let error = a.wait_for_after(mark, "refusal", 2 * SECOND, |l| l.starts_with("ERROR"));
    assert!(error.contains("vhid 9"), "{error}");
}
