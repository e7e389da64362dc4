//! UCARP-style up/down scripts, run off the protocol thread.
//!
//! Scripts are executed directly (no shell) as
//! `script <interface> <vip as given> [<xparam>]`. One worker thread runs
//! them one after the other in transition order, so a down script never
//! overtakes the up script before it; the protocol loop only queues work and
//! keeps advertising on time whatever a script does.
//!
//! Each script starts in a clean state, whatever the daemon's own: an empty
//! signal mask and default signal dispositions (the daemon blocks its stop
//! signals for its signal thread, and may have been started with some
//! ignored; a script's `trap` and the services it starts must not inherit
//! that), and its own process group. A script that runs past its timeout,
//! or is running when the node stops, is stopped as a group: SIGTERM to the
//! group, SIGKILL to what is left a second later, so `sleep 300 &` in a
//! hung script dies with it.

use std::io;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use carp_engine::{Hook, Transition};
use log::{error, info, warn};
use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag};
use nix::unistd::Pid;

use crate::{HookDone, Hooks};

/// How long a signalled script group gets between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(1);
/// How often the worker looks at a running script.
const POLL: Duration = Duration::from_millis(10);

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
    /// How long a script may run before its group is killed.
    pub timeout: Duration,
    /// vhid, for log lines.
    pub vhid: u8,
}

impl ScriptConfig {
    /// The longest a node should wait for a script it just queued: the
    /// script interrupted before it (a stop signals it at once: at most the
    /// kill grace), then this one's timeout and kill grace. The value for
    /// [`crate::NodeConfig::hook_wait`].
    pub fn longest_wait(&self) -> Duration {
        self.timeout + 2 * KILL_GRACE
    }
}

struct Job {
    id: u64,
    hook: Hook,
    script: PathBuf,
    /// Dropped with the job, when the script has ended (or was skipped):
    /// that tells the node.
    _done: HookDone,
}

/// What the protocol thread and the worker share.
#[derive(Default)]
struct Shared {
    /// The job the worker holds, and its process group once started.
    running: Mutex<Option<(u64, Option<Pid>)>>,
    /// The job to stop at once (set by [`Hooks::interrupt`]).
    cut: Mutex<Option<u64>>,
    /// After an interrupt, run only the newest queued job.
    collapse: AtomicBool,
    /// Run nothing more.
    abandoned: AtomicBool,
}

impl Shared {
    fn is_cut(&self, id: u64) -> bool {
        self.abandoned.load(Ordering::Acquire)
            || *self.cut.lock().unwrap_or_else(|e| e.into_inner()) == Some(id)
    }

    /// Stops the job the worker holds now: its group gets SIGTERM at once,
    /// and the worker escalates to SIGKILL after [`KILL_GRACE`].
    fn cut_running(&self) {
        let running = *self.running.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((id, pgid)) = running {
            *self.cut.lock().unwrap_or_else(|e| e.into_inner()) = Some(id);
            if let Some(pgid) = pgid {
                let _ = killpg(pgid, Signal::SIGTERM);
            }
        }
    }
}

/// [`Hooks`] that run scripts on a worker thread.
pub struct ScriptHooks {
    jobs: Option<Sender<Job>>,
    worker: Option<JoinHandle<()>>,
    config: ScriptConfig,
    shared: Arc<Shared>,
    next_id: u64,
}

impl ScriptHooks {
    /// Starts the worker thread; fails if the system cannot start a thread.
    pub fn new(config: ScriptConfig) -> io::Result<ScriptHooks> {
        let (jobs, queue) = mpsc::channel();
        let worker_config = config.clone();
        let shared = Arc::new(Shared::default());
        let worker_shared = Arc::clone(&shared);
        let worker = thread::Builder::new()
            .name(format!("ucarp-scripts-{}", config.vhid))
            .spawn(move || run_jobs(&worker_config, &worker_shared, &queue))
            .map_err(|e| {
                io::Error::new(e.kind(), format!("cannot start the script thread: {e}"))
            })?;
        Ok(ScriptHooks {
            jobs: Some(jobs),
            worker: Some(worker),
            config,
            shared,
            next_id: 0,
        })
    }
}

impl Hooks for ScriptHooks {
    fn transition(&mut self, transition: &Transition, done: HookDone) {
        let Some(hook) = transition.hook else { return };
        let script = match hook {
            Hook::Up => &self.config.up,
            Hook::Down => &self.config.down,
        };
        let (Some(script), Some(jobs)) = (script, &self.jobs) else {
            return;
        };
        self.next_id += 1;
        let job = Job {
            id: self.next_id,
            hook,
            script: script.clone(),
            _done: done,
        };
        if jobs.send(job).is_err() {
            error!(
                "vhid {}: script thread is gone; {} script not run",
                self.config.vhid,
                hook_name(hook)
            );
        }
    }

    fn interrupt(&mut self) {
        self.shared.collapse.store(true, Ordering::Release);
        self.shared.cut_running();
    }

    fn abandon(&mut self) {
        self.shared.abandoned.store(true, Ordering::Release);
        self.shared.cut_running();
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

fn hook_name(hook: Hook) -> &'static str {
    match hook {
        Hook::Up => "up",
        Hook::Down => "down",
    }
}

fn run_jobs(config: &ScriptConfig, shared: &Shared, queue: &Receiver<Job>) {
    while let Ok(mut job) = queue.recv() {
        if shared.collapse.load(Ordering::Acquire) {
            // Stopping: only the newest action says what state we end in.
            while let Ok(newer) = queue.try_recv() {
                info!(
                    "vhid {}: stopping; {} script skipped for a later one",
                    config.vhid,
                    hook_name(job.hook)
                );
                job = newer;
            }
        }
        if shared.abandoned.load(Ordering::Acquire) {
            return;
        }
        *shared.running.lock().unwrap_or_else(|e| e.into_inner()) = Some((job.id, None));
        run_one(config, shared, &job);
        *shared.running.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// The script's command: arguments, no stdin, its own process group, and a
/// clean signal state.
fn command(config: &ScriptConfig, job: &Job) -> Command {
    let mut command = Command::new(&job.script);
    command
        .arg(&config.interface)
        .arg(&config.vip)
        .args(config.xparam.iter())
        .stdin(Stdio::null())
        .process_group(0);
    #[allow(unsafe_code)] // pre_exec; see SAFETY below
    // SAFETY: the closure runs in the forked child before exec, where only
    // async-signal-safe calls are allowed. It only calls sigprocmask(2)
    // and signal(2) (both async-signal-safe), allocates nothing, takes no
    // lock, and touches no memory shared with other threads.
    unsafe {
        command.pre_exec(|| {
            use nix::libc;
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            for signal in 1..=libc::SIGRTMAX() {
                if signal != libc::SIGKILL && signal != libc::SIGSTOP {
                    // glibc refuses its own two real-time signals: fine.
                    libc::signal(signal, libc::SIG_DFL);
                }
            }
            Ok(())
        });
    }
    command
}

fn run_one(config: &ScriptConfig, shared: &Shared, job: &Job) {
    let name = hook_name(job.hook);
    let started = Instant::now();
    let child = match command(config, job).spawn() {
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
    // A script spawned in its own group: the group id is its pid.
    let pgid = Pid::from_raw(child.id() as i32);
    *shared.running.lock().unwrap_or_else(|e| e.into_inner()) = Some((job.id, Some(pgid)));
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
    let cut = || shared.is_cut(job.id);
    match wait_or_stop(child, pgid, config.timeout, &cut) {
        Ended::Exited(status) if status.success() => info!(
            "vhid {}: {name} script finished in {:.3}s",
            config.vhid,
            started.elapsed().as_secs_f64()
        ),
        Ended::Exited(status) => warn!("vhid {}: {name} script failed: {status}", config.vhid),
        Ended::TimedOut(how) => error!(
            "vhid {}: {name} script {} ran over its {}s timeout; its process group was killed ({how})",
            config.vhid,
            job.script.display(),
            config.timeout.as_secs_f64()
        ),
        Ended::Cut(how) => warn!(
            "vhid {}: stopping; {name} script {} was cut short after {:.3}s ({how})",
            config.vhid,
            job.script.display(),
            started.elapsed().as_secs_f64()
        ),
    }
}

/// How a script ended.
enum Ended {
    /// On its own.
    Exited(ExitStatus),
    /// Killed at its timeout; how it ended.
    TimedOut(String),
    /// Killed because the node is stopping; how it ended.
    Cut(String),
}

/// Waits for the child; past `timeout`, or once `cut()` says so, stops its
/// whole process group.
fn wait_or_stop(mut child: Child, pgid: Pid, timeout: Duration, cut: &dyn Fn() -> bool) -> Ended {
    let deadline = Instant::now() + timeout;
    let stopping: fn(String) -> Ended = loop {
        // Cut first: the stop already sent SIGTERM, so the script may have
        // exited from it; the rest of its group still gets the SIGKILL.
        if cut() {
            break Ended::Cut;
        }
        match child.try_wait() {
            Ok(Some(status)) => return Ended::Exited(status),
            Ok(None) if Instant::now() >= deadline => break Ended::TimedOut,
            Ok(None) => thread::sleep(POLL),
            Err(e) => return Ended::TimedOut(format!("wait failed: {e}")),
        }
    };
    stopping(stop_group(&mut child, pgid))
}

/// SIGTERM to the group, then SIGKILL to whatever is left after the grace.
/// The leader stays unreaped (a zombie) until then, so the group id cannot
/// be reused by an unrelated process before the SIGKILL.
fn stop_group(child: &mut Child, pgid: Pid) -> String {
    let _ = killpg(pgid, Signal::SIGTERM);
    let grace = Instant::now() + KILL_GRACE;
    let peek = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    while Instant::now() < grace {
        match waitid(Id::Pid(pgid), peek) {
            Ok(nix::sys::wait::WaitStatus::StillAlive) => thread::sleep(POLL),
            _ => break,
        }
    }
    let _ = killpg(pgid, Signal::SIGKILL);
    match child.wait() {
        Ok(status) => status.to_string(),
        Err(e) => format!("wait failed: {e}"),
    }
}
