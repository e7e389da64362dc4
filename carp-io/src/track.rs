//! Track scripts: a command run every `interval` off the protocol thread;
//! `fall` failures in a row demote the virtual host by `weight`, `rise`
//! successes in a row end it (keepalived's `vrrp_script`). One instance at
//! a time; a run that outlasts `timeout` is killed with its process group
//! and counts as a failure. Exit status 0 is healthy.

use std::io;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::{debug, warn};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// One health check of a virtual host.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TrackScript {
    /// Run with `/bin/sh -c`.
    pub command: String,
    /// Time from the start of one run to the start of the next.
    pub interval: Duration,
    /// A run still going after this is killed and counts as failed.
    pub timeout: Duration,
    /// Successes in a row that end a failure.
    pub rise: u32,
    /// Failures in a row that make one.
    pub fall: u32,
    /// Demotion while failed, 1 to 255.
    pub weight: u8,
}

impl TrackScript {
    /// keepalived's defaults but for the weight: every 2 s, 2 s timeout,
    /// rise 1, fall 1, weight 1 (any demotion makes a healthy backup take
    /// over).
    pub fn new(command: &str) -> TrackScript {
        TrackScript {
            command: command.to_string(),
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(2),
            rise: 1,
            fall: 1,
            weight: 1,
        }
    }
}

/// A running checker; stopped (without waiting) when dropped.
pub(crate) struct Checker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Checker {
    /// Starts checking; `report(failed)` is called from the checker's
    /// thread each time the verdict changes. The verdict starts as failed
    /// (the caller assumes so too); the first run decides it at once, so a
    /// healthy script reports `false` right after its first run. `who`
    /// prefixes its log lines.
    pub fn start(
        script: TrackScript,
        who: String,
        report: impl Fn(bool) + Send + 'static,
    ) -> io::Result<Checker> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        // Embedders' values are not range-checked elsewhere: an interval
        // of zero would spawn without pause.
        let script = TrackScript {
            interval: script.interval.max(Duration::from_millis(10)),
            timeout: script.timeout.max(Duration::from_millis(10)),
            ..script
        };
        let thread = std::thread::Builder::new()
            .name("ucarp-track".into())
            .spawn(move || check(&script, &who, &stopped, report))?;
        Ok(Checker {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Checker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
        }
    }
}

fn check(script: &TrackScript, who: &str, stop: &AtomicBool, report: impl Fn(bool)) {
    // Signals are the signal thread's: a stop or reload signal delivered
    // here would take the default action and kill the daemon.
    let _ = nix::sys::signal::SigSet::all().thread_block();
    // Failed until the first verdict, which counts at once.
    let (mut failed, mut streak, mut first) = (true, 0u32, true);
    while !stop.load(Ordering::Acquire) {
        let started = Instant::now();
        let ok = run_once(script, who, stop);
        if stop.load(Ordering::Acquire) {
            return;
        }
        if std::mem::take(&mut first) {
            if ok {
                failed = false;
                report(false);
            } else {
                warn!(
                    "{who}: track script `{}` fails at start: demoted by {}",
                    script.command, script.weight
                );
            }
            sleep_until(started + script.interval, stop);
            continue;
        }
        // A streak counts results that disagree with the current verdict.
        streak = if ok == failed { streak + 1 } else { 0 };
        let needed = if failed { script.rise } else { script.fall };
        if streak >= needed.max(1) {
            failed = !failed;
            streak = 0;
            if failed {
                warn!(
                    "{who}: track script `{}` failed {} time(s) in a row: demoted by {}",
                    script.command, script.fall, script.weight
                );
            } else {
                warn!(
                    "{who}: track script `{}` healthy again ({} success(es) in a row)",
                    script.command, script.rise
                );
            }
            report(failed);
        }
        sleep_until(started + script.interval, stop);
    }
}

fn sleep_until(next: Instant, stop: &AtomicBool) {
    while !stop.load(Ordering::Acquire) && Instant::now() < next {
        std::thread::park_timeout(next.saturating_duration_since(Instant::now()));
    }
}

/// One run: whether it exited 0 within the timeout.
fn run_once(script: &TrackScript, who: &str, stop: &AtomicBool) -> bool {
    let mut command = Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(&script.command)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    crate::script::clean_child(&mut command);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            warn!("{who}: cannot start track script `{}`: {e}", script.command);
            return false;
        }
    };
    let pgid = Pid::from_raw(child.id() as i32);
    let deadline = Instant::now() + script.timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                debug!("{who}: track script `{}`: {status}", script.command);
                // Anything it left behind in its group goes too.
                let _ = killpg(pgid, Signal::SIGKILL);
                return status.success();
            }
            Ok(None) if Instant::now() >= deadline || stop.load(Ordering::Acquire) => {
                let _ = killpg(pgid, Signal::SIGKILL);
                let _ = child.wait();
                if !stop.load(Ordering::Acquire) {
                    warn!(
                        "{who}: track script `{}` timed out after {:.1}s; killed",
                        script.command,
                        script.timeout.as_secs_f64()
                    );
                }
                return false;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => {
                warn!("{who}: waiting for track script `{}`: {e}", script.command);
                let _ = killpg(pgid, Signal::SIGKILL);
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn fast(command: &str) -> TrackScript {
        TrackScript {
            interval: Duration::from_millis(50),
            timeout: Duration::from_millis(300),
            ..TrackScript::new(command)
        }
    }

    #[test]
    fn fall_and_rise_count_in_a_row() {
        let dir = std::env::temp_dir().join(format!("ucarp-track-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let flag = dir.join("healthy");
        std::fs::write(&flag, "").unwrap();
        let script = TrackScript {
            fall: 3,
            rise: 2,
            ..fast(&format!("test -e {}", flag.display()))
        };
        let (tx, rx) = mpsc::channel();
        let checker = Checker::start(script, "test".into(), move |failed| {
            let _ = tx.send((failed, Instant::now()));
        })
        .unwrap();
        let (failed, _) = rx.recv_timeout(Duration::from_secs(3)).unwrap();
        assert!(!failed, "the first run decides at once");
        std::thread::sleep(Duration::from_millis(300));
        assert!(rx.try_recv().is_err(), "still healthy: no report");
        let broke = Instant::now();
        std::fs::remove_file(&flag).unwrap();
        let (failed, at) = rx.recv_timeout(Duration::from_secs(3)).unwrap();
        assert!(failed);
        // Three failures in a row, 50 ms apart: not before the third.
        assert!(at - broke >= Duration::from_millis(50), "{:?}", at - broke);
        std::fs::write(&flag, "").unwrap();
        let (failed, _) = rx.recv_timeout(Duration::from_secs(3)).unwrap();
        assert!(!failed);
        drop(checker);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_hanging_script_times_out_and_counts_as_failed() {
        let dir = std::env::temp_dir().join(format!("ucarp-track-hang-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let flag = dir.join("healthy");
        std::fs::write(&flag, "").unwrap();
        // Healthy while the flag exists; then it hangs (with a child).
        let script = fast(&format!(
            "test -e {} || {{ sleep 30 & sleep 30; }}",
            flag.display()
        ));
        let (tx, rx) = mpsc::channel();
        let _checker = Checker::start(script, "test".into(), move |failed| {
            let _ = tx.send(failed);
        })
        .unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(3)), Ok(false));
        std::fs::remove_file(&flag).unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(3)), Ok(true));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
