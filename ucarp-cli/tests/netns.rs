//! The built `ucarp` binary in network namespaces, started as Debian's
//! ifupdown hook starts it: election, scripts and their arguments,
//! SIGUSR1/SIGUSR2/SIGTERM, passfile. Runs as root (for real in CI).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use test_support::lab::{privileged, Lab, Proc};

const VIP: &str = "10.99.0.100";
const SECOND: Duration = Duration::from_secs(1);

/// A scratch directory with up/down scripts that append
/// `<up|down> <args…>` to `<dir>/<host>.log`.
struct Scripts {
    dir: PathBuf,
}

impl Scripts {
    fn new(test: &str) -> Scripts {
        let dir = std::env::temp_dir().join(format!("ucarp-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for kind in ["up", "down"] {
            let path = dir.join(kind);
            std::fs::write(
                &path,
                format!(
                    "#!/bin/sh\necho \"{kind} $*\" >> \"{}/$UCARP_HOST.log\"\n",
                    dir.display()
                ),
            )
            .unwrap();
            Command::new("chmod")
                .arg("755")
                .arg(&path)
                .status()
                .unwrap();
        }
        Scripts { dir }
    }

    fn script(&self, kind: &str) -> String {
        self.dir.join(kind).display().to_string()
    }

    fn log(&self, host: usize) -> Vec<String> {
        std::fs::read_to_string(self.dir.join(format!("h{host}.log")))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn wait_for(&self, host: usize, line: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.log(host).iter().any(|l| l == line) {
            assert!(
                Instant::now() < deadline,
                "host {host}: no {line:?} within {timeout:?}; log: {:?}",
                self.log(host)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Scripts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ucarp_command(lab: &Lab, host: usize, args: &[String]) -> Command {
    let mut command = lab.command(host, "env");
    command
        .arg(format!("UCARP_HOST=h{host}"))
        .arg(env!("CARGO_BIN_EXE_ucarp"))
        .args(args);
    command
}

/// The ifupdown hook's arguments: `-i IF -s ADDR -B -z -v VID -p PASS -a VIP
/// -u UP -d DOWN` plus the optional `-P -k -b -r -M -x`.
fn ifupdown_args(lab: &Lab, host: usize, scripts: &Scripts, skew: &str) -> Vec<String> {
    [
        "-i",
        "eth0",
        "-s",
        &lab.addr(host).to_string(),
        "-B",
        "-z",
        "-v",
        "7",
        "-p",
        "secret",
        "-a",
        VIP,
        "-u",
        &scripts.script("up"),
        "-d",
        &scripts.script("down"),
        "-P",
        "-k",
        skew,
        "-b",
        "0",
        "-r",
        "3",
        "-M",
        "-x",
        "extra",
    ]
    .map(str::to_string)
    .to_vec()
}

fn signal_all(lab: &Lab, host: usize, signal: Signal) {
    for pid in lab.pids(host) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
    }
}

fn wait_until(what: &str, timeout: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "{what} within {timeout:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn started_as_debian_ifupdown_does() {
    if !privileged("started_as_debian_ifupdown_does") {
        return;
    }
    let lab = Lab::new(2);
    let scripts = Scripts::new("ifupdown");
    for (host, skew) in [(0, "20"), (1, "60")] {
        let status = ucarp_command(&lab, host, &ifupdown_args(&lab, host, &scripts, skew))
            .status()
            .unwrap();
        assert!(status.success(), "daemonizing parent exits 0");
    }
    // Both daemons detached and run in their namespaces.
    wait_until("both daemons running", 2 * SECOND, || {
        !lab.pids(0).is_empty() && !lab.pids(1).is_empty()
    });
    let down = format!("down eth0 {VIP} extra");
    let up = format!("up eth0 {VIP} extra");
    scripts.wait_for(0, &up, 5 * SECOND);
    scripts.wait_for(1, &down, 5 * SECOND);
    std::thread::sleep(SECOND);
    assert_eq!(
        scripts.log(1),
        vec![down.clone()],
        "host 1 must stay backup"
    );

    signal_all(&lab, 0, Signal::SIGKILL);
    scripts.wait_for(1, &up, 3 * SECOND);

    // SIGTERM with -z: down script, then exit.
    signal_all(&lab, 1, Signal::SIGTERM);
    wait_until("host 1 exits", 5 * SECOND, || lab.pids(1).is_empty());
    assert_eq!(
        scripts.log(1),
        vec![down.clone(), up, down],
        "down script on shutdown"
    );
}

fn foreground(lab: &Lab, host: usize, scripts: &Scripts, extra: &[&str]) -> Proc {
    let mut args: Vec<String> = [
        "-i",
        "eth0",
        "-s",
        &lab.addr(host).to_string(),
        "-v",
        "7",
        "-a",
        VIP,
        "-u",
        &scripts.script("up"),
        "-d",
        &scripts.script("down"),
        "-f",
        "none",
    ]
    .map(str::to_string)
    .to_vec();
    args.extend(extra.iter().map(|s| s.to_string()));
    Proc::spawn(&format!("h{host}"), ucarp_command(lab, host, &args))
}

fn is_master(line: &str) -> bool {
    line.contains("Switching to state: MASTER")
}

fn passfile(dir: &Path) -> String {
    let path = dir.join("pass");
    std::fs::write(&path, "secret\n").unwrap();
    path.display().to_string()
}

#[test]
fn signals_and_passfile() {
    if !privileged("signals_and_passfile") {
        return;
    }
    let lab = Lab::new(2);
    let scripts = Scripts::new("signals");
    let pass = passfile(&scripts.dir);
    let mut a = foreground(&lab, 0, &scripts, &["-o", &pass, "-b", "1", "-k", "0"]);
    let mut b = foreground(&lab, 1, &scripts, &["-p", "secret", "-b", "1", "-k", "50"]);
    a.wait_for("a master", 6 * SECOND, is_master);
    b.wait_for("--pass warning", SECOND, |l| {
        l.contains("visible to other local users")
    });
    std::thread::sleep(2 * SECOND);

    // SIGUSR1: one status line; b authenticates a (passfile vs --pass).
    b.signal(Signal::SIGUSR1);
    let status = b.wait_for("status", 2 * SECOND, |l| l.contains("BACKUP on eth0 id 7"));
    let accepted: u64 = status
        .split("accepted ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(accepted >= 2, "{status}");
    assert!(!status.contains("bad_digest"), "{status}");
    assert!(
        !b.lines().iter().any(|l| l.contains("secret")),
        "password in the logs"
    );

    // SIGUSR2 on the master: it steps down (down script), b takes over.
    let mark = a.mark();
    a.signal(Signal::SIGUSR2);
    a.wait_for_after(mark, "step down", 2 * SECOND, |l| {
        l.contains("asked to step down")
    });
    b.wait_for("b master", 6 * SECOND, is_master);
    scripts.wait_for(0, &format!("down eth0 {VIP}"), 2 * SECOND);

    // SIGTERM on the master (no -z): leave advert, a takes over at once,
    // b exits 0 without running its down script.
    // The up script runs after the state change is logged: wait for it.
    scripts.wait_for(1, &format!("up eth0 {VIP}"), 2 * SECOND);
    let b_log_before = scripts.log(1);
    let mark = a.mark();
    let sent = Instant::now();
    b.signal(Signal::SIGTERM);
    a.wait_for_after(mark, "a master again", 3 * SECOND, is_master);
    assert!(
        sent.elapsed() < Duration::from_millis(1500),
        "not an immediate handover"
    );
    assert_eq!(b.wait_exit(5 * SECOND).and_then(|s| s.code()), Some(0));
    assert_eq!(scripts.log(1), b_log_before, "no down script without -z");
    let takeover = a
        .lines()
        .into_iter()
        .skip(mark)
        .find(|l| is_master(l))
        .unwrap();
    assert!(takeover.contains("leave advertisement"), "{takeover}");
    a.kill9();
}

/// Debian's own hook (`/etc/network/if-up.d/ucarp` from the `ucarp`
/// package), unchanged but for its `UCARP=` path, starts ours from the
/// `ucarp-*` stanza variables ifupdown would export.
#[test]
fn debian_ifupdown_hook_starts_ours() {
    if !privileged("debian_ifupdown_hook_starts_ours") {
        return;
    }
    let hook = Path::new("/etc/network/if-up.d/ucarp");
    if !hook.exists() {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "{} missing: .ci/run installs the ucarp package",
            hook.display()
        );
        eprintln!(
            "SKIPPED debian_ifupdown_hook_starts_ours: {} not installed",
            hook.display()
        );
        return;
    }
    let ours = env!("CARGO_BIN_EXE_ucarp");
    let original = std::fs::read_to_string(hook).unwrap();
    let patched = original.replace("UCARP=/usr/sbin/ucarp", &format!("UCARP={ours}"));
    assert_ne!(
        patched, original,
        "the hook no longer sets UCARP=/usr/sbin/ucarp"
    );
    let scripts = Scripts::new("hook");
    let hook_copy = scripts.dir.join("if-up-ucarp");
    std::fs::write(&hook_copy, patched).unwrap();
    let lab = Lab::new(1);
    let status = lab
        .command(0, "env")
        .args([
            "IFACE=eth0".to_string(),
            format!("IF_ADDRESS={}", lab.addr(0)),
            "IF_UCARP_VID=7".to_string(),
            format!("IF_UCARP_VIP={VIP}"),
            "IF_UCARP_PASSWORD=secret".to_string(),
            format!("IF_UCARP_UPSCRIPT={}", scripts.script("up")),
            format!("IF_UCARP_DOWNSCRIPT={}", scripts.script("down")),
            "IF_UCARP_MASTER=yes".to_string(),
            "IF_UCARP_ADVSKEW=20".to_string(),
            "IF_UCARP_ADVBASE=0".to_string(),
            "IF_UCARP_DEADRATIO=3".to_string(),
            "IF_UCARP_NOMCAST=no".to_string(),
            "IF_UCARP_XPARAM=extra".to_string(),
            "UCARP_HOST=h0".to_string(),
            "sh".to_string(),
        ])
        .arg(&hook_copy)
        .status()
        .unwrap();
    assert!(status.success(), "the hook failed: {status}");
    wait_until("the daemon runs", 2 * SECOND, || !lab.pids(0).is_empty());
    scripts.wait_for(0, &format!("up eth0 {VIP} extra"), 5 * SECOND);
    signal_all(&lab, 0, Signal::SIGTERM);
    wait_until("the daemon exits", 5 * SECOND, || lab.pids(0).is_empty());
    // -z from the hook: a down script at start-up and one on shutdown.
    let down = format!("down eth0 {VIP} extra");
    let downs = scripts.log(0).iter().filter(|l| **l == down).count();
    assert_eq!(downs, 2, "{:?}", scripts.log(0));
}

/// A source address that is not on the interface is a warning, not an
/// error (it may be added later), as with UCARP.
#[test]
fn source_address_not_on_the_interface_is_a_warning() {
    if !privileged("source_address_not_on_the_interface_is_a_warning") {
        return;
    }
    let lab = Lab::new(1);
    let args: Vec<String> = [
        "-i",
        "eth0",
        "-s",
        "10.99.0.77",
        "-v",
        "7",
        "-p",
        "secret",
        "-a",
        VIP,
        "-f",
        "none",
    ]
    .map(str::to_string)
    .to_vec();
    let node = Proc::spawn("h0", ucarp_command(&lab, 0, &args));
    node.wait_for("the warning", 2 * SECOND, |l| {
        l.contains("--srcip (-s): 10.99.0.77 is not an address of eth0")
    });
    node.wait_for("the node running anyway", 5 * SECOND, |l| {
        l.contains("Switching to state: BACKUP")
    });
}

/// SIGINT, SIGQUIT and SIGHUP stop the daemon cleanly too, like SIGTERM.
#[test]
fn every_stop_signal_exits_cleanly() {
    if !privileged("every_stop_signal_exits_cleanly") {
        return;
    }
    for signal in [Signal::SIGINT, Signal::SIGQUIT, Signal::SIGHUP] {
        let lab = Lab::new(1);
        let scripts = Scripts::new(&format!("stop-{signal}"));
        let mut node = foreground(
            &lab,
            0,
            &scripts,
            &["-p", "secret", "-b", "0", "-k", "20", "-z"],
        );
        node.wait_for("master", 5 * SECOND, is_master);
        scripts.wait_for(0, &format!("up eth0 {VIP}"), 2 * SECOND);
        node.signal(signal);
        let status = node.wait_exit(5 * SECOND);
        assert_eq!(status.and_then(|s| s.code()), Some(0), "{signal}");
        node.wait_for("shutdown log", SECOND, |l| {
            l.contains(&format!("{signal}: shutting down"))
        });
        let downs = scripts
            .log(0)
            .iter()
            .filter(|l| l.starts_with("down "))
            .count();
        assert_eq!(downs, 2, "{signal}: start-up and -z shutdown down scripts");
    }
}

/// Several `-a`: the digest covers them all (a peer with a different set
/// is rejected), scripts run once per address in the order given with
/// UCARP's arguments and the whole virtual host in their environment, and
/// every address is announced by gratuitous ARP.
#[test]
fn several_addresses_per_vhid() {
    if !privileged("several_addresses_per_vhid") {
        return;
    }
    let lab = Lab::new(3);
    let scripts = Scripts::new("several");
    let log = scripts.dir.join("env.log");
    let up = scripts.dir.join("up-env");
    std::fs::write(
        &up,
        format!(
            "#!/bin/sh\necho \"$UCARP_HOST $UCARP_STATE $1 $2 [$UCARP_ADDRESSES] $UCARP_VHID $UCARP_INTERFACE\" >> {}\n",
            log.display()
        ),
    )
    .unwrap();
    Command::new("chmod").arg("755").arg(&up).status().unwrap();
    let addrs = ["10.99.0.102", "10.99.0.100", "10.99.0.101"];
    let start = |host: usize, addrs: &[&str], skew: &str| {
        let mut args: Vec<String> = [
            "-i",
            "eth0",
            "-s",
            &lab.addr(host).to_string(),
            "-v",
            "7",
            "-p",
            "secret",
            "-f",
            "none",
            "-n",
            "-D",
            "-b",
            "0",
            "-k",
            skew,
            "-u",
        ]
        .map(str::to_string)
        .to_vec();
        args.push(up.display().to_string());
        for a in addrs {
            args.extend(["-a".to_string(), a.to_string()]);
        }
        Proc::spawn(&format!("h{host}"), ucarp_command(&lab, host, &args))
    };
    let a = start(0, &addrs, "10");
    a.wait_for("a master", 5 * SECOND, is_master);
    let b = start(1, &["10.99.0.100", "10.99.0.101", "10.99.0.102"], "50");
    // Same set in another order: same digest, so b stays backup.
    b.wait_for("b backup", 3 * SECOND, |l| {
        l.contains("Switching to state: BACKUP")
    });
    let c = start(2, &addrs[..2], "60");
    c.wait_for("c rejects a's adverts", 3 * SECOND, |l| {
        l.contains("bad digest")
    });
    std::thread::sleep(SECOND);
    assert!(!b.lines().iter().any(|l| is_master(l)), "b took over");
    let deadline = Instant::now() + 3 * SECOND;
    let lines = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        // c cannot authenticate a and runs its own election: only h0 here.
        let lines: Vec<String> = text
            .lines()
            .filter(|l| l.starts_with("h0 "))
            .map(str::to_string)
            .collect();
        if lines.len() >= 3 || Instant::now() > deadline {
            break lines;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let all = "[10.99.0.102 10.99.0.100 10.99.0.101] 7 eth0";
    assert_eq!(
        lines,
        addrs
            .iter()
            .map(|a| format!("h0 MASTER eth0 {a} {all}"))
            .collect::<Vec<_>>(),
        "one run per address, in the order given"
    );
    for addr in addrs {
        a.wait_for("an ARP per address", SECOND, |l| {
            l.contains(&format!("gratuitous ARP for {addr}"))
        });
    }
}
