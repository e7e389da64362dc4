//! Addresses the daemon owns (`-a ADDR/PREFIX`), with no scripts, in
//! network namespaces: the address moves on takeover and a client in a
//! third namespace reaches the new master; a clean stop removes it from
//! the old master; a crash's leftover is removed when the daemon starts
//! again as backup; an address removed under a master is put back. Runs
//! as root (for real in CI).

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use test_support::lab::until;
use test_support::lab::{privileged, Lab, Proc};
use test_support::peers::{self, Impl};

const SECOND: Duration = Duration::from_secs(1);
const VIP: &str = "10.99.0.100";
const OWNED: &str = "10.99.0.100/16";

/// Our daemon on `host`, owning the address, no scripts.
fn node(lab: &Lab, host: usize, skew: &str) -> Proc {
    peers::start(lab, host, Impl::Ours, &["-a", OWNED, "-k", skew])
}

/// host's IPv4 addresses on eth0 with their labels (`ip -o addr`).
fn addresses(lab: &Lab, host: usize) -> String {
    let output = lab
        .command(host, "ip")
        .args(["-o", "-4", "addr", "show", "dev", "eth0"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn holds(lab: &Lab, host: usize) -> bool {
    addresses(lab, host).contains(&format!("inet {OWNED}"))
}

/// A TCP connection to a closed port of the address is refused only by a
/// host that answered ARP for it and owns it.
fn reachable(lab: &Lab, host: usize) -> bool {
    lab.in_ns(host, || {
        let target = SocketAddr::new(VIP.parse().unwrap(), 9);
        matches!(
            TcpStream::connect_timeout(&target, SECOND).map_err(|e| e.kind()),
            Err(std::io::ErrorKind::ConnectionRefused)
        )
    })
}

#[test]
fn owned_addresses_move_with_the_master_without_scripts() {
    if !privileged("owned_addresses_move_with_the_master_without_scripts") {
        return;
    }
    let lab = Lab::new(3);
    let mut a = node(&lab, 0, "0");
    peers::wait_master(&a, 6 * SECOND);
    let b = node(&lab, 1, "50");
    test_support::control::wait_state(&lab, 1, "BACKUP", 3 * SECOND);
    until("a holds the address", 2 * SECOND, || {
        holds(&lab, 0).then_some(())
    });
    let labelled = addresses(&lab, 0);
    assert!(labelled.contains("eth0:ucarp7"), "labelled: {labelled}");
    assert!(!holds(&lab, 1), "the backup does not hold it");
    assert!(reachable(&lab, 2), "the client reaches a");

    // The address removed under the master (a network restart) comes back.
    let status = lab
        .command(0, "ip")
        .args(["addr", "del", OWNED, "dev", "eth0"])
        .status()
        .unwrap();
    assert!(status.success());
    until("a adds it back", 2 * SECOND, || {
        holds(&lab, 0).then_some(())
    });
    assert!(
        a.lines()
            .iter()
            .any(|l| l.contains("was removed from eth0 while master")),
        "{:?}",
        a.lines()
    );

    // Host a dies (daemon killed, cable cut): b takes the address, and the
    // client reaches b (the gratuitous ARP moved its neighbour entry).
    a.kill9();
    lab.set_cable(0, false);
    peers::wait_master(&b, 6 * SECOND);
    until("b holds the address", 2 * SECOND, || {
        holds(&lab, 1).then_some(())
    });
    until("the client reaches b", 5 * SECOND, || {
        reachable(&lab, 2).then_some(())
    });

    // a comes back (its crashed run left the address behind): started as
    // backup, it removes the leftover at once.
    lab.set_cable(0, true);
    assert!(holds(&lab, 0), "the crash left the address on a");
    let _a = node(&lab, 0, "0");
    until("a removes the leftover", 3 * SECOND, || {
        (!holds(&lab, 0)).then_some(())
    });
    assert!(holds(&lab, 1));
}

/// A clean stop of the master (no --shutdown, no script): its address is
/// removed before the leave advertisement, and the backup takes it.
#[test]
fn a_clean_stop_removes_the_owned_address() {
    if !privileged("a_clean_stop_removes_the_owned_address") {
        return;
    }
    let lab = Lab::new(2);
    let mut a = node(&lab, 0, "0");
    peers::wait_master(&a, 6 * SECOND);
    let b = node(&lab, 1, "50");
    test_support::control::wait_state(&lab, 1, "BACKUP", 3 * SECOND);
    peers::wait_heard(&lab, 1, 1, 3 * SECOND);
    until("a holds the address", 2 * SECOND, || {
        holds(&lab, 0).then_some(())
    });
    a.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(a.wait_exit(5 * SECOND).and_then(|s| s.code()), Some(0));
    assert!(
        !holds(&lab, 0),
        "removed from the old master: {}",
        addresses(&lab, 0)
    );
    until("b holds it", 2 * SECOND, || holds(&lab, 1).then_some(()));
    assert!(
        b.lines().iter().any(|l| l.contains("leave advertisement")),
        "{:?}",
        b.lines()
    );
    // One removal logged, at the stop: the down action at start-up found
    // nothing to remove and says nothing at the default level.
    let removed: Vec<String> = a
        .lines()
        .into_iter()
        .filter(|l| l.contains("removed 10.99.0.100/16"))
        .collect();
    assert_eq!(removed.len(), 1, "{removed:?}");
    assert!(removed[0].contains("from eth0:ucarp7"), "{removed:?}");
}

/// `--garp-refresh 1`: a steady master announces its address again every
/// second; without it, nothing after the takeover's announcements.
#[test]
fn garp_refresh_re_announces_while_master() {
    if !privileged("garp_refresh_re_announces_while_master") {
        return;
    }
    for (refresh, expect_at_least) in [(true, 3usize), (false, 0)] {
        let lab = Lab::new(1);
        let extra: &[&str] = if refresh {
            &["-a", OWNED, "--garp-refresh", "1"]
        } else {
            &["-a", OWNED]
        };
        let a = peers::start(&lab, 0, Impl::Ours, extra);
        peers::wait_master(&a, 6 * SECOND);
        // Past the takeover's two announcements.
        std::thread::sleep(3 * SECOND);
        let capture = test_support::lab::Capture::start_filtered(&lab, "arp");
        std::thread::sleep(Duration::from_millis(3500));
        let arps = capture
            .stop()
            .iter()
            .filter(|f| f.len() >= 42 && f[38..42] == [10, 99, 0, 100])
            .count();
        if refresh {
            assert!(arps >= expect_at_least, "{arps} re-announcements in 3.5 s");
        } else {
            assert_eq!(arps, 0, "no re-announcement without --garp-refresh");
        }
    }
}

/// Owning the address changes nothing about the down script: without
/// --shutdown a stopping master removes the address but runs no down
/// script (it ran once, at start-up).
#[test]
fn releasing_at_a_stop_runs_no_down_script_without_shutdown() {
    if !privileged("releasing_at_a_stop_runs_no_down_script_without_shutdown") {
        return;
    }
    let lab = Lab::new(1);
    let dir = test_support::scripts::Dir::new("owned-down");
    let log = dir.path("log");
    let down = dir.script("down", &format!("echo down >> {}\n", log.display()));
    let mut a = peers::start(&lab, 0, Impl::Ours, &["-a", OWNED, "-d", &down]);
    peers::wait_master(&a, 6 * SECOND);
    until("a holds the address", 2 * SECOND, || {
        holds(&lab, 0).then_some(())
    });
    a.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(a.wait_exit(5 * SECOND).and_then(|s| s.code()), Some(0));
    assert!(!holds(&lab, 0), "released");
    let runs = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(runs.lines().count(), 1, "the start-up run only: {runs:?}");
}

/// host's `ip` output for `args`, in its namespace.
fn ip(lab: &Lab, host: usize, args: &[&str]) -> String {
    let output = lab.command(host, "ip").args(args).output().unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

const VMAC: &str = "00:00:5e:00:01:07";

/// `--vmac`: the address lives on a macvlan device with the virtual MAC,
/// up only on the master. The client's neighbour entry for the address
/// never changes across a takeover (watched with `ip monitor neigh`
/// throughout), the client reaches the new master, a crash's leftover
/// device is made again down and empty, a device deleted under the master
/// is made again, and a clean stop deletes it.
#[test]
fn a_virtual_mac_keeps_the_clients_neighbour_entry() {
    if !privileged("a_virtual_mac_keeps_the_clients_neighbour_entry") {
        return;
    }
    let lab = Lab::new(3);
    let start = |host: usize, skew: &str| {
        peers::start(&lab, host, Impl::Ours, &["-a", OWNED, "--vmac", "-k", skew])
    };
    let mut a = start(0, "0");
    peers::wait_master(&a, 6 * SECOND);
    let mut b = start(1, "50");
    test_support::control::wait_state(&lab, 1, "BACKUP", 3 * SECOND);
    until("a holds the address on its device", 2 * SECOND, || {
        ip(&lab, 0, &["-o", "-4", "addr", "show", "dev", "ucarp7"])
            .contains(&format!("inet {OWNED}"))
            .then_some(())
    });
    let a_device = ip(&lab, 0, &["link", "show", "ucarp7"]);
    assert!(
        a_device.contains(VMAC) && a_device.contains(",UP"),
        "{a_device}"
    );
    let b_device = ip(&lab, 1, &["link", "show", "ucarp7"]);
    assert!(b_device.contains(VMAC), "b has the device: {b_device}");
    assert!(!b_device.contains(",UP"), "down on the backup: {b_device}");
    assert!(!holds(&lab, 0), "not on eth0: {}", addresses(&lab, 0));
    let arp_ignore = lab.in_ns(1, || {
        std::fs::read_to_string("/proc/sys/net/ipv4/conf/eth0/arp_ignore").unwrap()
    });
    assert_eq!(arp_ignore.trim(), "1");

    assert!(reachable(&lab, 2), "the client reaches a");
    let entry = ip(&lab, 2, &["neigh", "show", VIP]);
    assert!(
        entry.contains(VMAC),
        "the client learnt the virtual MAC: {entry}"
    );

    // Every change of the client's neighbour table while a dies and b
    // takes over.
    let monitor = Proc::spawn("monitor", {
        let mut command = lab.command(2, "ip");
        command.args(["monitor", "neigh"]);
        command
    });
    // The monitor is listening: it reports an entry changed by hand (to
    // another MAC each time: setting the same one again is no change).
    let mut attempt = 0u8;
    until("the monitor reports", 3 * SECOND, || {
        attempt = attempt.wrapping_add(1);
        let mac = format!("02:00:00:00:00:{attempt:02x}");
        let _ = lab
            .command(2, "ip")
            .args(["neigh", "replace", "10.99.0.250", "lladdr", &mac])
            .args(["dev", "eth0"])
            .status();
        monitor
            .lines()
            .iter()
            .any(|l| l.contains("10.99.0.250"))
            .then_some(())
    });
    a.kill9();
    lab.set_cable(0, false);
    peers::wait_master(&b, 6 * SECOND);
    until("the client reaches b", 5 * SECOND, || {
        reachable(&lab, 2).then_some(())
    });
    let b_holds = ip(&lab, 1, &["-o", "-4", "addr", "show", "dev", "ucarp7"]);
    assert!(b_holds.contains(&format!("inet {OWNED}")), "{b_holds}");
    std::thread::sleep(Duration::from_millis(300));
    let changes = monitor.lines();
    let moved: Vec<&String> = changes
        .iter()
        .filter(|l| l.starts_with(&format!("{VIP} ")) && l.contains("lladdr"))
        .filter(|l| !l.contains(VMAC))
        .collect();
    assert!(
        moved.is_empty(),
        "the entry changed: {moved:?} in {changes:?}"
    );
    let entry = ip(&lab, 2, &["neigh", "show", VIP]);
    assert!(entry.contains(VMAC), "still the virtual MAC: {entry}");

    // a comes back: its crash left the device up with the address; made
    // again, down and empty.
    lab.set_cable(0, true);
    assert!(ip(&lab, 0, &["-o", "addr", "show", "dev", "ucarp7"]).contains(VIP));
    let _a = start(0, "0");
    test_support::control::wait_state(&lab, 0, "BACKUP", 5 * SECOND);
    let remade = ip(&lab, 0, &["addr", "show", "dev", "ucarp7"]);
    assert!(!remade.contains(VIP) && !remade.contains(",UP"), "{remade}");

    // The device deleted under the master (a network restart): made
    // again, with the address.
    let status = lab
        .command(1, "ip")
        .args(["link", "del", "ucarp7"])
        .status();
    assert!(status.unwrap().success());
    until("b makes its device again", 3 * SECOND, || {
        ip(&lab, 1, &["-o", "-4", "addr", "show", "dev", "ucarp7"])
            .contains(&format!("inet {OWNED}"))
            .then_some(())
    });
    until("the client reaches b again", 5 * SECOND, || {
        reachable(&lab, 2).then_some(())
    });

    // A clean stop of b deletes its device.
    b.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(b.wait_exit(5 * SECOND).and_then(|s| s.code()), Some(0));
    let gone = lab
        .command(1, "ip")
        .args(["link", "show", "ucarp7"])
        .output()
        .unwrap();
    assert!(!gone.status.success(), "deleted at stop");
}

/// A master on host 0 owning the address, whose up script hangs (`extra`
/// appended to its options), once it holds the address; the scripts'
/// directory lives as long as the returned one.
fn master_with_a_hung_up_script(
    lab: &Lab,
    name: &str,
    extra: &[&str],
) -> (test_support::scripts::Dir, Proc) {
    let dir = test_support::scripts::Dir::new(name);
    let hang = dir.script("hang", "sleep 30\n");
    let mut args = vec!["-a", OWNED, "-u", &hang, "-k", "50"];
    args.extend(extra);
    let a = peers::start(lab, 0, Impl::Ours, &args);
    peers::wait_master(&a, 6 * SECOND);
    until("a holds the address", 2 * SECOND, || {
        holds(lab, 0).then_some(())
    });
    (dir, a)
}

/// Host 1 preempts host 0; returns once host 0 has released the address.
fn preempt_from_host_1(lab: &Lab) -> Proc {
    let b = peers::start(lab, 1, Impl::Ours, &["-a", OWNED, "-k", "0", "-P"]);
    peers::wait_master(&b, 6 * SECOND);
    test_support::control::wait_state(lab, 0, "BACKUP", 3 * SECOND);
    until("a releases the address", 2 * SECOND, || {
        (!holds(lab, 0)).then_some(())
    });
    b
}

/// A master whose up script hangs is preempted: its owned address leaves
/// at once, not when the script ends or times out (before, the removal
/// waited in line behind the script: the address on two hosts meanwhile).
#[test]
fn a_hung_up_script_does_not_keep_the_address_after_preemption() {
    if !privileged("a_hung_up_script_does_not_keep_the_address_after_preemption") {
        return;
    }
    let lab = Lab::new(2);
    let (_dir, _a) = master_with_a_hung_up_script(&lab, "owned-hung", &[]);
    let _b = preempt_from_host_1(&lab);
    assert!(holds(&lab, 1));
}

/// The same with a re-add queued between the hung up script and the down
/// job (the master found its address removed under it and queued putting
/// it back; here the address came back meanwhile, as after lost
/// notifications): the newest job, the down job, decides, so the address
/// still goes at once, and the queued re-add adds nothing. (Before, the
/// re-add stopped the early release: the backup kept the address until
/// the up script's timeout.)
#[test]
fn a_readd_queued_behind_a_hung_up_script_does_not_keep_the_address() {
    if !privileged("a_readd_queued_behind_a_hung_up_script_does_not_keep_the_address") {
        return;
    }
    let lab = Lab::new(2);
    let (_dir, a) =
        master_with_a_hung_up_script(&lab, "owned-hung-readd", &["--script-timeout", "60"]);
    // Removed under the master: a re-add is queued behind the hung script.
    let mark = a.mark();
    ip(&lab, 0, &["addr", "del", OWNED, "dev", "eth0"]);
    a.wait_for_after(mark, "the removal noticed", 3 * SECOND, |l| {
        l.contains("10.99.0.100") && l.contains("removed")
    });
    ip(&lab, 0, &["addr", "add", OWNED, "dev", "eth0"]);
    let _b = preempt_from_host_1(&lab);
    std::thread::sleep(SECOND);
    assert!(
        !holds(&lab, 0),
        "the queued re-add put the address back on a backup"
    );
    assert!(holds(&lab, 1));
}

/// A device of the virtual MAC's name that is not ours refuses the start,
/// says why, and is left alone, even a macvlan with the very MAC (another
/// process's, for the same vhid on another interface): only our alias
/// marks a device as ours. (Before, any device with the MAC was deleted
/// as a leftover.)
#[test]
fn a_foreign_device_of_the_vmac_name_is_never_touched() {
    if !privileged("a_foreign_device_of_the_vmac_name_is_never_touched") {
        return;
    }
    let lab = Lab::new(1);
    let status = lab
        .command(0, "ip")
        .args(["link", "add", "ucarp7", "link", "eth0", "address", VMAC])
        .args(["type", "macvlan"])
        .status();
    assert!(status.unwrap().success());
    let before = ip(&lab, 0, &["-o", "link", "show", "ucarp7"]);
    let mut a = peers::start(&lab, 0, Impl::Ours, &["-a", OWNED, "--vmac"]);
    assert_eq!(a.wait_exit(5 * SECOND).and_then(|s| s.code()), Some(2));
    assert!(
        a.lines().iter().any(|l| l.contains(
            "a device named ucarp7 exists and is not vhid 7's virtual MAC device on eth0"
        )),
        "{:?}",
        a.lines()
    );
    let after = ip(&lab, 0, &["-o", "link", "show", "ucarp7"]);
    assert_eq!(before, after, "left alone");
}

/// Address notifications lost (the daemon's netlink buffer overflowed
/// while it was stopped) hide a removal of its address: the master adds
/// its addresses again anyway. (Before, the address stayed gone.)
#[test]
fn a_removal_hidden_by_lost_notifications_is_repaired() {
    if !privileged("a_removal_hidden_by_lost_notifications_is_repaired") {
        return;
    }
    let lab = Lab::new(1);
    let a = node(&lab, 0, "0");
    peers::wait_master(&a, 6 * SECOND);
    until("a holds the address", 2 * SECOND, || {
        holds(&lab, 0).then_some(())
    });
    a.signal(nix::sys::signal::Signal::SIGSTOP);
    // Thousands of address notifications fill the stopped daemon's
    // netlink buffer; the removal of its own address comes after them.
    let mut batch = String::from("link add fl0 type veth peer name fl1\n");
    for i in 0..4000u32 {
        batch += &format!("addr add 10.200.{}.{}/32 dev fl0\n", i / 250, i % 250 + 1);
    }
    batch += &format!("addr del {OWNED} dev eth0\n");
    let mut ip_batch = lab
        .command(0, "ip")
        .args(["-batch", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    ip_batch
        .stdin
        .take()
        .unwrap()
        .write_all(batch.as_bytes())
        .unwrap();
    assert!(ip_batch.wait().unwrap().success());
    assert!(!holds(&lab, 0));
    a.signal(nix::sys::signal::Signal::SIGCONT);
    until("a adds it back", 3 * SECOND, || {
        holds(&lab, 0).then_some(())
    });
    assert!(
        a.lines()
            .iter()
            .any(|l| l.contains("address notifications were lost")),
        "{:?}",
        a.lines()
    );
}

/// A leftover with another prefix (the configuration changed between a
/// crash and the restart) is removed at start too. (Before, only the
/// configured prefix matched, and the old one stayed for good.)
#[test]
fn a_leftover_with_another_prefix_is_removed() {
    if !privileged("a_leftover_with_another_prefix_is_removed") {
        return;
    }
    let lab = Lab::new(1);
    let status = lab
        .command(0, "ip")
        .args(["addr", "add", &format!("{VIP}/24"), "dev", "eth0"])
        .status();
    assert!(status.unwrap().success());
    let a = node(&lab, 0, "0");
    test_support::control::wait_state(&lab, 0, "BACKUP", 3 * SECOND);
    until("the /24 leftover is removed", 2 * SECOND, || {
        (!addresses(&lab, 0).contains(&format!("inet {VIP}/24"))).then_some(())
    });
    drop(a);
}

/// Adding the address fails at the takeover (here: another macvlan holds
/// the virtual MAC, so ours cannot come up): the master keeps trying, and
/// adds it once the cause is gone. (Before, it was logged and the master
/// went on announcing an address it did not have.)
#[test]
fn a_failed_add_is_tried_again() {
    if !privileged("a_failed_add_is_tried_again") {
        return;
    }
    let lab = Lab::new(1);
    let a = peers::start(&lab, 0, Impl::Ours, &["-a", OWNED, "--vmac"]);
    test_support::control::wait_state(&lab, 0, "BACKUP", 3 * SECOND);
    for args in [
        &[
            "link", "add", "squat", "link", "eth0", "address", VMAC, "type", "macvlan",
        ][..],
        &["link", "set", "squat", "up"][..],
    ] {
        assert!(lab.command(0, "ip").args(args).status().unwrap().success());
    }
    peers::wait_master(&a, 6 * SECOND);
    a.wait_for("the add failing", 3 * SECOND, |l| {
        l.contains("addresses not added")
    });
    let on_device = || ip(&lab, 0, &["-o", "-4", "addr", "show", "dev", "ucarp7"]);
    assert!(!on_device().contains(VIP));
    let status = lab.command(0, "ip").args(["link", "del", "squat"]).status();
    assert!(status.unwrap().success());
    until("a adds it on a retry", 5 * SECOND, || {
        on_device().contains(VIP).then_some(())
    });
}

/// With an owned address and an up script, the gratuitous ARP goes out
/// once the address is in place, not after the script (here one that
/// sleeps 5 s): clients come as soon as the address is there. (Before,
/// the announcement waited for the whole up script.)
#[test]
fn the_announcement_does_not_wait_for_the_up_script() {
    if !privileged("the_announcement_does_not_wait_for_the_up_script") {
        return;
    }
    let lab = Lab::new(1);
    let dir = test_support::scripts::Dir::new("owned-slow-up");
    let slow = dir.script("slow", "sleep 5\n");
    let capture = test_support::lab::Capture::start_filtered(&lab, "arp");
    let a = peers::start(&lab, 0, Impl::Ours, &["-a", OWNED, "-u", &slow]);
    peers::wait_master(&a, 6 * SECOND);
    std::thread::sleep(SECOND);
    let garps = capture
        .stop()
        .iter()
        .filter(|f| f.len() >= 42 && f[28..32] == [10, 99, 0, 100] && f[38..42] == [10, 99, 0, 100])
        .count();
    assert!(garps >= 1, "announced while the up script runs");
}
