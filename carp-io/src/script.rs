//! UCARP-style up/down scripts, run off the protocol thread.
//!
//! Scripts are executed directly (no shell) as
//! `script <interface> <vip as given> [<xparam>]`. One worker thread runs
//! them one after the other in transition order, so a down script never
//! overtakes the up script before it; the protocol loop only queues work and
//! keeps advertising on time whatever a script does. A script that runs past
//! its timeout is killed (SIGTERM, then SIGKILL a second later).

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use carp_engine::{Hook, Transition};
use log::{error, info, warn};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::Hooks;

/// The scripts and their arguments.
#[derive(Debug, Clone)]
pub struct ScriptConfig {
    /// Run on becoming master.
    pub up: Option<PathBuf>,
    /// Run on leaving master (and at start-up unless neutral).
    pub down: Option<PathBuf>,
    /// First argument: the interface.
    pub interface: String,
    /// Second argument: the virtual address exactly as the user gave it.
    pub vip: String,
    /// Optional third argument (UCARP `-x`).
    pub xparam: Option<String>,
    /// How long a script may run before it is killed.
    pub timeout: Duration,
    /// vhid, for log lines.
    pub vhid: u8,
}

struct Job {
    hook: Hook,
    script: PathBuf,
}

/// [`Hooks`] that run scripts on a worker thread.
pub struct ScriptHooks {
    jobs: Option<Sender<Job>>,
    worker: Option<JoinHandle<()>>,
    config: ScriptConfig,
}

impl ScriptHooks {
    /// Starts the worker thread.
    pub fn new(config: ScriptConfig) -> ScriptHooks {
        let (jobs, queue) = mpsc::channel();
        let worker_config = config.clone();
        let worker = thread::Builder::new()
            .name(format!("ucarp-scripts-{}", config.vhid))
            .spawn(move || run_jobs(&worker_config, &queue))
            .expect("spawning the script thread");
        ScriptHooks {
            jobs: Some(jobs),
            worker: Some(worker),
            config,
        }
    }
}

impl Hooks for ScriptHooks {
    fn transition(&mut self, transition: &Transition) {
        let Some(hook) = transition.hook else { return };
        let script = match hook {
            Hook::Up => &self.config.up,
            Hook::Down => &self.config.down,
        };
        if let (Some(script), Some(jobs)) = (script, &self.jobs) {
            let job = Job {
                hook,
                script: script.clone(),
            };
            if jobs.send(job).is_err() {
                error!(
                    "vhid {}: script thread is gone; {hook:?} script not run",
                    self.config.vhid
                );
            }
        }
    }

    /// Lets queued scripts finish (each bounded by the timeout).
    fn finish(&mut self) {
        self.jobs = None;
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

impl Drop for ScriptHooks {
    fn drop(&mut self) {
        self.finish();
    }
}

fn run_jobs(config: &ScriptConfig, queue: &Receiver<Job>) {
    for job in queue {
        run_one(config, &job);
    }
}

fn run_one(config: &ScriptConfig, job: &Job) {
    let name = match job.hook {
        Hook::Up => "up",
        Hook::Down => "down",
    };
    let mut command = Command::new(&job.script);
    command
        .arg(&config.interface)
        .arg(&config.vip)
        .args(config.xparam.iter())
        .stdin(Stdio::null());
    let started = Instant::now();
    let child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            error!(
                "vhid {}: cannot run {name} script {}: {e}",
                config.vhid,
                job.script.display()
            );
            return;
        }
    };
    info!(
        "vhid {}: running {name} script {} {} {}{}",
        config.vhid,
        job.script.display(),
        config.interface,
        config.vip,
        config
            .xparam
            .as_deref()
            .map(|x| format!(" {x}"))
            .unwrap_or_default()
    );
    match wait_with_timeout(child, config.timeout) {
        Ok(status) if status.success() => info!(
            "vhid {}: {name} script finished in {:.3}s",
            config.vhid,
            started.elapsed().as_secs_f64()
        ),
        Ok(status) => warn!("vhid {}: {name} script failed: {status}", config.vhid),
        Err(status) => error!(
            "vhid {}: {name} script {} ran over its {}s timeout and was killed ({status})",
            config.vhid,
            job.script.display(),
            config.timeout.as_secs_f64()
        ),
    }
}

/// Waits for the child; past `timeout` kills it and returns `Err` with how
/// it ended.
fn wait_with_timeout(mut child: Child, timeout: Duration) -> Result<ExitStatus, String> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
            Ok(None) => break,
            Err(e) => return Err(format!("wait failed: {e}")),
        }
    }
    let pid = Pid::from_raw(child.id() as i32);
    let _ = kill(pid, Signal::SIGTERM);
    let grace = Instant::now() + Duration::from_secs(1);
    while Instant::now() < grace {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(status.to_string());
        }
        thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    match child.wait() {
        Ok(status) => Err(status.to_string()),
        Err(e) => Err(format!("wait failed: {e}")),
    }
}
