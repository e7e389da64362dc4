//! What an outside audit of the daemon found, each as the operator met it:
//! the built `ucarp` in network namespaces (and, for syslog, a private
//! `/dev/log` in a mount namespace), with real scripts, qdiscs and
//! re-created interfaces. Root needed; CI runs them for real.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use test_support::lab::{privileged, Lab, Proc};
use test_support::peers::{self, status, status_count, SECOND, VIP};
use test_support::scripts::Dir;

/// `-i eth0 -s <host> -v 7 -p secret -a VIP -f none` and `extra`.
fn args(lab: &Lab, host: usize, extra: &[&str]) -> Vec<String> {
    let addr = lab.addr(host).to_string();
    let mut args: Vec<String> = [
        "-i", "eth0", "-s", &addr, "-v", "7", "-p", "secret", "-a", VIP,
    ]
    .map(str::to_string)
    .to_vec();
    if !extra.contains(&"-f") {
        args.extend(["-f".to_string(), "none".to_string()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn ucarp(lab: &Lab, host: usize, extra: &[&str]) -> Proc {
    let mut command = lab.command(host, env!("CARGO_BIN_EXE_ucarp"));
    command.args(args(lab, host, extra));
    Proc::spawn(&format!("h{host}"), command)
}

fn is_master(line: &str) -> bool {
    line.contains("Switching to state: MASTER")
}

/// Signal state of a script, as `/proc/self/status` shows it.
fn mask(status: &str, name: &str) -> u64 {
    let line = status
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no {name} in {status:?}"));
    u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
}

/// Started as a shell script's `&` or `nohup` would start it (stop signals
/// ignored), the daemon's scripts still start with an empty mask and
/// default dispositions, and a script's `trap … TERM` runs when the
/// timeout stops it.
#[test]
fn scripts_start_clean_even_when_the_daemon_was_started_with_signals_ignored() {
    if !privileged("scripts_start_clean") {
        return;
    }
    let lab = Lab::new(1);
    let dir = Dir::new("sigstate");
    let up = dir.script(
        "up",
        &format!(
            "grep -E '^Sig(Blk|Ign)' /proc/self/status > {out}\n\
             trap 'echo trapped >> {log}; exit 0' TERM\n\
             sleep 30 &\n\
             wait",
            out = dir.path("status").display(),
            log = dir.path("log").display()
        ),
    );
    let mut command = lab.command(0, "sh");
    let ours = args(
        &lab,
        0,
        &["-b", "0", "-k", "10", "-u", &up, "--script-timeout", "1"],
    );
    command
        .arg("-c")
        .arg("trap '' HUP INT QUIT TERM USR1 USR2; exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_ucarp"))
        .args(ours);
    let node = Proc::spawn("h0", command);
    node.wait_for("master", 5 * SECOND, is_master);
    let status = dir.wait_for("status", "SigIgn", 5 * SECOND);
    assert_eq!(mask(&status, "SigBlk:"), 0, "{status}");
    // Signals 1–31; glibc keeps its own two real-time signals to itself.
    assert_eq!(mask(&status, "SigIgn:") & 0x7fff_ffff, 0, "{status}");
    // The 1 s timeout sends SIGTERM to the script's group: its trap runs.
    dir.wait_for("log", "trapped", 5 * SECOND);
}

/// A `tbf rate 8bit` qdisc with a large limit stalls the interface's
/// transmit queue. The node keeps answering signals, counts the failed
/// sends, resumes when the queue drains, and stops on SIGTERM.
#[test]
fn a_stalled_transmit_queue_does_not_freeze_the_node() {
    if !privileged("a_stalled_transmit_queue_does_not_freeze_the_node") {
        return;
    }
    let lab = Lab::new(1);
    let mut node = ucarp(&lab, 0, &["-b", "0", "-k", "1"]);
    node.wait_for("master", 5 * SECOND, is_master);
    lab.tc(
        0,
        &[
            "qdisc",
            "add",
            "dev",
            "eth0",
            "root",
            "tbf",
            "rate",
            "8bit",
            "burst",
            "1600",
            "limit",
            "100000000",
        ],
    );
    // 256 adverts a second: the socket's send buffer fills within ~1 s.
    std::thread::sleep(3 * SECOND);
    let stalled = status(&node);
    assert!(status_count(&stalled, "send-errors") > 0, "{stalled}");
    lab.tc(0, &["qdisc", "del", "dev", "eth0", "root"]);
    std::thread::sleep(SECOND);
    let before = status_count(&status(&node), "sent");
    std::thread::sleep(SECOND);
    let after = status_count(&status(&node), "sent");
    assert!(
        after > before + 100,
        "sending did not resume: {before} -> {after}"
    );
    node.signal(Signal::SIGTERM);
    let exit = node.wait_exit(5 * SECOND);
    assert_eq!(exit.and_then(|s| s.code()), Some(0));
}

/// Runs `ucarp` in host's namespace and in a private mount namespace whose
/// `/dev` is a fresh tmpfs: the usual device nodes bound in, and `log` a
/// symlink to `socket`, the test's own syslog.
fn with_private_dev_log(lab: &Lab, host: usize, dir: &Dir, socket: &Path, extra: &[&str]) -> Proc {
    let dev = dir.path("dev");
    std::fs::create_dir_all(&dev).unwrap();
    let script = format!(
        "set -e\n\
         mount -t tmpfs tmpfs {dev}\n\
         for f in null zero random urandom; do touch {dev}/$f; mount --bind /dev/$f {dev}/$f; done\n\
         ln -s {socket} {dev}/log\n\
         mount --bind {dev} /dev\n\
         exec ip netns exec {ns} \"$@\"",
        dev = dev.display(),
        socket = socket.display(),
        ns = lab.ns(host)
    );
    let mut command = Command::new("unshare");
    command
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
            "sh",
        ])
        .arg(env!("CARGO_BIN_EXE_ucarp"))
        .args(args(lab, host, extra));
    Proc::spawn(&format!("h{host}"), command)
}

/// Datagrams waiting on a syslog socket, without blocking.
fn syslog_lines(socket: &UnixDatagram) -> Vec<String> {
    socket.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 4096];
    let mut lines = Vec::new();
    while let Ok(n) = socket.recv(&mut buf) {
        lines.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    lines
}

/// A syslog daemon that stops reading fills its socket; logging must not
/// stall the protocol: the backup still takes over when the master dies.
#[test]
fn a_syslog_that_stops_reading_does_not_stall_the_node() {
    if !privileged("a_syslog_that_stops_reading_does_not_stall_the_node") {
        return;
    }
    let lab = Lab::new(2);
    let dir = Dir::new("syslog-stall");
    let path = dir.path("log.sock");
    let syslog = UnixDatagram::bind(&path).unwrap();
    // Never read until the end: its queue (10 datagrams) fills at once.
    let mut master = ucarp(&lab, 1, &["-b", "0", "-k", "1"]);
    master.wait_for("master", 5 * SECOND, is_master);
    // -D: a debug line for every advert heard, 256 a second.
    let backup = with_private_dev_log(
        &lab,
        0,
        &dir,
        &path,
        &["-b", "0", "-k", "100", "-D", "-f", "daemon"],
    );
    backup.wait_for("backup", 5 * SECOND, |l| {
        l.contains("Switching to state: BACKUP")
    });
    std::thread::sleep(2 * SECOND);
    peers::kill9(&mut master);
    backup.wait_for("takeover", 3 * SECOND, is_master);
    let line = status(&backup);
    assert!(line.starts_with("LOG [INFO] MASTER on eth0 id 7"), "{line}");
    let lines = syslog_lines(&syslog);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("<31>ucarp[") && l.contains("advert from")),
        "the private /dev/log got nothing: {lines:?}"
    );
}

/// After the syslog daemon restarts (a new socket at the same path), lines
/// reach the new one.
#[test]
fn syslog_is_reconnected_after_a_restart() {
    if !privileged("syslog_is_reconnected_after_a_restart") {
        return;
    }
    let lab = Lab::new(1);
    let dir = Dir::new("syslog-restart");
    let path = dir.path("log.sock");
    let first = UnixDatagram::bind(&path).unwrap();
    let node = with_private_dev_log(
        &lab,
        0,
        &dir,
        &path,
        &["-b", "0", "-k", "10", "-f", "local3"],
    );
    node.wait_for("master", 5 * SECOND, is_master);
    let deadline = Instant::now() + 3 * SECOND;
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| is_master(l)) {
        assert!(Instant::now() < deadline, "syslog got {seen:?}");
        seen.extend(syslog_lines(&first));
        std::thread::sleep(Duration::from_millis(20));
    }
    // local3 (19) × 8 + warning (4) = 156.
    assert!(
        seen.iter().any(|l| l.starts_with("<156>ucarp[")),
        "{seen:?}"
    );
    // The syslog daemon restarts: its socket is closed, the path re-bound.
    drop(first);
    std::fs::remove_file(&path).unwrap();
    let second = UnixDatagram::bind(&path).unwrap();
    let deadline = Instant::now() + 5 * SECOND;
    loop {
        node.signal(Signal::SIGUSR1);
        std::thread::sleep(Duration::from_millis(300));
        let lines = syslog_lines(&second);
        if lines.iter().any(|l| l.contains("MASTER on eth0 id 7")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "nothing reached the restarted syslog: {lines:?}"
        );
    }
}

/// `--shutdown`: the down script finishes before the leave advertisement
/// goes out, so the backup's up script runs only after the address is gone.
#[test]
fn with_shutdown_the_leave_advert_waits_for_the_down_script() {
    if !privileged("with_shutdown_the_leave_advert_waits_for_the_down_script") {
        return;
    }
    let lab = Lab::new(2);
    let dir = Dir::new("shutdown-order");
    let log = dir.path("log");
    let down = dir.script(
        "down",
        &format!(
            "echo \"$UCARP_HOST down start\" >> {log}\nsleep 1.5\necho \"$UCARP_HOST down done\" >> {log}",
            log = log.display()
        ),
    );
    let up = dir.script(
        "up",
        &format!("echo \"$UCARP_HOST up\" >> {}", log.display()),
    );
    let start = |host: usize, extra: &[&str]| {
        let mut command = lab.command(host, "env");
        command
            .arg(format!("UCARP_HOST=h{host}"))
            .arg(env!("CARGO_BIN_EXE_ucarp"))
            .args(args(&lab, host, extra));
        Proc::spawn(&format!("h{host}"), command)
    };
    // Neutral (-n): no down script at start-up, only the one under test.
    let mut a = start(0, &["-n", "-z", "-k", "0", "-u", &up, "-d", &down]);
    a.wait_for("a master", 6 * SECOND, is_master);
    dir.wait_for("log", "h0 up", 2 * SECOND);
    // Master-down for b: 3 × 1 s + 100/256 s, longer than the down script.
    let b = start(1, &["-n", "-k", "100", "-u", &up, "-d", &down]);
    b.wait_for("b backup", 3 * SECOND, |l| {
        l.contains("Switching to state: BACKUP")
    });
    std::thread::sleep(SECOND);
    a.signal(Signal::SIGTERM);
    dir.wait_for("log", "h1 up", 3 * SECOND);
    let lines: Vec<String> = dir.read("log").lines().map(str::to_string).collect();
    assert_eq!(
        lines,
        ["h0 up", "h0 down start", "h0 down done", "h1 up"],
        "the backup took the address before the master released it"
    );
    let takeover = b.wait_for("b master", SECOND, is_master);
    assert!(takeover.contains("leave advertisement"), "{takeover}");
    assert_eq!(a.wait_exit(3 * SECOND).and_then(|s| s.code()), Some(0));
}

/// UCARP's takeover order: the gratuitous ARP goes out once the up script
/// has put the address in place.
#[test]
fn the_gratuitous_arp_follows_the_up_script() {
    if !privileged("the_gratuitous_arp_follows_the_up_script") {
        return;
    }
    let lab = Lab::new(1);
    let dir = Dir::new("arp-order");
    let up = dir.script("up", "sleep 0.5");
    let node = ucarp(&lab, 0, &["-b", "0", "-k", "10", "-D", "-u", &up]);
    node.wait_for("ARP", 5 * SECOND, |l| l.contains("gratuitous ARP for"));
    node.wait_for("the up script", 5 * SECOND, |l| {
        l.contains("up script finished")
    });
    let lines = node.lines();
    let position = |what: &str| lines.iter().position(|l| l.contains(what)).unwrap();
    assert!(
        position("up script finished") < position("gratuitous ARP for"),
        "{lines:#?}"
    );
}

/// Stopping does not wait out a hanging script's timeout: it is signalled
/// at once and the `--shutdown` down script runs.
#[test]
fn stopping_interrupts_a_hanging_up_script() {
    if !privileged("stopping_interrupts_a_hanging_up_script") {
        return;
    }
    let lab = Lab::new(1);
    let dir = Dir::new("stop-hanging");
    let up = dir.script("up", "sleep 300");
    let down = dir.script(
        "down",
        &format!("echo down >> {}", dir.path("log").display()),
    );
    let mut node = ucarp(
        &lab,
        0,
        &["-n", "-z", "-b", "0", "-k", "10", "-u", &up, "-d", &down],
    );
    node.wait_for("up script", 5 * SECOND, |l| l.contains("running up script"));
    node.signal(Signal::SIGTERM);
    let exit = node.wait_exit(10 * SECOND);
    assert_eq!(exit.and_then(|s| s.code()), Some(0), "{:#?}", node.lines());
    assert_eq!(dir.read("log"), "down\n");
    node.wait_for("the cut", SECOND, |l| {
        l.contains("up script") && l.contains("cut short")
    });
}

/// A second SIGTERM while the down script hangs stops the daemon at once,
/// kills the script's group, and says the address may still be here
/// (exit status 2, no leave advert).
#[test]
fn a_second_stop_signal_forces_the_exit() {
    if !privileged("a_second_stop_signal_forces_the_exit") {
        return;
    }
    let lab = Lab::new(1);
    let dir = Dir::new("second-signal");
    let down = dir.script(
        "down",
        &format!("echo started >> {}\nsleep 300", dir.path("log").display()),
    );
    let mut node = ucarp(&lab, 0, &["-n", "-z", "-b", "0", "-k", "10", "-d", &down]);
    node.wait_for("master", 5 * SECOND, is_master);
    node.signal(Signal::SIGTERM);
    dir.wait_for("log", "started", 3 * SECOND);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        node.wait_exit(Duration::ZERO).is_none(),
        "waits for the down script"
    );
    node.signal(Signal::SIGTERM);
    let exit = node.wait_exit(5 * SECOND);
    // Exit status 2: the down script did not finish, so the address may
    // still be here.
    assert_eq!(exit.and_then(|s| s.code()), Some(2), "{:#?}", node.lines());
    node.wait_for("the warning", SECOND, |l| {
        l.contains("the virtual address may still be configured on this host")
    });
    let deadline = Instant::now() + 3 * SECOND;
    while !lab.pids(0).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the down script's group survived"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// With `-S`, an interface deleted and created again (new index) is
/// noticed: the sockets are re-opened, the master takes its address again
/// (the old interface took it along), and a peer hears it.
#[test]
fn ignoring_link_state_still_follows_a_recreated_interface() {
    if !privileged("ignoring_link_state_still_follows_a_recreated_interface") {
        return;
    }
    let lab = Lab::new(2);
    let dir = Dir::new("recreate");
    let up = dir.script("up", &format!("echo up >> {}", dir.path("log").display()));
    let a = ucarp(&lab, 0, &["-S", "-n", "-k", "0", "-u", &up]);
    a.wait_for("a master", 6 * SECOND, is_master);
    dir.wait_for("log", "up", 2 * SECOND);
    let mark = a.mark();
    lab.recreate_interface(0);
    a.wait_for_after(mark, "re-opened", 10 * SECOND, |l| {
        l.contains("interface eth0: re-created") && l.contains("sockets re-opened")
    });
    a.wait_for_after(mark, "reset", SECOND, |l| {
        l.contains("Switching to state: BACKUP") && l.contains("interface re-created")
    });
    a.wait_for_after(mark, "a master again", 6 * SECOND, is_master);
    dir.wait_for("log", "up\nup\n", 2 * SECOND);
    // b waits 3.4 s for a master; a's adverts must keep it backup.
    let b = ucarp(&lab, 1, &["-S", "-k", "100"]);
    b.wait_for("b backup", 3 * SECOND, |l| {
        l.contains("Switching to state: BACKUP")
    });
    std::thread::sleep(5 * SECOND);
    assert!(
        !b.lines().iter().any(|l| is_master(l)),
        "b took over: a's adverts are lost after the interface came back"
    );
}

/// Stop signals are answered while the daemon waits for its last scripts:
/// here the interface vanished and the down script hangs.
#[test]
fn stop_signals_are_answered_while_the_last_scripts_run() {
    if !privileged("stop_signals_are_answered_while_the_last_scripts_run") {
        return;
    }
    let lab = Lab::new(1);
    let dir = Dir::new("gone-hanging");
    let down = dir.script(
        "down",
        &format!("echo started >> {}\nsleep 300", dir.path("log").display()),
    );
    let mut node = ucarp(&lab, 0, &["-n", "-b", "0", "-k", "10", "-d", &down]);
    node.wait_for("master", 5 * SECOND, is_master);
    let status = Command::new("ip")
        .args(["-n", &lab.bridge_ns(), "link", "del", "p0"])
        .status()
        .unwrap();
    assert!(status.success());
    node.wait_for("gone", 10 * SECOND, |l| l.contains("disappeared"));
    dir.wait_for("log", "started", 3 * SECOND);
    node.signal(Signal::SIGTERM);
    std::thread::sleep(SECOND);
    node.signal(Signal::SIGTERM);
    let exit = node.wait_exit(5 * SECOND);
    assert_eq!(exit.and_then(|s| s.code()), Some(2), "{:#?}", node.lines());
}

/// A flapping link is not a flood of log lines: one line per kind, then
/// summaries.
#[test]
fn link_flaps_are_rate_limited_in_the_log() {
    if !privileged("link_flaps_are_rate_limited_in_the_log") {
        return;
    }
    let lab = Lab::new(1);
    let node = ucarp(&lab, 0, &["-k", "0"]);
    node.wait_for("master", 6 * SECOND, is_master);
    for _ in 0..15 {
        lab.set_cable(0, false);
        std::thread::sleep(Duration::from_millis(60));
        lab.set_cable(0, true);
        std::thread::sleep(Duration::from_millis(60));
    }
    std::thread::sleep(SECOND);
    let link_lines: Vec<String> = node
        .lines()
        .into_iter()
        .filter(|l| l.contains("interface eth0: link"))
        .collect();
    assert!(
        (1..=2).contains(&link_lines.len()),
        "30 link changes logged as {} lines: {link_lines:#?}",
        link_lines.len()
    );
}

/// `-B` opens everything that can fail before it detaches: without
/// CAP_NET_RAW the raw socket is refused and the exit status says so.
#[test]
fn daemonize_reports_startup_failures() {
    if !privileged("daemonize_reports_startup_failures") {
        return;
    }
    let lab = Lab::new(1);
    let output = lab
        .command(0, "setpriv")
        .args(["--bounding-set=-net_raw", "--inh-caps=-net_raw", "--"])
        .arg(env!("CARGO_BIN_EXE_ucarp"))
        .args(args(&lab, 0, &["-B"]))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("permission denied"), "{stderr}");
    assert!(lab.pids(0).is_empty(), "a daemon was left running");
}

/// A thread that cannot be started is an error with a message and exit
/// status 2, not a panic.
#[test]
fn a_thread_that_cannot_start_is_an_error_not_a_panic() {
    if !privileged("a_thread_that_cannot_start_is_an_error_not_a_panic") {
        return;
    }
    let lab = Lab::new(1);
    // Every new thread asks for a 1 PiB stack: more than the address space
    // (128 TiB on x86-64), whatever the overcommit setting.
    let output = lab
        .command(0, "env")
        .arg(format!("RUST_MIN_STACK={}", 1u64 << 50))
        .arg(env!("CARGO_BIN_EXE_ucarp"))
        .args(args(&lab, 0, &[]))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot start the"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
