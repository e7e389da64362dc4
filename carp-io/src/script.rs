//! UCARP-style up/down scripts, run off the protocol thread.
//!
//! Scripts are executed directly (no shell) as
//! `script <interface> <address as given> [<xparam>]`, once per virtual
//! address, in the order given, so UCARP's `ip addr add "$2"/24 dev "$1"`
//! scripts work unchanged with several addresses. The environment describes
//! the whole virtual host: `UCARP_INTERFACE`, `UCARP_VHID`, `UCARP_STATE`
//! (`MASTER`, `BACKUP`, `INIT`), `UCARP_REASON` (why it changed) and
//! `UCARP_ADDRESSES` (all of them, space-separated). One worker thread runs
//! the scripts one after the other in transition order, so a down script
//! never overtakes the up script before it; the protocol loop only queues
//! work and keeps advertising on time whatever a script does. The worker
//! starts with the first script and ends after [`IDLE`] without one, so a
//! daemon with hundreds of virtual hosts does not keep hundreds of idle
//! threads (and virtual hosts without scripts never start one).
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
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use carp_engine::{Hook, State, Transition};
use log::{error, info, warn};
use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag};
use nix::unistd::Pid;

use crate::{HookDone, Hooks};

/// How long a signalled script group gets between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(1);
/// How often the worker looks at a running script.
const POLL: Duration = Duration::from_millis(10);
/// A worker with nothing to run for this long ends; the next script
/// starts a new one.
pub const IDLE: Duration = Duration::from_secs(10);

/// The scripts and their arguments.
#[derive(Debug, Clone)]
pub struct ScriptConfig {
    /// Run on becoming master.
    pub up: Option<PathBuf>,
    /// Run on leaving master (and at start-up unless neutral).
    pub down: Option<PathBuf>,
    /// First argument: the interface.
    pub interface: String,
    /// Second argument, one run each: the virtual addresses exactly as the
    /// user gave them, in that order.
    pub addresses: Vec<String>,
    /// Optional third argument (UCARP `-x`).
    pub xparam: Option<String>,
    /// How long a script may run before its group is killed.
    pub timeout: Duration,
    /// vhid, for log lines.
    pub vhid: u8,
}

impl ScriptConfig {
    /// Which virtual host, for log lines: `vhid 7 on eth0`.
    fn who(&self) -> String {
        format!("vhid {} on {}", self.vhid, self.interface)
    }

    /// The longest a node should wait for a script it just queued: the
    /// script interrupted before it (a stop signals it at once: at most the
    /// kill grace), then one run per address, each bounded by the timeout
    /// and kill grace. The value for [`crate::VirtualHostConfig::hook_wait`].
    pub fn longest_wait(&self) -> Duration {
        let runs = self.addresses.len().max(1) as u32;
        (self.timeout + KILL_GRACE) * runs + KILL_GRACE
    }
}

struct Job {
    id: u64,
    hook: Hook,
    script: PathBuf,
    /// What the environment says about the transition.
    context: Context,
    /// Dropped with the job: counts it out of [`Hooks::pending`].
    _outstanding: Outstanding,
    /// Dropped with the job, when the script has ended (or was skipped):
    /// that tells the node.
    _done: HookDone,
}

/// The transition a script runs for, for its environment.
#[derive(Debug, Clone)]
struct Context {
    state: State,
    reason: String,
}

/// Counts a job as outstanding from queueing until it is dropped.
struct Outstanding(Arc<Shared>);

impl Outstanding {
    fn new(shared: &Arc<Shared>) -> Outstanding {
        shared.outstanding.fetch_add(1, Ordering::AcqRel);
        Outstanding(Arc::clone(shared))
    }
}

impl Drop for Outstanding {
    fn drop(&mut self) {
        self.0.outstanding.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What the protocol thread and the worker share.
#[derive(Default)]
struct Shared {
    /// The job the worker holds (queued jobs are not here).
    running: Mutex<Option<u64>>,
    /// The job to stop at once (set by [`Hooks::interrupt`]).
    cut: Mutex<Option<u64>>,
    /// The node is stopping: see [`next_job`].
    stopping: AtomicBool,
    /// Run nothing more.
    abandoned: AtomicBool,
    /// Jobs queued or running.
    outstanding: AtomicUsize,
    /// A down script was cut short by the stop and must run once more.
    owed_down: AtomicBool,
    /// The queue's receiving end while no worker runs (`None` while one
    /// holds it). A worker puts it back here, under this lock, only after
    /// finding the queue empty; a sender looks here, under the same lock,
    /// after queueing: so a job is never left without a worker, and two
    /// workers never run at once.
    parked: Mutex<Option<Receiver<Job>>>,
}

impl Shared {
    fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        mutex.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    fn abandoned(&self) -> bool {
        self.abandoned.load(Ordering::Acquire)
    }

    fn is_cut(&self, id: u64) -> bool {
        self.abandoned() || *Shared::lock(&self.cut) == Some(id)
    }

    /// Marks the job the worker holds now to be stopped; the worker signals
    /// its group within one poll.
    fn cut_running(&self) {
        let running = *Shared::lock(&self.running);
        if running.is_some() {
            *Shared::lock(&self.cut) = running;
        }
    }
}

/// [`Hooks`] that run scripts on a worker thread.
pub struct ScriptHooks {
    jobs: Option<Sender<Job>>,
    /// The latest worker started (it may have ended since).
    worker: Option<JoinHandle<()>>,
    config: ScriptConfig,
    shared: Arc<Shared>,
    next_id: u64,
}

impl ScriptHooks {
    /// Script hooks for one virtual host. No thread starts until the first
    /// script is due. (The `Result` is kept for callers written when the
    /// thread started here.)
    pub fn new(config: ScriptConfig) -> io::Result<ScriptHooks> {
        let (jobs, queue) = mpsc::channel();
        let shared = Arc::new(Shared {
            parked: Mutex::new(Some(queue)),
            ..Shared::default()
        });
        Ok(ScriptHooks {
            jobs: Some(jobs),
            worker: None,
            config,
            shared,
            next_id: 0,
        })
    }

    /// Starts a worker if none runs. Called after queueing a job.
    fn ensure_worker(&mut self) {
        let mut parked = Shared::lock(&self.shared.parked);
        let Some(queue) = parked.take() else { return };
        let config = self.config.clone();
        let shared = Arc::clone(&self.shared);
        let (handoff, handed) = mpsc::channel();
        let spawned = thread::Builder::new()
            .name(format!("ucarp-scripts-{}", config.vhid))
            .spawn(move || {
                if let Ok(queue) = handed.recv() {
                    run_jobs(&config, &shared, queue);
                }
            });
        match spawned {
            Ok(worker) => {
                let _ = handoff.send(queue);
                // A previous worker has put the queue back: it is ending.
                self.worker = Some(worker);
            }
            Err(e) => {
                *parked = Some(queue);
                error!(
                    "{}: cannot start the script thread ({e}); the script waits for the next try",
                    self.config.who()
                );
            }
        }
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
            context: Context {
                state: transition.to,
                reason: transition.reason.to_string(),
            },
            _outstanding: Outstanding::new(&self.shared),
            _done: done,
        };
        if jobs.send(job).is_err() {
            error!(
                "{}: script thread is gone; {} script not run",
                self.config.who(),
                hook_name(hook)
            );
            return;
        }
        self.ensure_worker();
    }

    fn interrupt(&mut self) {
        self.shared.stopping.store(true, Ordering::Release);
        self.shared.cut_running();
    }

    fn abandon(&mut self) {
        self.shared.stopping.store(true, Ordering::Release);
        self.shared.abandoned.store(true, Ordering::Release);
        self.shared.cut_running();
    }

    fn pending(&self) -> bool {
        self.shared.outstanding.load(Ordering::Acquire) > 0
            || self.shared.owed_down.load(Ordering::Acquire)
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

/// Hands memory freed by an ending worker back to the system (glibc keeps
/// freed heap and arena pages otherwise: after hundreds of virtual hosts
/// ran their start-up scripts at once, megabytes).
fn trim_memory() {
    #[allow(unsafe_code)] // malloc_trim; see SAFETY below
    // SAFETY: malloc_trim(3) only releases free memory of the allocator's
    // own arenas; it takes the arena locks itself and touches no memory we
    // own. Any thread may call it at any time.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

/// What the worker does next.
enum Next {
    Run(Job),
    /// Run the down script once more: the stop cut it short.
    OwedDown,
    /// Nothing to do for [`IDLE`].
    Idle,
    Done,
}

fn run_jobs(config: &ScriptConfig, shared: &Shared, queue: Receiver<Job>) {
    loop {
        let next = match next_job(config, shared, &queue) {
            Next::Idle => {
                let mut parked = Shared::lock(&shared.parked);
                match queue.try_recv() {
                    Ok(job) => Next::Run(job),
                    Err(TryRecvError::Empty) => {
                        *parked = Some(queue);
                        drop(parked);
                        trim_memory();
                        return;
                    }
                    Err(TryRecvError::Disconnected) => return,
                }
            }
            next => next,
        };
        // The job is kept until `owed_down` is set: dropping it is what
        // tells the runtime nothing is pending, and the runtime lets the
        // hooks go as soon as it sees that.
        let (hook, ended, job) = match next {
            Next::Done | Next::Idle => return,
            Next::OwedDown => {
                shared.owed_down.store(false, Ordering::Release);
                let context = Context {
                    state: State::Init,
                    reason: "shutdown (a down script cut short by the stop, run again)".into(),
                };
                match &config.down {
                    Some(script) => (
                        Hook::Down,
                        run_for_each_address(config, shared, 0, Hook::Down, script, &context),
                        None,
                    ),
                    None => continue,
                }
            }
            Next::Run(job) => {
                *Shared::lock(&shared.running) = Some(job.id);
                // Taken from the queue just as the stop came: no up script
                // once stopping.
                let ended = if shared.is_cut(job.id) || (shared.stopping() && job.hook == Hook::Up)
                {
                    skipped(config, job.hook, "stopping");
                    Ended::Skipped
                } else {
                    run_for_each_address(
                        config,
                        shared,
                        job.id,
                        job.hook,
                        &job.script,
                        &job.context,
                    )
                };
                *Shared::lock(&shared.running) = None;
                (job.hook, ended, Some(job))
            }
        };
        if hook == Hook::Down && shared.stopping() && !shared.abandoned() {
            let cut = matches!(ended, Ended::Cut(_) | Ended::Skipped);
            shared.owed_down.store(cut, Ordering::Release);
        }
        drop(job);
    }
}

fn skipped(config: &ScriptConfig, hook: Hook, why: &str) {
    info!(
        "{}: {why}; {} script skipped",
        config.who(),
        hook_name(hook)
    );
}

/// The next job. While stopping: up scripts are skipped (we are leaving;
/// taking the address now would leave two hosts holding it), of the down
/// scripts queued only the newest runs (releasing is idempotent), and a
/// down script the stop cut short runs once more, so that a host that
/// yielded never keeps the address.
fn next_job(config: &ScriptConfig, shared: &Shared, queue: &Receiver<Job>) -> Next {
    loop {
        if shared.abandoned() {
            return Next::Done;
        }
        if !shared.stopping() {
            return match queue.recv_timeout(IDLE) {
                Ok(job) => Next::Run(job),
                Err(mpsc::RecvTimeoutError::Timeout) => Next::Idle,
                Err(mpsc::RecvTimeoutError::Disconnected) => Next::Done,
            };
        }
        let mut newest_down: Option<Job> = None;
        let mut closed = false;
        loop {
            match queue.try_recv() {
                Ok(job) if job.hook == Hook::Up => skipped(config, job.hook, "stopping"),
                Ok(job) => {
                    if let Some(older) = newest_down.replace(job) {
                        skipped(config, older.hook, "stopping, a later one follows");
                    }
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        if let Some(job) = newest_down {
            return Next::Run(job);
        }
        if shared.owed_down.load(Ordering::Acquire) {
            return Next::OwedDown;
        }
        if closed {
            return Next::Done;
        }
        // Nothing queued: wait for the stop's own down script, or the end.
        match queue.recv() {
            Ok(job) if job.hook == Hook::Up => skipped(config, job.hook, "stopping"),
            Ok(job) => return Next::Run(job),
            Err(_) => return Next::Done,
        }
    }
}

/// The script's command: arguments, no stdin, its own process group, and a
/// clean signal state.
fn command(config: &ScriptConfig, script: &Path, address: &str, context: &Context) -> Command {
    let mut command = Command::new(script);
    command
        .arg(&config.interface)
        .arg(address)
        .args(config.xparam.iter())
        .env("UCARP_INTERFACE", &config.interface)
        .env("UCARP_VHID", config.vhid.to_string())
        .env("UCARP_STATE", context.state.to_string())
        .env("UCARP_REASON", &context.reason)
        .env("UCARP_ADDRESSES", config.addresses.join(" "))
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

/// Runs the script once per address, in order. A stop that cuts one run
/// short skips the rest.
fn run_for_each_address(
    config: &ScriptConfig,
    shared: &Shared,
    id: u64,
    hook: Hook,
    script: &Path,
    context: &Context,
) -> Ended {
    let mut ended = Ended::Skipped;
    for address in &config.addresses {
        ended = run_one(config, shared, id, hook, script, address, context);
        if matches!(ended, Ended::Cut(_)) {
            break;
        }
    }
    ended
}

/// Runs one script for one address to its end (or its timeout, or a stop)
/// and logs how.
fn run_one(
    config: &ScriptConfig,
    shared: &Shared,
    id: u64,
    hook: Hook,
    script: &Path,
    address: &str,
    context: &Context,
) -> Ended {
    let name = hook_name(hook);
    let started = Instant::now();
    let child = match command(config, script, address, context).spawn() {
        Ok(child) => child,
        Err(e) => {
            error!(
                "{}: cannot run {name} script {}: {e}",
                config.who(),
                script.display()
            );
            return Ended::NotStarted;
        }
    };
    // A script spawned in its own group: the group id is its pid.
    let pgid = Pid::from_raw(child.id() as i32);
    info!(
        "{}: running {name} script {} {} {}{}",
        config.who(),
        script.display(),
        config.interface,
        address,
        config
            .xparam
            .as_deref()
            .map(|x| format!(" {x}"))
            .unwrap_or_default()
    );
    let cut = || shared.is_cut(id);
    let ended = wait_or_stop(child, pgid, config.timeout, &cut);
    match &ended {
        Ended::Exited(status) if status.success() => info!(
            "{}: {name} script finished in {:.3}s",
            config.who(),
            started.elapsed().as_secs_f64()
        ),
        Ended::Exited(status) => warn!("{}: {name} script failed: {status}", config.who()),
        Ended::TimedOut(how) => error!(
            "{}: {name} script {} ran over its {}s timeout; its process group was killed ({how})",
            config.who(),
            script.display(),
            config.timeout.as_secs_f64()
        ),
        Ended::Cut(how) => warn!(
            "{}: stopping; {name} script {} was cut short after {:.3}s ({how})",
            config.who(),
            script.display(),
            started.elapsed().as_secs_f64()
        ),
        Ended::Skipped | Ended::NotStarted => {}
    }
    ended
}

/// How a script ended.
enum Ended {
    /// Skipped because the node is stopping.
    Skipped,
    /// Could not be started (logged).
    NotStarted,
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
        match child.try_wait() {
            // Exited on its own (nothing signalled it yet): what it left
            // running in the background is its business.
            Ok(Some(status)) => return Ended::Exited(status),
            Ok(None) if cut() => break Ended::Cut,
            Ok(None) if Instant::now() >= deadline => break Ended::TimedOut,
            Ok(None) => thread::sleep(POLL),
            Err(e) => return Ended::TimedOut(format!("wait failed: {e}")),
        }
    };
    stopping(stop_group(&mut child, pgid))
}

/// SIGTERM to the group; SIGKILL to whatever is left of it once the grace
/// is over, or at once if nothing but the exited leader is left. The leader
/// stays unreaped (a zombie) until then, so the group id cannot be reused
/// by an unrelated process before the SIGKILL.
fn stop_group(child: &mut Child, pgid: Pid) -> String {
    let _ = killpg(pgid, Signal::SIGTERM);
    let grace = Instant::now() + KILL_GRACE;
    let peek = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    while Instant::now() < grace {
        let leader_alive = matches!(
            waitid(Id::Pid(pgid), peek),
            Ok(nix::sys::wait::WaitStatus::StillAlive)
        );
        if !leader_alive && !group_has_others(pgid) {
            break;
        }
        thread::sleep(POLL);
    }
    let _ = killpg(pgid, Signal::SIGKILL);
    match child.wait() {
        Ok(status) => status.to_string(),
        Err(e) => format!("wait failed: {e}"),
    }
}

/// Whether a process other than the leader is in group `pgid` (from
/// /proc: the fifth field of `stat`, after the parenthesised name).
fn group_has_others(pgid: Pid) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|entry| {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<i32>().ok()) else {
            return false;
        };
        if pid == pgid.as_raw() {
            return false;
        }
        // Fields after the name: state, ppid, pgrp. A zombie is dead
        // already (waiting for a parent, or a subreaper, to reap it).
        std::fs::read_to_string(entry.path().join("stat")).is_ok_and(|stat| {
            let fields: Vec<&str> = stat
                .rsplit_once(')')
                .map(|(_, rest)| rest.split_whitespace().take(3).collect())
                .unwrap_or_default();
            fields.len() == 3
                && fields[0] != "Z"
                && fields[2].parse::<i32>().ok() == Some(pgid.as_raw())
        })
    })
}
