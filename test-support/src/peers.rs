//! Running our `ucarp` and the real UCARP 1.5.2 (`/usr/sbin/ucarp`, Debian
//! package `ucarp`) side by side in a lab, with the same arguments.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::lab::{privileged, Lab, Proc};
pub use crate::status::status_count;

pub const VIP: &str = "10.99.0.100";
pub const SECOND: Duration = Duration::from_secs(1);
pub const UCARP_C: &str = "/usr/sbin/ucarp";

/// Which implementation a host runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Impl {
    /// This project's binary.
    Ours,
    /// UCARP 1.5.2, the C one.
    Ucarp,
}

impl Impl {
    pub fn binary(self) -> String {
        match self {
            Impl::Ours => ours().display().to_string(),
            Impl::Ucarp => UCARP_C.to_string(),
        }
    }

    pub fn other(self) -> Impl {
        match self {
            Impl::Ours => Impl::Ucarp,
            Impl::Ucarp => Impl::Ours,
        }
    }
}

/// Interop tests need root and the real UCARP; in CI both must be there.
pub fn ready(test: &str) -> bool {
    if !privileged(test) {
        return false;
    }
    if !Path::new(UCARP_C).exists() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!(
                "{test}: {UCARP_C} is missing (apt-get install ucarp); CI must run interop tests"
            );
        }
        eprintln!("SKIPPED {test}: {UCARP_C} not installed (apt-get install ucarp)");
        return false;
    }
    true
}

/// Starts `which` on `host` in the foreground: `-i eth0 -s <addr> -v 7
/// -p secret -a VIP -f none` plus `extra` (whose own `-p`/`-o` or `-a`
/// replace the defaults).
pub fn start(lab: &Lab, host: usize, which: Impl, extra: &[&str]) -> Proc {
    let mut command = lab.command(host, &which.binary());
    command.args([
        "-i",
        "eth0",
        "-s",
        &lab.addr(host).to_string(),
        "-v",
        "7",
        "-f",
        "none",
    ]);
    if !extra.contains(&"-a") {
        command.args(["-a", VIP]);
    }
    if !extra.iter().any(|a| *a == "-p" || *a == "-o") {
        command.args(["-p", "secret"]);
    }
    command.args(extra);
    let mut proc = Proc::spawn(&format!("h{host}-{which:?}"), command);
    if which == Impl::Ours {
        proc.control_dir = Some(lab.runtime_dir(host));
    }
    proc
}

/// A node's state ("MASTER", "BACKUP"): ours says it through its control
/// socket (`ucarp status`); UCARP, and ours once it has exited, by the
/// last `Switching to state:` line both implementations log.
pub fn state(proc: &Proc) -> Option<String> {
    if let Some(status) = proc
        .control_dir
        .as_deref()
        .and_then(|dir| crate::control::status_in(dir).ok())
    {
        if let Some(state) = status["virtual_hosts"][0]["state"].as_str() {
            return Some(state.to_string());
        }
    }
    proc.lines()
        .iter()
        .rev()
        .find_map(|l| l.split("Switching to state: ").nth(1))
        .map(|rest| {
            rest.split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string()
        })
}

pub fn is_master(proc: &Proc) -> bool {
    state(proc).as_deref() == Some("MASTER")
}

/// How many times a node became master.
pub fn takeovers(proc: &Proc) -> usize {
    proc.lines()
        .iter()
        .filter(|l| l.contains("Switching to state: MASTER"))
        .count()
}

pub fn wait_master(proc: &Proc, timeout: Duration) -> Duration {
    let start = Instant::now();
    while !is_master(proc) {
        assert!(
            start.elapsed() < timeout,
            "{} not master within {timeout:?}; output:\n{}",
            proc.name,
            proc.lines().join("\n")
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    start.elapsed()
}

/// Our node's status line (SIGUSR1), e.g. `BACKUP on eth0 id 7: accepted 4
/// sent 0 … rejected [bad_digest=3]`.
pub fn status(proc: &Proc) -> String {
    let mark = proc.mark();
    proc.signal(nix::sys::signal::Signal::SIGUSR1);
    proc.wait_for_after(mark, "status line", 3 * SECOND, |l| {
        l.contains(" on eth0 id 7: ")
    })
}

/// Runs `f` for every case on its own thread (each case builds its own
/// lab, so they do not interfere) and re-raises the first failure.
pub fn in_parallel<T: Sync>(cases: &[T], f: impl Fn(&T) + Sync) {
    std::thread::scope(|scope| {
        let handles: Vec<_> = cases.iter().map(|case| scope.spawn(|| f(case))).collect();
        for handle in handles {
            if let Err(panic) = handle.join() {
                std::panic::resume_unwind(panic);
            }
        }
    });
}

/// Kills a process started by `Proc` with SIGKILL and notes when.
pub fn kill9(proc: &mut Proc) -> Instant {
    let at = Instant::now();
    proc.kill9();
    at
}

/// Our `ucarp` as cargo built it for these tests: `target/<profile>/ucarp`,
/// next to the test binary's `deps` directory (cargo builds a package's
/// binaries before its integration tests).
pub fn ours() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let path = profile_dir.join("ucarp");
    assert!(
        path.exists(),
        "{} not built (run through cargo test)",
        path.display()
    );
    path
}

/// Waits until our daemon for vhid 7 on `host` has accepted `n` adverts
/// (its control socket says so): a leave advert counts only from a master
/// it has heard.
pub fn wait_heard(lab: &Lab, host: usize, n: u64, timeout: Duration) {
    crate::lab::until(&format!("host {host} heard {n} adverts"), timeout, || {
        let heard =
            crate::control::vhost_of(lab, host)?["counters"]["adverts_received"].as_u64()?;
        (heard >= n).then_some(())
    });
}
