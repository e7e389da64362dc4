//! carp-io parts that need no privileges: script hooks, rate-limited logs,
//! error messages.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use carp_engine::{Hook, Reason, State, Time, Transition};
use carp_io::ratelimit::RejectLog;
use carp_io::{Hooks, IoError, ScriptConfig, ScriptHooks};

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
    ScriptHooks::new(ScriptConfig {
        up: Some(up.to_path_buf()),
        down: Some(down.to_path_buf()),
        interface: "eth9".into(),
        vip: "10.0.0.100".into(),
        xparam: Some("x y".into()),
        timeout,
        vhid: 3,
    })
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
    hooks.transition(&transition(State::Master, Hook::Up));
    hooks.transition(&transition(State::Backup, Hook::Down));
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "transition() blocked"
    );
    hooks.finish();
    let lines = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        lines, "up eth9 10.0.0.100 x y\ndown eth9 10.0.0.100 x y\n",
        "down overtook up"
    );
    assert!(!logs_matching("vhid 3: up script finished").is_empty());
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
    hooks.transition(&transition(State::Master, Hook::Up));
    hooks.transition(&transition(State::Backup, Hook::Down));
    hooks.finish();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the hung script was not killed"
    );
    assert!(!marker.exists());
    assert_eq!(
        logs_matching("ran over its 0.3s timeout and was killed").len(),
        1
    );
    assert_eq!(
        logs_matching("vhid 3: down script failed: exit status: 3").len(),
        1
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rejection_logs_are_bounded_under_a_flood() {
    let _ = logs_matching("");
    let mut log = RejectLog::new(77, Duration::from_secs(60));
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
    assert_eq!(carp_io::iface::link_state("nosuchif0"), None);
    assert_eq!(carp_io::iface::link_state("lo"), Some(true));
}
