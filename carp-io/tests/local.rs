//! carp-io parts that need no privileges: script hooks, rate-limited logs,
//! error messages.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use carp_engine::{Hook, Reason, State, Time, Transition};
use carp_io::ratelimit::RateLimitedLog;
use carp_io::{HookDone, Hooks, IoError, ScriptConfig, ScriptHooks};

/// Captures log lines so tests can count them.
struct Capture(Mutex<Vec<String>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        self.0
            .lock()
            .unwrap()
            .push(format!("{} {}", record.level(), record.args()));
    }
    fn flush(&self) {}
}

static LOGS: Capture = Capture(Mutex::new(Vec::new()));

fn logs_matching(pattern: &str) -> Vec<String> {
    let _ = log::set_logger(&LOGS);
    log::set_max_level(log::LevelFilter::Debug);
    LOGS.0
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains(pattern))
        .cloned()
        .collect()
}

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::process::Command::new("chmod")
        .arg("755")
        .arg(&path)
        .status()
        .unwrap();
    path
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("carp-io-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn transition(to: State, hook: Hook) -> Transition {
    Transition {
        at: Time::ZERO,
        from: if to == State::Master {
            State::Backup
        } else {
            State::Master
        },
        to,
        reason: Reason::StepDown,
        hook: Some(hook),
    }
}

fn scripts(up: &Path, down: &Path, timeout: Duration) -> ScriptHooks {
    scripts_for(3, up, down, timeout)
}

/// Script hooks logging as `vhid`: tests run in parallel and share the log
/// capture, so each counts lines of its own vhid.
fn scripts_for(vhid: u8, up: &Path, down: &Path, timeout: Duration) -> ScriptHooks {
    ScriptHooks::new(ScriptConfig {
        up: Some(up.to_path_buf()),
        down: Some(down.to_path_buf()),
        interface: "eth9".into(),
        addresses: vec!["10.0.0.100".into()],
        xparam: Some("x y".into()),
        timeout,
        vhid,
        managed: Vec::new(),
        vmac: None,
    })
    .expect("starting the script thread")
}

/// Queues `hook` and returns whether its action has finished, as the node
/// sees it.
fn queue(hooks: &mut ScriptHooks, to: State, hook: Hook) -> impl Fn() -> bool {
    let (done, finished) = HookDone::pair();
    hooks.transition(&transition(to, hook), done);
    move || finished.load(std::sync::atomic::Ordering::Acquire)
}

#[test]
fn scripts_run_in_order_with_ucarp_arguments_and_never_block_the_caller() {
    let _ = logs_matching("");
    let dir = temp_dir("order");
    let log = dir.join("log");
    let up = script(
        &dir,
        "up",
        &format!("sleep 0.3; echo \"up $*\" >> {}", log.display()),
    );
    let down = script(
        &dir,
        "down",
        &format!("echo \"down $*\" >> {}", log.display()),
    );
    let mut hooks = scripts(&up, &down, Duration::from_secs(10));
    let started = Instant::now();
    let up_done = queue(&mut hooks, State::Master, Hook::Up);
    let down_done = queue(&mut hooks, State::Backup, Hook::Down);
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "transition() blocked"
    );
    assert!(!up_done(), "the up script cannot have finished yet");
    hooks.finish();
    assert!(up_done() && down_done(), "finished scripts say so");
    let lines = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        lines, "up eth9 10.0.0.100 x y\ndown eth9 10.0.0.100 x y\n",
        "down overtook up"
    );
    assert!(!logs_matching("vhid 3 on eth9: up script finished").is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_script_past_its_timeout_is_killed_and_logged() {
    let _ = logs_matching("");
    let dir = temp_dir("timeout");
    let marker = dir.join("survived");
    let up = script(&dir, "up", &format!("sleep 20; touch {}", marker.display()));
    let down = script(&dir, "down", "exit 3");
    let mut hooks = scripts(&up, &down, Duration::from_millis(300));
    let started = Instant::now();
    let _ = queue(&mut hooks, State::Master, Hook::Up);
    let _ = queue(&mut hooks, State::Backup, Hook::Down);
    hooks.finish();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the hung script was not killed"
    );
    assert!(!marker.exists());
    assert_eq!(
        logs_matching("vhid 3 on eth9: up script")
            .iter()
            .filter(|l| l.contains("ran over its 0.3s timeout; its process group was killed"))
            .count(),
        1
    );
    assert_eq!(
        logs_matching("vhid 3 on eth9: down script failed: exit status: 3").len(),
        1
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn alive(pid: i32) -> bool {
    // A zombie is dead for our purpose: /proc/PID/stat says state Z.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

fn read_pid(path: &Path) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(pid) = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "{} never written",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The timeout stops the script's whole process group: what it started in
/// the background dies with it.
#[test]
fn a_timed_out_script_is_killed_with_its_children() {
    let _ = logs_matching("");
    let dir = temp_dir("group");
    let pidfile = dir.join("child.pid");
    let up = script(
        &dir,
        "up",
        &format!("sleep 300 &\necho $! > {}\nwait", pidfile.display()),
    );
    let mut hooks = scripts_for(41, &up, &up, Duration::from_millis(300));
    let _ = queue(&mut hooks, State::Master, Hook::Up);
    let child = read_pid(&pidfile);
    hooks.finish();
    let deadline = Instant::now() + Duration::from_secs(3);
    while alive(child) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !alive(child),
        "the script's background child {child} survived"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Stopping signals the running script at once (no wait for its timeout),
/// skips what was queued behind it, and still runs the newest action.
#[test]
fn interrupt_cuts_the_running_script_and_runs_only_the_last_queued() {
    let _ = logs_matching("");
    let dir = temp_dir("interrupt");
    let log = dir.join("log");
    let pidfile = dir.join("child.pid");
    let up = script(
        &dir,
        "up",
        &format!(
            "echo \"up $$\" >> {log}\nsleep 300 &\necho $! > {pid}\nwait",
            log = log.display(),
            pid = pidfile.display()
        ),
    );
    let down = script(&dir, "down", &format!("echo down >> {}", log.display()));
    let mut hooks = scripts_for(42, &up, &down, Duration::from_secs(60));
    let _ = queue(&mut hooks, State::Master, Hook::Up);
    let child = read_pid(&pidfile);
    // Queued behind the hung up script: skipped once stopping.
    let skipped = queue(&mut hooks, State::Master, Hook::Up);
    let started = Instant::now();
    hooks.interrupt();
    let last = queue(&mut hooks, State::Init, Hook::Down);
    hooks.finish();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "waited {:?} for a script cut short",
        started.elapsed()
    );
    assert!(skipped() && last());
    assert!(!alive(child), "the cut script's child survived");
    let lines = std::fs::read_to_string(&log).unwrap();
    assert_eq!(lines.lines().filter(|l| l.starts_with("up")).count(), 1);
    assert!(lines.ends_with("down\n"), "{lines}");
    assert_eq!(
        logs_matching("vhid 42 on eth9: stopping; up script").len(),
        2,
        "{:?}",
        logs_matching("vhid 42")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A second stop: what runs is killed and nothing more starts.
#[test]
fn abandon_kills_the_running_script_and_runs_nothing_more() {
    let dir = temp_dir("abandon");
    let log = dir.join("log");
    let down = script(
        &dir,
        "down",
        &format!("echo down >> {}\nsleep 300", log.display()),
    );
    let mut hooks = scripts_for(43, &down, &down, Duration::from_secs(60));
    let _ = queue(&mut hooks, State::Backup, Hook::Down);
    let _ = queue(&mut hooks, State::Backup, Hook::Down);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !log.exists() {
        assert!(Instant::now() < deadline, "the script never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    let started = Instant::now();
    hooks.abandon();
    hooks.finish();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "down\n");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Scripts start with an empty signal mask and default dispositions, even
/// when the daemon blocks or ignores signals: `trap … TERM` works in them,
/// and services they start can be stopped.
#[test]
fn scripts_start_with_a_clean_signal_state() {
    let dir = temp_dir("sigstate");
    let out = dir.join("status");
    let up = script(
        &dir,
        "up",
        &format!(
            "grep -E '^Sig(Blk|Ign)' /proc/self/status > {}",
            out.display()
        ),
    );
    // As the daemon does: the stop signals blocked before threads start, so
    // the script thread inherits the mask; and some ignored, as by nohup or
    // a shell's `&`.
    let blocked: nix::sys::signal::SigSet = [
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGUSR1,
    ]
    .into_iter()
    .collect();
    let status = std::thread::spawn(move || {
        blocked.thread_block().unwrap();
        set_sighup(nix::sys::signal::SigHandler::SigIgn);
        let mut hooks = scripts_for(44, &up, &up, Duration::from_secs(10));
        let _ = queue(&mut hooks, State::Master, Hook::Up);
        hooks.finish();
        set_sighup(nix::sys::signal::SigHandler::SigDfl);
        std::fs::read_to_string(&out).unwrap()
    })
    .join()
    .unwrap();
    let mask = |name: &str| {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in {status}"));
        u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
    };
    // Rust's std already empties the mask when it spawns; the reset is
    // ours too, and this checks it stays so.
    assert_eq!(mask("SigBlk:"), 0, "{status}");
    // Bits of signals 1–31; glibc keeps its own two real-time ones.
    assert_eq!(mask("SigIgn:") & 0x7fff_ffff, 0, "{status}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[allow(unsafe_code)] // signal(2) in a test: see SAFETY
fn set_sighup(handler: nix::sys::signal::SigHandler) {
    // SAFETY: sets SIGHUP to SIG_IGN or SIG_DFL, which installs no handler
    // code; no test of this binary sends SIGHUP.
    unsafe {
        nix::sys::signal::signal(nix::sys::signal::Signal::SIGHUP, handler).unwrap();
    }
}

#[test]
fn rejection_logs_are_bounded_under_a_flood() {
    let _ = logs_matching("");
    let mut log = RateLimitedLog::rejections(&"vhid 77", Duration::from_secs(60));
    let start = Instant::now();
    for i in 0..100_000u32 {
        let now = start + Duration::from_micros(u64::from(i) * 10); // 1 s of flood
        log.record(now, "bad_digest", || format!("forged #{i} from 10.0.0.66"));
        log.record(now, "bad_ttl", || "TTL 64".into());
    }
    assert_eq!(logs_matching("vhid 77:").len(), 2, "one line per cause");
    // A minute later: one summary per cause with the count.
    log.flush(start + Duration::from_secs(61));
    let summaries = logs_matching("vhid 77: 99999 more packets rejected");
    assert_eq!(summaries.len(), 2, "{summaries:?}");
    assert!(summaries
        .iter()
        .any(|l| l.contains("(bad_digest)") && l.contains("forged #")));
    assert_eq!(log.next_flush(), None);
}

/// Link flaps are events like rejections: the first of each kind in full,
/// the rest summarised; after a quiet period the next one is in full again.
#[test]
fn event_logs_are_bounded_and_speak_again_after_a_quiet_period() {
    let _ = logs_matching("");
    let mut log = RateLimitedLog::events(&"vhid 78", Duration::from_secs(60));
    let start = Instant::now();
    for i in 0..1000u64 {
        let now = start + Duration::from_millis(i * 20);
        log.record(now, "link_down", || {
            format!("link on eth0 lost carrier (#{i})")
        });
        log.record(now, "link_up", || "link on eth0 is back".into());
    }
    assert_eq!(logs_matching("vhid 78:").len(), 2, "one line per kind");
    log.flush(start + Duration::from_secs(61));
    let summary = logs_matching("vhid 78: 999 more link_down events in the last");
    assert_eq!(summary.len(), 1, "{:?}", logs_matching("vhid 78:"));
    // Events are rare: the summary quotes the latest, as it says.
    assert!(
        summary[0].ends_with("latest: link on eth0 lost carrier (#999)"),
        "{}",
        summary[0]
    );
    // Ten minutes later a single flap is news again: logged in full.
    log.record(start + Duration::from_secs(700), "link_down", || {
        "link on eth0 lost carrier".into()
    });
    assert_eq!(logs_matching("vhid 78: link on eth0 lost carrier").len(), 2);
    assert_eq!(log.next_flush(), None);
}

#[test]
fn errors_say_what_to_do() {
    let error = carp_io::iface::InterfaceInfo::lookup("nosuchif0").unwrap_err();
    assert!(matches!(error, IoError::NoSuchInterface(_)));
    assert!(error.to_string().contains("ip link"), "{error}");
    let denied = IoError::PermissionDenied {
        op: "opening a raw socket",
        iface: "eth0".into(),
    };
    assert!(denied.to_string().contains("CAP_NET_RAW"));
    assert_eq!(carp_io::iface::link_status("nosuchif0").unwrap(), None);
    let lo = carp_io::iface::link_status("lo").unwrap().unwrap();
    assert!(lo.running && lo.index > 0);
}

/// The first counter comes from getrandom(2), not from /dev/urandom with a
/// silent fall-back to the clock: with /dev/urandom unreadable (here
/// /dev/null bound over it in a private mount namespace), two draws still
/// differ in their high bits, which two readings of the clock a moment
/// apart do not. The test re-runs itself in that namespace.
#[test]
fn random_counters_need_no_dev_urandom() {
    const CHILD: &str = "CARP_IO_RANDOM_CHILD";
    if std::env::var_os(CHILD).is_some() {
        let (a, b) = (carp_io::random_u64(), carp_io::random_u64());
        println!(
            "DRAWS {:?} {:?}",
            a.map_err(|e| e.to_string()),
            b.map_err(|e| e.to_string())
        );
        return;
    }
    if !nix::unistd::geteuid().is_root() {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "CI runs this as root"
        );
        eprintln!("SKIPPED random_counters_need_no_dev_urandom: needs root for a mount namespace");
        return;
    }
    let output = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg("mount --bind /dev/null /dev/urandom && exec \"$0\" \"$@\"")
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "random_counters_need_no_dev_urandom",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let draws = stdout
        .lines()
        .find_map(|l| l.strip_prefix("DRAWS "))
        .unwrap_or_else(|| panic!("no draws in {stdout}"));
    let values: Vec<u64> = draws
        .split_whitespace()
        .map(|v| {
            v.trim_start_matches("Ok(")
                .trim_end_matches(')')
                .parse()
                .unwrap_or_else(|_| panic!("not a number: {draws}"))
        })
        .collect();
    assert_eq!(values.len(), 2, "{draws}");
    assert_ne!(
        values[0] >> 32,
        values[1] >> 32,
        "clock-like draws: {draws}"
    );
}

/// A down script cut short by the stop runs again, and the hooks say they
/// are pending until that re-run has finished: the runtime must not let
/// the virtual host go (and the process exit) while it runs.
#[test]
fn the_rerun_of_a_cut_down_script_counts_as_pending() {
    let dir = temp_dir("owed");
    let log = dir.join("log");
    let down = script(
        &dir,
        "down",
        &format!(
            "echo start >> {log}\nsleep 0.6\necho end >> {log}",
            log = log.display()
        ),
    );
    let mut hooks = scripts_for(45, &down, &down, Duration::from_secs(10));
    let _ = queue(&mut hooks, State::Backup, Hook::Down);
    let lines = |log: &Path| std::fs::read_to_string(log).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(5);
    while lines(&log).is_empty() {
        assert!(Instant::now() < deadline, "the down script did not start");
        std::thread::sleep(Duration::from_millis(5));
    }
    hooks.interrupt();
    // The cut run ends (SIGTERM), then the re-run starts.
    let deadline = Instant::now() + Duration::from_secs(5);
    while lines(&log).matches("start").count() < 2 {
        assert!(Instant::now() < deadline, "no re-run: {}", lines(&log));
        assert!(
            hooks.pending(),
            "not pending between the cut run and its re-run"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    while !lines(&log).contains("end") {
        assert!(hooks.pending(), "not pending while the re-run runs");
        assert!(Instant::now() < deadline, "the re-run did not end");
        std::thread::sleep(Duration::from_millis(5));
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while hooks.pending() {
        assert!(Instant::now() < deadline, "still pending after the re-run");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(lines(&log), "start\nstart\nend\n");
    let _ = std::fs::remove_dir_all(&dir);
}
