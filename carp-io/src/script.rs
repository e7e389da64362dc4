//! UCARP-style up/down scripts, run off the protocol thread.
//!
//! Scripts are executed directly (no shell) as
//! `script <interface> <address as given> [<xparam>]`, once per virtual
//! address, in the order given, so UCARP's `ip addr add "$2"/24 dev "$1"`
//! scripts work unchanged with several addresses. The environment describes
//! the whole virtual host: `UCARP_INTERFACE`, `UCARP_VHID`, `UCARP_STATE`
//! (`MASTER`, `BACKUP`, `INIT`), `UCARP_REASON` (why it changed) and
//! `UCARP_ADDRESSES` (all of them, space-separated). A virtual host's
//! scripts run one after the other in transition order, so a down script
//! never overtakes the up script before it; the protocol loop only queues
//! work and keeps advertising on time whatever a script does. One
//! supervisor thread per process starts and watches every virtual host's
//! scripts without waiting on any (virtual hosts' scripts run side by
//! side); it starts with the first script due and ends after [`IDLE`]
//! with nothing to do, so hundreds of virtual hosts cost one thread, and
//! none while no script runs.
//!
//! Each script starts in a clean state, whatever the daemon's own: an empty
//! signal mask and default signal dispositions (the daemon blocks its stop
//! signals for its signal thread, and may have been started with some
//! ignored; a script's `trap` and the services it starts must not inherit
//! that), and its own process group. A script that runs past its timeout,
//! or is running when the node stops, is stopped as a group: SIGTERM to the
//! group, SIGKILL to what is left a second later, so `sleep 300 &` in a
//! hung script dies with it.

use std::collections::VecDeque;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use carp_engine::{Hook, State, Transition};
use log::{debug, error, info, warn};
use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag};
use nix::unistd::Pid;

use crate::status::{HookReportCell, HookRun};
use crate::{HookDone, Hooks};

/// How long a signalled script group gets between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(1);
/// How often the worker looks at a running script.
const POLL: Duration = Duration::from_millis(10);
/// The script thread ends after this long with nothing to run; the next
/// script starts a new one.
pub const IDLE: Duration = Duration::from_secs(10);
/// The first retry of a failed address add, and the longest wait between
/// retries.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

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
    /// Addresses the daemon owns: added before the up script, removed
    /// before the down script (and at every stop of a master).
    pub managed: Vec<crate::addrs::ManagedAddress>,
    /// The virtual MAC device carrying the managed addresses
    /// ([`crate::vmac`]); `None`: they go on the interface itself.
    pub vmac: Option<crate::vmac::VirtualMac>,
}

impl ScriptConfig {
    /// Whether an owned address is IPv6.
    fn has_ipv6(&self) -> bool {
        self.managed.iter().any(|m| m.addr.is_ipv6())
    }

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
    /// Only the managed addresses, no script (a release at a stop without
    /// `--shutdown`, a re-add after the addresses were removed under us,
    /// or a hook without a script).
    addresses_only: bool,
    /// Its managed addresses were already removed, ahead of the script
    /// running before it ([`Worker::release_early`]).
    released_early: bool,
    /// The script alone: an addresses-only job queued just before it did
    /// the addresses (an up transition, so that the gratuitous ARP waits
    /// for the addresses and not for the script).
    script_only: bool,
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

/// What one virtual host's hooks and the supervisor share.
#[derive(Default)]
struct Shared {
    /// Jobs not started yet, oldest first.
    queue: Mutex<VecDeque<Job>>,
    /// The job that is running (queued jobs are not here).
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
    /// The hooks are gone: the supervisor forgets this virtual host once
    /// nothing is left to do.
    closed: AtomicBool,
    /// What runs now and how the last run ended, for the status.
    report: HookReportCell,
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

    /// Marks the running job to be stopped; the supervisor signals its
    /// group within one poll.
    fn cut_running(&self) {
        let running = *Shared::lock(&self.running);
        if running.is_some() {
            *Shared::lock(&self.cut) = running;
        }
    }

    /// Whether anything is queued, running or owed.
    fn busy(&self) -> bool {
        self.outstanding.load(Ordering::Acquire) > 0 || self.owed_down.load(Ordering::Acquire)
    }
}

/// [`Hooks`] that run scripts. Every virtual host's scripts are run by one
/// supervisor thread per process, which starts them and watches them
/// without ever waiting on one: a hanging script holds up only the later
/// scripts of its own virtual host, and hundreds of virtual hosts cost one
/// thread, not hundreds. The thread starts with the first script due and
/// ends after [`IDLE`] with nothing to do.
pub struct ScriptHooks {
    config: ScriptConfig,
    shared: Arc<Shared>,
    next_id: u64,
    /// This virtual host's hold on its virtual MAC device: released (and
    /// the device deleted when no one else holds it) once the last job
    /// has run.
    vmac: Option<crate::vmac::Lease>,
}

impl ScriptHooks {
    /// Script hooks for one virtual host; creates its virtual MAC device
    /// if it has one (the error says why it could not).
    pub fn new(config: ScriptConfig) -> io::Result<ScriptHooks> {
        let vmac = match &config.vmac {
            Some(vmac) => Some(crate::vmac::Lease::acquire(
                &config.interface,
                vmac,
                config.has_ipv6(),
            )?),
            None => None,
        };
        let shared = Arc::new(Shared::default());
        Supervisor::register(Slot {
            config: config.clone(),
            shared: Arc::clone(&shared),
        });
        Ok(ScriptHooks {
            config,
            shared,
            next_id: 0,
            vmac,
        })
    }
}

impl ScriptHooks {
    /// Queues a job for the managed addresses alone, if there are any.
    fn queue_addresses(&mut self, hook: Hook, state: State, reason: &str, done: HookDone) {
        if self.config.managed.is_empty() {
            return;
        }
        let context = Context {
            state,
            reason: reason.into(),
        };
        self.queue(hook, None, context, done);
    }

    /// Queues a job: `script` for every address (after the managed
    /// addresses), or the managed addresses alone (`None`).
    fn queue(&mut self, hook: Hook, script: Option<PathBuf>, context: Context, done: HookDone) {
        self.queue_with(hook, script, context, done, false);
    }

    /// [`ScriptHooks::queue`]; `script_only`: without the addresses.
    fn queue_with(
        &mut self,
        hook: Hook,
        script: Option<PathBuf>,
        context: Context,
        done: HookDone,
        script_only: bool,
    ) {
        self.next_id += 1;
        let job = Job {
            id: self.next_id,
            hook,
            addresses_only: script.is_none(),
            released_early: false,
            script_only,
            script: script.unwrap_or_default(),
            context,
            _outstanding: Outstanding::new(&self.shared),
            _done: done,
        };
        Shared::lock(&self.shared.queue).push_back(job);
        Supervisor::wake(&self.config);
    }
}

impl Hooks for ScriptHooks {
    fn report(&self) -> Option<HookReportCell> {
        Some(Arc::clone(&self.shared.report))
    }

    fn transition(&mut self, transition: &Transition, done: HookDone) {
        let Some(hook) = transition.hook else { return };
        let script = match hook {
            Hook::Up => &self.config.up,
            Hook::Down => &self.config.down,
        };
        let context = Context {
            state: transition.to,
            reason: transition.reason.to_string(),
        };
        match script.clone() {
            // Owned addresses and an up script: the addresses as a job of
            // their own, which the gratuitous ARP waits for, then the
            // script, which nothing waits for (clients may come as soon as
            // the address is there, as with keepalived).
            Some(script) if hook == Hook::Up && !self.config.managed.is_empty() => {
                self.queue(hook, None, context.clone(), done);
                let (untracked, _) = HookDone::pair();
                self.queue_with(hook, Some(script), context, untracked, true);
            }
            Some(script) => self.queue(hook, Some(script), context, done),
            None if !self.config.managed.is_empty() => self.queue(hook, None, context, done),
            None => {}
        }
    }

    fn release(&mut self, done: HookDone) {
        self.queue_addresses(Hook::Down, State::Init, "shutdown", done);
    }

    fn reassert(&mut self, done: HookDone) {
        self.queue_addresses(Hook::Up, State::Master, "addresses removed under us", done);
    }

    fn interrupt(&mut self) {
        self.shared.stopping.store(true, Ordering::Release);
        self.shared.cut_running();
        Supervisor::wake(&self.config);
    }

    fn abandon(&mut self) {
        self.shared.stopping.store(true, Ordering::Release);
        self.shared.abandoned.store(true, Ordering::Release);
        self.shared.cut_running();
        Supervisor::wake(&self.config);
    }

    fn pending(&self) -> bool {
        let busy = self.shared.busy();
        if busy {
            // Retries a supervisor that could not be started.
            Supervisor::ensure_running(&self.config);
        }
        busy
    }

    /// Lets queued scripts finish (each bounded by the timeout), waiting
    /// at most as long as they can take.
    fn finish(&mut self) {
        let queued = self.shared.outstanding.load(Ordering::Acquire).max(1) as u32;
        let limit = Instant::now() + self.config.longest_wait() * queued;
        while self.shared.busy() && Instant::now() < limit {
            Supervisor::wake(&self.config);
            thread::sleep(POLL);
        }
        if let Some(lease) = self.vmac.take() {
            lease.release();
        }
    }
}

impl Drop for ScriptHooks {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        // A running thread forgets it at its next look; none is started
        // for this (the next registration forgets it otherwise).
        let mut inbox = Shared::lock(&INBOX);
        inbox.woken = true;
        WAKE.notify_one();
    }
}

fn hook_name(hook: Hook) -> &'static str {
    match hook {
        Hook::Up => "up",
        Hook::Down => "down",
    }
}

/// One virtual host, as the supervisor knows it.
struct Slot {
    config: ScriptConfig,
    shared: Arc<Shared>,
}

/// What the supervisor thread is handed: new virtual hosts, and a flag that
/// there may be work.
#[derive(Default)]
struct Inbox {
    new_slots: Vec<Slot>,
    woken: bool,
    /// The thread runs (it clears this, under the lock, when it ends).
    running: bool,
}

/// The process's one script thread.
struct Supervisor;

static INBOX: Mutex<Inbox> = Mutex::new(Inbox {
    new_slots: Vec::new(),
    woken: false,
    running: false,
});
static WAKE: Condvar = Condvar::new();

impl Supervisor {
    fn register(slot: Slot) {
        let mut inbox = Shared::lock(&INBOX);
        // Virtual hosts removed while no thread ran are forgotten here.
        inbox
            .new_slots
            .retain(|s| !s.shared.closed.load(Ordering::Acquire) || s.shared.busy());
        inbox.new_slots.push(slot);
    }

    /// Tells the thread to look, starting it if it is not running.
    fn wake(config: &ScriptConfig) {
        let mut inbox = Shared::lock(&INBOX);
        inbox.woken = true;
        WAKE.notify_one();
        Supervisor::start(&mut inbox, config);
    }

    /// Starts the thread if it is not running (no wake-up otherwise).
    fn ensure_running(config: &ScriptConfig) {
        let mut inbox = Shared::lock(&INBOX);
        if !inbox.running {
            inbox.woken = true;
            Supervisor::start(&mut inbox, config);
        }
    }

    fn start(inbox: &mut Inbox, config: &ScriptConfig) {
        if inbox.running {
            return;
        }
        let spawned = thread::Builder::new()
            .name("ucarp-scripts".into())
            .spawn(supervise);
        match spawned {
            Ok(_) => inbox.running = true,
            Err(e) => error!(
                "{}: cannot start the script thread ({e}); scripts wait for the next try",
                config.who()
            ),
        }
    }
}

/// The supervisor thread: looks at every virtual host's scripts each
/// [`POLL`] while any runs, sleeps until woken otherwise, and ends after
/// [`IDLE`] with nothing to do.
fn supervise() {
    let mut workers: Vec<Worker> = Vec::new();
    let mut idle_since = Instant::now();
    loop {
        {
            let mut inbox = Shared::lock(&INBOX);
            for slot in inbox.new_slots.drain(..) {
                workers.push(Worker {
                    slot,
                    current: None,
                    retry: None,
                });
            }
            inbox.woken = false;
        }
        for worker in &mut workers {
            worker.step();
        }
        workers.retain(|w| !(w.slot.shared.closed.load(Ordering::Acquire) && w.idle()));
        let active = workers.iter().any(|w| !w.idle());
        if active {
            idle_since = Instant::now();
        }
        let mut inbox = Shared::lock(&INBOX);
        if inbox.woken || !inbox.new_slots.is_empty() {
            continue;
        }
        if !active && idle_since.elapsed() >= IDLE {
            // Virtual hosts go back to the inbox for the next thread.
            inbox.new_slots.extend(workers.drain(..).map(|w| w.slot));
            inbox.running = false;
            drop(inbox);
            trim_memory();
            return;
        }
        let wait = if active { POLL } else { IDLE };
        let _ = WAKE.wait_timeout(inbox, wait);
    }
}

/// Hands memory back to the system once the thread ends (glibc keeps
/// freed heap pages otherwise).
fn trim_memory() {
    #[allow(unsafe_code)] // malloc_trim; see SAFETY below
    // SAFETY: malloc_trim(3) only releases free memory of the allocator's
    // own arenas; it takes the arena locks itself and touches no memory we
    // own. Any thread may call it at any time.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

/// The supervisor's view of one virtual host: what runs now.
struct Worker {
    slot: Slot,
    current: Option<Current>,
    /// Adding the addresses failed while master: when to try again, and
    /// the wait after that one (doubling up to [`RETRY_MAX`]).
    retry: Option<(Instant, Duration)>,
}

/// A job being run, one address after the other.
struct Current {
    /// `None` for the owed down script.
    job: Option<Job>,
    id: u64,
    hook: Hook,
    script: PathBuf,
    context: Context,
    /// The next address to run for.
    next_address: usize,
    /// How the latest run ended.
    ended: Ended,
    run: Option<Run>,
}

impl Current {
    /// A job that runs no script (skipped, or addresses only): finished as
    /// soon as it is taken.
    fn without_scripts(job: Job) -> Current {
        Current {
            script: job.script.clone(),
            context: job.context.clone(),
            id: job.id,
            hook: job.hook,
            job: Some(job),
            next_address: usize::MAX,
            ended: Ended::Skipped,
            run: None,
        }
    }
}

/// One script process.
struct Run {
    child: Child,
    pgid: Pid,
    started: Instant,
    deadline: Instant,
    /// Signalled: why, and when the group gets SIGKILL.
    stopping: Option<(Stop, Instant)>,
    /// SIGKILL sent: waiting to reap the leader.
    killed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Cut,
    TimedOut,
}

impl Worker {
    fn idle(&self) -> bool {
        self.current.is_none() && !self.slot.shared.busy() && self.retry.is_none()
    }

    /// Adds or removes the addresses for `hook`; a failed add is tried
    /// again later (a master announcing an address it does not hold
    /// must get it), a removal cancels that.
    fn apply(&mut self, hook: Hook) {
        let done = manage_addresses(&self.slot.config, hook);
        self.retry =
            (hook == Hook::Up && !done).then(|| (Instant::now() + RETRY_FIRST, RETRY_FIRST));
    }

    /// Tries a failed add again when due, if nothing newer is queued.
    fn retry_addresses(&mut self) {
        let Some((due, wait)) = self.retry else {
            return;
        };
        let shared = &self.slot.shared;
        if shared.stopping() || shared.closed.load(Ordering::Acquire) {
            self.retry = None;
            return;
        }
        if Instant::now() < due || self.current.is_some() || shared.busy() {
            return;
        }
        warn!(
            "{}: trying again to add its addresses",
            self.slot.config.who()
        );
        if manage_addresses(&self.slot.config, Hook::Up) {
            self.retry = None;
        } else {
            let wait = (wait * 2).min(RETRY_MAX);
            self.retry = Some((Instant::now() + wait, wait));
        }
    }

    /// Moves this virtual host's scripts on as far as they go without
    /// waiting.
    fn step(&mut self) {
        self.release_early();
        self.retry_addresses();
        loop {
            if self.current.is_none() && !self.take_next() {
                return;
            }
            let current = self.current.as_mut().expect("taken above");
            if let Some(run) = &mut current.run {
                match poll_run(&self.slot, current.id, run) {
                    None => return,
                    Some(ended) => {
                        log_end(
                            &self.slot.config,
                            current.hook,
                            &current.script,
                            run,
                            &ended,
                        );
                        report_end(&self.slot.shared, run, &ended);
                        current.ended = ended;
                        current.run = None;
                    }
                }
            }
            let cut = matches!(current.ended, Ended::Cut(_));
            if !cut && current.next_address < self.slot.config.addresses.len() {
                let address = self.slot.config.addresses[current.next_address].clone();
                current.next_address += 1;
                match start_run(&self.slot.config, current, &address) {
                    Ok(run) => {
                        report_start(&self.slot.shared, current, &address);
                        current.run = Some(run);
                    }
                    Err(ended) => {
                        report_not_started(&self.slot.shared, current, &address);
                        current.ended = ended;
                    }
                }
                continue;
            }
            self.finish_current();
        }
    }

    /// Removes the managed addresses at once when a down job is queued
    /// behind a running script (a hung up script must not keep the address
    /// on a host that is no longer master until its timeout): when the
    /// newest queued job is a down job, so the addresses end in the state
    /// of the newest job. Adding waits its turn.
    fn release_early(&mut self) {
        if self.current.is_none() || self.slot.config.managed.is_empty() {
            return;
        }
        let mut due = false;
        {
            // Decided by the newest job: a down job last means the node
            // is no longer master, whatever re-adds (a reassert) are queued
            // before it; those then add nothing (their scripts still run
            // in order).
            let mut queue = Shared::lock(&self.slot.shared.queue);
            if queue.back().is_some_and(|job| job.hook == Hook::Down) {
                for job in queue.iter_mut() {
                    if job.hook == Hook::Down {
                        due |= !job.released_early;
                        job.released_early = true;
                    } else {
                        job.script_only = true;
                    }
                }
            }
        }
        // Not under the queue's lock: the protocol thread queues jobs.
        if due {
            info!(
                "{}: leaving master while a script runs: removing the addresses now",
                self.slot.config.who()
            );
            self.apply(Hook::Down);
        }
    }

    /// Takes the next job (or the owed down script); whether there is one.
    fn take_next(&mut self) -> bool {
        let (config, shared) = (&self.slot.config, &self.slot.shared);
        let (job, hook, script, context, id) = match next_job(config, shared) {
            Next::None => return false,
            // `owed_down` stays set while the re-run runs (it has no job to
            // count it as pending); `finish_current` clears it.
            Next::OwedDown => {
                let Some(script) = config.down.clone() else {
                    shared.owed_down.store(false, Ordering::Release);
                    return self.take_next();
                };
                self.apply(Hook::Down);
                let context = Context {
                    state: State::Init,
                    reason: "shutdown (a down script cut short by the stop, run again)".into(),
                };
                (None, Hook::Down, script, context, 0)
            }
            Next::Run(job) => {
                *Shared::lock(&shared.running) = Some(job.id);
                // Taken from the queue just as the stop came: no up script
                // once stopping.
                if shared.is_cut(job.id) || (shared.stopping() && job.hook == Hook::Up) {
                    skipped(config, job.hook, "stopping");
                    self.current = Some(Current::without_scripts(job));
                    return true;
                }
                let (hook, script, context, id) =
                    (job.hook, job.script.clone(), job.context.clone(), job.id);
                if !job.released_early && !job.script_only {
                    self.apply(hook);
                }
                if job.addresses_only {
                    self.current = Some(Current::without_scripts(job));
                    return true;
                }
                (Some(job), hook, script, context, id)
            }
        };
        self.current = Some(Current {
            job,
            id,
            hook,
            script,
            context,
            next_address: 0,
            ended: Ended::Skipped,
            run: None,
        });
        true
    }

    /// The job is done: it leaves `running`, and a down script the stop
    /// cut short is owed. The job is dropped only after that, since
    /// dropping it is what tells the runtime nothing is pending.
    fn finish_current(&mut self) {
        let Some(current) = self.current.take() else {
            return;
        };
        let shared = &self.slot.shared;
        *Shared::lock(&shared.running) = None;
        // An addresses-only job (a release at a stop without --shutdown)
        // says nothing about the down script: it owes none.
        let addresses_only = current.job.as_ref().is_some_and(|j| j.addresses_only);
        if shared.abandoned() {
            shared.owed_down.store(false, Ordering::Release);
        } else if current.hook == Hook::Down && shared.stopping() && !addresses_only {
            let cut = matches!(current.ended, Ended::Cut(_) | Ended::Skipped);
            shared.owed_down.store(cut, Ordering::Release);
        }
        drop(current.job);
    }
}

/// Adds (up) or removes (down) the managed addresses, before the scripts:
/// a script that starts a service on the address finds it there. Runs on
/// the supervisor thread (the kernel may hold the request behind its RTNL
/// lock; the protocol thread never waits for it).
fn manage_addresses(config: &ScriptConfig, hook: Hook) -> bool {
    if config.managed.is_empty() {
        return true;
    }
    let verb = if hook == Hook::Up { "add" } else { "remove" };
    if hook == Hook::Up && !vmac_up(config, true) {
        error!(
            "{}: addresses not added: without its virtual MAC device up no client could reach them",
            config.who()
        );
        return false;
    }
    let (device, label) = match &config.vmac {
        Some(vmac) => (vmac.name.as_str(), vmac.name.clone()),
        None => (
            config.interface.as_str(),
            crate::addrs::label(&config.interface, config.vhid),
        ),
    };
    let index = match nix::net::if_::if_nametoindex(device) {
        Ok(index) => index,
        Err(e) => {
            error!(
                "{}: cannot {verb} its addresses: interface {device}: {e}",
                config.who()
            );
            return false;
        }
    };
    let mut all_done = true;
    for address in &config.managed {
        let shown = format!("{}/{}", address.addr, address.prefix);
        let result = match hook {
            Hook::Up => crate::addrs::add(index, *address, &label).map(|()| true),
            Hook::Down => crate::addrs::remove(index, *address),
        };
        // IPv6 addresses carry no label: name the device.
        let on = if address.addr.is_ipv6() {
            device
        } else {
            &label
        };
        match (hook, result) {
            (Hook::Up, Ok(_)) => info!("{}: added {shown} to {on}", config.who()),
            (Hook::Down, Ok(true)) => info!("{}: removed {shown} from {on}", config.who()),
            (Hook::Down, Ok(false)) => {
                debug!("{}: {shown} was not on {device}", config.who())
            }
            (_, Err(e)) => {
                all_done = false;
                error!("{}: cannot {verb} {shown} on {device}: {e}", config.who());
            }
        }
    }
    if hook == Hook::Down {
        all_done &= vmac_up(config, false);
    }
    all_done
}

/// Brings the virtual MAC device up or down, if there is one; whether
/// that worked (or there is none).
fn vmac_up(config: &ScriptConfig, up: bool) -> bool {
    let Some(vmac) = &config.vmac else {
        return true;
    };
    match crate::vmac::set_up(&config.interface, vmac, up, config.has_ipv6()) {
        Ok(()) => true,
        Err(e) => {
            error!("{}: {e}", config.who());
            false
        }
    }
}

fn skipped(config: &ScriptConfig, hook: Hook, why: &str) {
    info!(
        "{}: {why}; {} script skipped",
        config.who(),
        hook_name(hook)
    );
}

/// What a virtual host runs next.
enum Next {
    Run(Job),
    /// Run the down script once more: the stop cut it short.
    OwedDown,
    None,
}

/// The next job. While stopping: up scripts are skipped (we are leaving;
/// taking the address now would leave two hosts holding it), of the down
/// scripts queued only the newest runs (releasing is idempotent), and a
/// down script the stop cut short runs once more, so that a host that
/// yielded never keeps the address. Once abandoned, queued jobs are
/// dropped unrun.
fn next_job(config: &ScriptConfig, shared: &Shared) -> Next {
    let mut queue = Shared::lock(&shared.queue);
    if shared.abandoned() {
        queue.clear();
        shared.owed_down.store(false, Ordering::Release);
        return Next::None;
    }
    if !shared.stopping() {
        return queue.pop_front().map_or(Next::None, Next::Run);
    }
    let mut newest_down: Option<Job> = None;
    for job in queue.drain(..) {
        if job.hook == Hook::Up {
            skipped(config, job.hook, "stopping");
        } else if let Some(older) = newest_down.replace(job) {
            skipped(config, older.hook, "stopping, a later one follows");
        }
    }
    drop(queue);
    match newest_down {
        Some(job) => Next::Run(job),
        None if shared.owed_down.load(Ordering::Acquire) => Next::OwedDown,
        None => Next::None,
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
        .env("UCARP_ADDRESSES", config.addresses.join(" "));
    clean_child(&mut command);
    command
}

/// No stdin, its own process group (so that a timeout can kill everything
/// it started), and a clean signal state: an empty mask and default
/// dispositions, whatever the daemon inherited.
pub(crate) fn clean_child(command: &mut Command) {
    command.stdin(Stdio::null()).process_group(0);
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
}

/// Starts the script for one address.
fn start_run(config: &ScriptConfig, current: &Current, address: &str) -> Result<Run, Ended> {
    let name = hook_name(current.hook);
    let child = match command(config, &current.script, address, &current.context).spawn() {
        Ok(child) => child,
        Err(e) => {
            error!(
                "{}: cannot run {name} script {}: {e}",
                config.who(),
                current.script.display()
            );
            return Err(Ended::NotStarted);
        }
    };
    // A script spawned in its own group: the group id is its pid.
    let pgid = Pid::from_raw(child.id() as i32);
    info!(
        "{}: running {name} script {} {} {}{}",
        config.who(),
        current.script.display(),
        config.interface,
        address,
        config
            .xparam
            .as_deref()
            .map(|x| format!(" {x}"))
            .unwrap_or_default()
    );
    let started = Instant::now();
    Ok(Run {
        child,
        pgid,
        started,
        deadline: started + config.timeout,
        stopping: None,
        killed: false,
    })
}

/// Looks at a running script without waiting: `Some(how it ended)` once
/// it has. Past its timeout, or once the stop cuts it, its whole group gets
/// SIGTERM, and SIGKILL once the grace is over (or at once when nothing but
/// the exited leader is left). The leader stays unreaped (a zombie) until
/// then, so its group id cannot be reused by an unrelated process before
/// the SIGKILL.
fn poll_run(slot: &Slot, id: u64, run: &mut Run) -> Option<Ended> {
    if run.killed {
        return match run.child.try_wait() {
            Ok(Some(status)) => Some(run.ended(status.to_string())),
            Ok(None) => None,
            Err(e) => Some(run.ended(format!("wait failed: {e}"))),
        };
    }
    if let Some((_, kill_at)) = run.stopping {
        let peek = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        let leader_alive = matches!(
            waitid(Id::Pid(run.pgid), peek),
            Ok(nix::sys::wait::WaitStatus::StillAlive)
        );
        if (leader_alive || group_has_others(run.pgid)) && Instant::now() < kill_at {
            return None;
        }
        let _ = killpg(run.pgid, Signal::SIGKILL);
        run.killed = true;
        return poll_run(slot, id, run);
    }
    match run.child.try_wait() {
        // Exited on its own (nothing signalled it yet): what it left
        // running in the background is its business.
        Ok(Some(status)) => Some(Ended::Exited(status)),
        Ok(None) => {
            let why = if slot.shared.is_cut(id) {
                Stop::Cut
            } else if Instant::now() >= run.deadline {
                Stop::TimedOut
            } else {
                return None;
            };
            let _ = killpg(run.pgid, Signal::SIGTERM);
            run.stopping = Some((why, Instant::now() + KILL_GRACE));
            poll_run(slot, id, run)
        }
        Err(e) => Some(Ended::TimedOut(format!("wait failed: {e}"))),
    }
}

impl Run {
    /// How a signalled script ended.
    fn ended(&self, how: String) -> Ended {
        match self.stopping {
            Some((Stop::Cut, _)) => Ended::Cut(how),
            _ => Ended::TimedOut(how),
        }
    }
}

/// The status: a script starts.
fn report_start(shared: &Shared, current: &Current, address: &str) {
    let mut report = Shared::lock(&shared.report);
    report.running = Some(HookRun {
        hook: hook_name(current.hook),
        command: format!("{} {address}", current.script.display()),
        started: SystemTime::now(),
        outcome: None,
        success: false,
        took: None,
    });
}

/// The status: a script could not be started.
fn report_not_started(shared: &Shared, current: &Current, address: &str) {
    let mut report = Shared::lock(&shared.report);
    report.last = Some(HookRun {
        hook: hook_name(current.hook),
        command: format!("{} {address}", current.script.display()),
        started: SystemTime::now(),
        outcome: Some("not started".into()),
        success: false,
        took: Some(Duration::ZERO),
    });
}

/// The status: the running script ended.
fn report_end(shared: &Shared, run: &Run, ended: &Ended) {
    let mut report = Shared::lock(&shared.report);
    let Some(mut finished) = report.running.take() else {
        return;
    };
    let (outcome, success) = match ended {
        Ended::Exited(status) => match status.code() {
            Some(code) => (format!("exit {code}"), code == 0),
            None => (status.to_string(), false),
        },
        Ended::TimedOut(how) => (format!("killed at its timeout ({how})"), false),
        Ended::Cut(how) => (format!("cut short by the stop ({how})"), false),
        Ended::Skipped => ("skipped".into(), false),
        Ended::NotStarted => ("not started".into(), false),
    };
    finished.outcome = Some(outcome);
    finished.success = success;
    finished.took = Some(run.started.elapsed());
    report.last = Some(finished);
}

fn log_end(config: &ScriptConfig, hook: Hook, script: &Path, run: &Run, ended: &Ended) {
    let name = hook_name(hook);
    match ended {
        Ended::Exited(status) if status.success() => info!(
            "{}: {name} script finished in {:.3}s",
            config.who(),
            run.started.elapsed().as_secs_f64()
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
            run.started.elapsed().as_secs_f64()
        ),
        Ended::Skipped | Ended::NotStarted => {}
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vhid: u8) -> ScriptConfig {
        ScriptConfig {
            up: None,
            down: None,
            interface: "eth9".into(),
            addresses: vec!["10.0.0.1".into()],
            xparam: None,
            timeout: Duration::from_secs(1),
            vhid,
            managed: Vec::new(),
            vmac: None,
        }
    }

    /// Hooks dropped while no script thread runs do not pile up.
    #[test]
    fn dropped_hooks_are_forgotten_without_a_script_thread() {
        for vhid in 1..=100 {
            drop(ScriptHooks::new(config(vhid)).unwrap());
        }
        let _kept = ScriptHooks::new(config(101)).unwrap();
        let inbox = Shared::lock(&INBOX);
        assert!(!inbox.running);
        assert_eq!(inbox.new_slots.len(), 1);
    }
}
