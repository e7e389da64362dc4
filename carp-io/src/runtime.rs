//! The protocol thread: any number of virtual hosts on any number of
//! interfaces, driven by one loop.
//!
//! Per interface: one frame sender, one receive ring for multicast IPv4
//! adverts and one socket per CARP group in use (each datagram is parsed
//! once and handed to the virtual host that owns its vhid), and the link
//! state. Per virtual host: its engine, hooks
//! and status. One netlink socket follows every interface. Virtual hosts
//! are added, replaced and removed while running through
//! [`RuntimeHandle`]; a removed one leaves cleanly (down hook, then the
//! leave advertisement if it was master).

use std::collections::BTreeMap;
use std::io::Read;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use carp_proto::datagram::{AdvertDatagram, AdvertDatagram6};
use carp_proto::receive::Received;
use carp_proto::ParseError;
use log::{debug, error, info, warn};
use nix::poll::{ppoll, PollFd, PollFlags};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};

use crate::clock::Clock;
use crate::events::{EventBus, Subscription};
use crate::iface::{self, LinkStatus};
use crate::interface::{Interface, Overflow, Receiver as GroupReceiver};
use crate::link::LinkMonitor;
use crate::ratelimit::RateLimitedLog;
use crate::socket::{Received6, RecvBatch};
use crate::status::{HookReportCell, InterfaceStatus, RuntimeStatus, VirtualHostStatus};
use crate::vhost::{wake, VirtualHost, VirtualHostConfig, VirtualHostId};
use crate::{Hooks, IoError};

/// Settings of the runtime itself.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// How often every interface is re-read without a notification.
    /// Netlink announces changes at once; this is a safety net. Without
    /// netlink, interfaces are polled every 100 ms.
    pub link_recheck: Duration,
    /// At most one summary line per rejection cause (and per kind of link
    /// event) per period.
    pub reject_log_period: Duration,
    /// When set, the loop goes round at least this often even with nothing
    /// to do, so that [`RuntimeHandle::heartbeat_age`] tells a stuck loop
    /// from an idle one (for systemd's watchdog).
    pub heartbeat: Option<Duration>,
}

impl Default for RuntimeConfig {
    fn default() -> RuntimeConfig {
        RuntimeConfig {
            link_recheck: Duration::from_secs(5),
            reject_log_period: Duration::from_secs(60),
            heartbeat: None,
        }
    }
}

/// Datagrams read per socket per wake-up before timers get a turn, so a
/// flood cannot delay our own advertisements by more than this much work
/// (about a millisecond).
const READ_BATCH: usize = 1024;
/// A wake-up that read this many datagrams means a flood: see
/// [`Runtime::coalesce`].
const COALESCE_AT: usize = 16;
/// How long a flooded loop lets packets gather before reading again, at
/// most: see [`coalescing_pause`].
const COALESCE: Duration = Duration::from_millis(5);
/// A periodic link re-check (a few system calls per interface) is put off
/// when an engine timer is due sooner than this.
const RECHECK_GUARD: Duration = Duration::from_millis(10);
/// The periodic link re-check is done when the loop is awake anyway and
/// it is due within this fraction of its interval.
const RECHECK_EARLY: u32 = 4;
/// Interface polling interval when netlink notifications are unavailable.
const LINK_POLL_WITHOUT_NETLINK: Duration = Duration::from_millis(100);
/// How long a command waits for the protocol loop's answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a stopping runtime looks at its hooks' pending work.
const FINISH_TICK: Duration = Duration::from_millis(100);

type Reply = Sender<Result<(), IoError>>;

enum Command {
    Add(Box<VirtualHostConfig>, Box<dyn Hooks>, Reply),
    Replace(Box<VirtualHostConfig>, Box<dyn Hooks>, Reply),
    Remove(VirtualHostId, Reply),
    StepDown(Option<VirtualHostId>),
    Shutdown {
        run_down_hook: bool,
    },
    LogStatus,
    /// The operator's demotion of a virtual host.
    SetDemote(VirtualHostId, u8, Reply),
    /// The operator's demotion of a demotion group.
    SetGroupDemote(String, u8, Reply),
    /// A track script's verdict changed (from its checker thread).
    Health {
        id: VirtualHostId,
        generation: u64,
        index: usize,
        failed: bool,
    },
}

/// Controls a running runtime from any thread.
#[derive(Clone)]
pub struct RuntimeHandle {
    commands: Sender<Command>,
    waker: Arc<UnixStream>,
    status: Arc<Mutex<StatusCells>>,
    events: Arc<EventBus>,
    heartbeat: Arc<Heartbeat>,
}

/// When the protocol loop last went round, for a watchdog.
struct Heartbeat {
    base: Instant,
    /// Milliseconds after `base`; `u64::MAX` until the first turn.
    last: AtomicU64,
    /// The runtime is stopping.
    stopping: std::sync::atomic::AtomicBool,
}

impl Heartbeat {
    fn beat(&self) {
        let ms = self.base.elapsed().as_millis() as u64;
        self.last.store(ms, Ordering::Relaxed);
    }

    /// `Duration::MAX` before the loop's first turn.
    fn age(&self) -> Duration {
        match self.last.load(Ordering::Relaxed) {
            u64::MAX => Duration::MAX,
            ms => self
                .base
                .elapsed()
                .saturating_sub(Duration::from_millis(ms)),
        }
    }
}

/// Where each virtual host's and interface's status lives.
#[derive(Default)]
struct StatusCells {
    virtual_hosts: BTreeMap<VirtualHostId, VirtualHostCells>,
    interfaces: BTreeMap<String, InterfaceStatus>,
}

/// One virtual host's status, and what its hooks report.
#[derive(Clone)]
struct VirtualHostCells {
    status: Arc<Mutex<VirtualHostStatus>>,
    hooks: Option<HookReportCell>,
}

impl VirtualHostCells {
    fn snapshot(&self) -> VirtualHostStatus {
        let mut status = self
            .status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(hooks) = &self.hooks {
            status.hooks = hooks.lock().unwrap_or_else(|e| e.into_inner()).clone();
        }
        status
    }
}

impl RuntimeHandle {
    fn send(&self, command: Command) -> bool {
        let sent = self.commands.send(command).is_ok();
        if sent {
            wake(&self.waker);
        }
        sent
    }

    fn ask(&self, command: impl FnOnce(Reply) -> Command) -> Result<(), IoError> {
        let (reply, answer) = mpsc::channel();
        if !self.send(command(reply)) {
            return Err(IoError::Stopped);
        }
        // A stuck loop must not hang the caller (the control socket, the
        // signal thread) for ever.
        match answer.recv_timeout(ASK_TIMEOUT) {
            Ok(result) => result,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(IoError::NotAnswering(ASK_TIMEOUT)),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(IoError::Stopped),
        }
    }

    /// Adds a virtual host and starts it (down hook unless neutral). Fails
    /// if its interface cannot be opened, its configuration is refused, or
    /// a virtual host with the same interface and vhid exists.
    pub fn add(&self, config: VirtualHostConfig, hooks: Box<dyn Hooks>) -> Result<(), IoError> {
        self.ask(|reply| Command::Add(Box::new(config), hooks, reply))
    }

    /// Removes a virtual host: a master runs its down hook, then sends the
    /// leave advertisement; then the virtual host is gone.
    pub fn remove(&self, id: &VirtualHostId) -> Result<(), IoError> {
        let id = id.clone();
        self.ask(|reply| Command::Remove(id, reply))
    }

    /// Replaces a virtual host's configuration: the new one is checked
    /// and its interface opened first (on failure the old one runs on,
    /// untouched); then the old one leaves as with [`RuntimeHandle::remove`]
    /// and the new one starts once the old one is gone (its down hook
    /// finished and its leave advert sent), so the two never run hooks for
    /// the same addresses at once.
    pub fn replace(&self, config: VirtualHostConfig, hooks: Box<dyn Hooks>) -> Result<(), IoError> {
        self.ask(|reply| Command::Replace(Box::new(config), hooks, reply))
    }

    /// Sets the operator's demotion of a virtual host (added to what its
    /// tracked interfaces and scripts and its start-up add), live: no
    /// restart, no script.
    pub fn set_demote(&self, id: &VirtualHostId, demote: u8) -> Result<(), IoError> {
        self.ask(|reply| Command::SetDemote(id.clone(), demote, reply))
    }

    /// UCARP's SIGUSR2 for one virtual host (`Some`) or all (`None`): a
    /// master steps down and keeps quiet for its hold time.
    pub fn step_down(&self, id: Option<&VirtualHostId>) {
        self.send(Command::StepDown(id.cloned()));
    }

    /// Stops every virtual host: running hooks are interrupted, down hooks
    /// run if `run_down_hook` (UCARP `--shutdown`) and, once they have
    /// finished, masters send the leave advertisement; then
    /// [`Runtime::run`] returns. A second call while stopping stops at
    /// once: hooks are abandoned (scripts killed), and a leave advert
    /// still waiting for its down hook is dropped (the address may still
    /// be here, so handing over would put it on two hosts); `run` then
    /// returns [`IoError::Unclean`].
    pub fn shutdown(&self, run_down_hook: bool) {
        self.send(Command::Shutdown { run_down_hook });
    }

    /// Transitions as they happen, with room for `capacity` not yet
    /// taken; see [`crate::events`].
    pub fn subscribe(&self, capacity: usize) -> Subscription {
        self.events.subscribe(capacity)
    }

    /// How long ago the protocol loop last went round. With
    /// [`RuntimeConfig::heartbeat`] set, a running loop goes round at least
    /// that often, so an age well past it means the loop is stuck.
    pub fn heartbeat_age(&self) -> Duration {
        self.heartbeat.age()
    }

    /// Sets the operator's demotion of a demotion group, added to the
    /// group's sum: every member advertises it. Fails if no virtual host
    /// is in that group.
    pub fn set_group_demote(&self, group: &str, demote: u8) -> Result<(), IoError> {
        let group = group.to_string();
        self.ask(|reply| Command::SetGroupDemote(group, demote, reply))
    }

    /// UCARP's SIGUSR1: logs one status line per virtual host.
    pub fn log_status(&self) {
        self.send(Command::LogStatus);
    }

    /// Every virtual host's and interface's status now.
    pub fn status(&self) -> RuntimeStatus {
        // The cells are copied out first, so that the protocol loop (which
        // takes this lock) never waits behind a script thread's lock.
        let (interfaces, cells): (Vec<InterfaceStatus>, Vec<VirtualHostCells>) = {
            let cells = self.status.lock().unwrap_or_else(|e| e.into_inner());
            (
                cells.interfaces.values().cloned().collect(),
                cells.virtual_hosts.values().cloned().collect(),
            )
        };
        RuntimeStatus {
            interfaces,
            virtual_hosts: cells.iter().map(VirtualHostCells::snapshot).collect(),
        }
    }

    /// Whether the runtime has begun to stop (its loop then only finishes
    /// hooks, bounded by their timeouts).
    pub fn is_stopping(&self) -> bool {
        self.heartbeat.stopping.load(Ordering::Relaxed)
    }
}

/// Where the runtime is in stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stopping {
    No,
    /// Shut down; waiting for down hooks and leave adverts.
    Graceful,
    /// Told twice: leave now.
    Forced,
}

/// The protocol loop and everything it drives.
pub struct Runtime {
    config: RuntimeConfig,
    clock: Clock,
    interfaces: BTreeMap<String, Interface>,
    virtual_hosts: BTreeMap<VirtualHostId, VirtualHost>,
    /// Removed or stopped, still sending a held leave advert or finishing
    /// hooks.
    leaving: Vec<VirtualHost>,
    /// Added (or replaced) while a virtual host with the same identity is
    /// still leaving: starts once that one is gone. Interfaces and groups
    /// are already open.
    waiting: BTreeMap<VirtualHostId, (VirtualHostConfig, Box<dyn Hooks>)>,
    link: Option<LinkMonitor>,
    commands: Receiver<Command>,
    waker: UnixStream,
    handle: RuntimeHandle,
    stopping: Stopping,
    /// Virtual hosts stopped because their interface vanished.
    lost: Vec<String>,
    /// Virtual hosts forced to stop before their down hook finished.
    unclean: Vec<String>,
    next_link_check: Instant,
    /// Numbers each started virtual host (see `VirtualHost::generation`).
    next_generation: u64,
    /// `run` has begun: threads may be started.
    running: bool,
    /// The operator's demotion of demotion groups, by name.
    group_demote: BTreeMap<String, u8>,
    /// Wakes the loop at the next deadline. Not ppoll's own timeout: the
    /// kernel lets a poll timeout fire up to 0.1 % late (1 ms of a 1 s
    /// advert interval, 3 ms of a master-down time), a timerfd to the
    /// task's timer slack (50 µs). `None`: ppoll's timeout after all.
    timer: Option<TimerFd>,
    /// Reads interfaces' index and carrier (re-checks, tracking).
    links: iface::LinkReader,
}

impl Runtime {
    /// A runtime with no virtual host yet. Opens the netlink socket, the
    /// control socket and the socket link state is read through; starts no
    /// thread. All of them belong to the calling thread's network
    /// namespace: run the runtime in that same namespace (interfaces opened
    /// later are looked up in the running thread's).
    pub fn new(config: RuntimeConfig) -> Result<Runtime, IoError> {
        let control = |e| IoError::socket("creating the control socket", "-", e);
        let (waker, wake_end) = UnixStream::pair().map_err(control)?;
        for end in [&waker, &wake_end] {
            end.set_nonblocking(true).map_err(control)?;
        }
        let links = iface::LinkReader::new()
            .map_err(|e| IoError::socket("creating the interface-state socket", "-", e))?;
        let link = LinkMonitor::open(0)
            .map_err(|e| {
                warn!(
                    "no netlink link notifications ({e}); polling interfaces every {:?}",
                    LINK_POLL_WITHOUT_NETLINK
                )
            })
            .ok();
        let (commands_tx, commands) = mpsc::channel();
        let handle = RuntimeHandle {
            commands: commands_tx,
            waker: Arc::new(wake_end),
            status: Arc::new(Mutex::new(StatusCells::default())),
            events: Arc::new(EventBus::default()),
            heartbeat: Arc::new(Heartbeat {
                base: Instant::now(),
                last: AtomicU64::new(u64::MAX),
                stopping: std::sync::atomic::AtomicBool::new(false),
            }),
        };
        Ok(Runtime {
            config,
            clock: Clock::start(),
            interfaces: BTreeMap::new(),
            virtual_hosts: BTreeMap::new(),
            leaving: Vec::new(),
            waiting: BTreeMap::new(),
            link,
            commands,
            waker,
            handle,
            stopping: Stopping::No,
            lost: Vec::new(),
            unclean: Vec::new(),
            next_link_check: Instant::now(),
            next_generation: 0,
            running: false,
            group_demote: BTreeMap::new(),
            timer: TimerFd::new(
                ClockId::CLOCK_MONOTONIC,
                TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
            )
            .map_err(|e| warn!("no timerfd ({e}); timers may fire up to 0.1 % late"))
            .ok(),
            links,
        })
    }

    /// A handle to control the runtime once it runs.
    pub fn handle(&self) -> RuntimeHandle {
        self.handle.clone()
    }

    /// Adds a virtual host before [`Runtime::run`] (opening its interface
    /// and group now, so that start-up errors come back here).
    pub fn add(&mut self, config: VirtualHostConfig, hooks: Box<dyn Hooks>) -> Result<(), IoError> {
        let id = config.id();
        if self.virtual_hosts.contains_key(&id) || self.waiting.contains_key(&id) {
            return Err(IoError::Duplicate(id.to_string()));
        }
        self.prepare(&config)?;
        self.admit(config, hooks)
    }

    /// A prepared virtual host whose identity is free: starts it, or parks
    /// it until its predecessor has left.
    fn admit(&mut self, config: VirtualHostConfig, hooks: Box<dyn Hooks>) -> Result<(), IoError> {
        let id = config.id();
        // The operator configured something again: an interface lost
        // earlier no longer ends the runtime when nothing else runs.
        self.lost.clear();
        if self.leaving.iter().any(|v| v.id == id) {
            info!("{id}: starts once its previous configuration has left");
            self.waiting.insert(id, (config, hooks));
            return Ok(());
        }
        self.start(config, hooks)
    }

    /// Checks a configuration and opens its interface and group: all that
    /// can fail before a virtual host starts.
    fn prepare(&mut self, config: &VirtualHostConfig) -> Result<(), IoError> {
        config.check_families()?;
        config.engine.validate()?;
        self.open_interface(&config.interface, &config.groups())?;
        let iface = &self.interfaces[&config.interface];
        if config.source_v6().is_some() && iface.info.ipv6_disabled {
            let name = &config.interface;
            self.close_unused();
            // It would hear no peer and become a second master.
            return Err(IoError::Families(format!(
                "{}: IPv6 is disabled on {name} (net.ipv6.conf.{name}.disable_ipv6): \
                 its IPv6 adverts could not be received",
                config.id()
            )));
        }
        Ok(())
    }

    /// Replaces a running (or waiting) virtual host; see
    /// [`RuntimeHandle::replace`].
    fn replace(
        &mut self,
        mut config: VirtualHostConfig,
        hooks: Box<dyn Hooks>,
    ) -> Result<(), IoError> {
        let id = config.id();
        if !self.virtual_hosts.contains_key(&id) && !self.waiting.contains_key(&id) {
            return Err(IoError::NoSuchVirtualHost(id.to_string()));
        }
        // The operator's demotion set at run time (`ucarp demote`) survives
        // a restart for another setting; a new configured value wins.
        if let Some(old) = self.virtual_hosts.get(&id) {
            if old.config.engine.demote == config.engine.demote {
                config.engine.demote = old.manual_demote;
            }
        }
        self.prepare(&config)?;
        self.remove(&id, true)?;
        self.admit(config, hooks)
    }

    /// Starts a prepared virtual host.
    fn start(&mut self, config: VirtualHostConfig, hooks: Box<dyn Hooks>) -> Result<(), IoError> {
        let id = config.id();
        let iface = self
            .interfaces
            .get_mut(&config.interface)
            .expect("just opened");
        let mut vhost = VirtualHost::start(
            config,
            hooks,
            self.clock.now(),
            Arc::clone(&self.handle.waker),
            self.config.reject_log_period,
            Arc::clone(&self.handle.events),
        )?;
        let to = if vhost.config.peers.is_empty() {
            format!("group {}", join(&vhost.config.groups()))
        } else {
            format!("unicast peers {}", join(&vhost.config.peers))
        };
        info!(
            "{id}: starting ({}) from {}, virtual addresses {}, {to}{}",
            iface.info.mac,
            join(&vhost.config.sources()),
            join(vhost.config.engine.auth.addresses()),
            if vhost.config.broadcast {
                " (broadcast)"
            } else {
                ""
            }
        );
        if !iface.link_up && !vhost.config.engine.ignore_link_state {
            warn!("{id}: {} has no carrier; waiting for it", iface.info.name);
            vhost.engine.handle_link_change(self.clock.now(), false);
        }
        // The start-up transition is acted on by the loop's next turn, so
        // hooks set before `run` see it.
        self.handle
            .status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .virtual_hosts
            .insert(
                id.clone(),
                VirtualHostCells {
                    status: vhost.status_cell(),
                    hooks: vhost.hooks.report(),
                },
            );
        self.next_generation += 1;
        vhost.generation = self.next_generation;
        if self.running {
            // Added by a reload: not a process start.
            vhost.skip_startup_demotion();
            self.start_checkers(&mut vhost);
        }
        self.virtual_hosts.insert(id, vhost);
        // Before `run`, once for all there instead of once per virtual
        // host (hundreds at start-up).
        if self.running {
            self.check_tracking();
            self.apply_demotion();
        }
        self.publish_interfaces();
        Ok(())
    }

    /// Replaces a virtual host's hooks (before [`Runtime::run`]).
    pub fn set_hooks(&mut self, id: &VirtualHostId, hooks: Box<dyn Hooks>) {
        if let Some(vhost) = self.virtual_hosts.get_mut(id) {
            let mut cells = self.handle.status.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(cell) = cells.virtual_hosts.get_mut(id) {
                cell.hooks = hooks.report();
            }
            vhost.hooks = hooks;
        }
    }

    fn open_interface(&mut self, name: &str, groups: &[IpAddr]) -> Result<(), IoError> {
        if !self.interfaces.contains_key(name) {
            let period = self.config.reject_log_period;
            let iface = Interface::open(
                name,
                crate::random_u64().unwrap_or(1),
                RateLimitedLog::interface_events(name, period),
                RateLimitedLog::interface_rejections(name, period),
            )?;
            self.interfaces.insert(name.to_string(), iface);
        }
        let iface = self.interfaces.get_mut(name).expect("opened above");
        if let Err(e) = groups.iter().try_for_each(|group| iface.join(*group)) {
            self.close_unused();
            return Err(e);
        }
        Ok(())
    }

    /// Closes interfaces and groups no virtual host uses.
    fn close_unused(&mut self) {
        let users: Vec<(String, IpAddr)> = self
            .virtual_hosts
            .values()
            .chain(&self.leaving)
            .map(|v| &v.config)
            .chain(self.waiting.values().map(|(config, _)| config))
            .flat_map(|c| c.groups().into_iter().map(|g| (c.interface.clone(), g)))
            .collect();
        self.interfaces.retain(|name, iface| {
            let groups: Vec<IpAddr> = users
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, g)| *g)
                .collect();
            iface.retain_groups(&groups);
            !groups.is_empty()
        });
        self.publish_interfaces();
    }

    fn publish_interfaces(&mut self) {
        let mut cells = self.handle.status.lock().unwrap_or_else(|e| e.into_inner());
        cells.interfaces = self
            .interfaces
            .iter_mut()
            .map(|(name, iface)| (name.clone(), iface.publish()))
            .collect();
    }

    /// Runs until shut down (`Ok`), or until every virtual host has stopped
    /// because its interface vanished (`Err`, after their down hooks).
    pub fn run(mut self) -> Result<(), IoError> {
        // Wake at the deadline, not up to 50 µs (the default slack) later:
        // adverts and takeovers are timed from it.
        if let Err(e) = nix::sys::prctl::set_timerslack(1) {
            debug!("cannot lower timer slack: {e}");
        }
        let mut scratch = Scratch::new();
        let mut pause: Option<Duration> = None;
        let mut last_read = Instant::now();
        self.running = true;
        self.handle.heartbeat.beat();
        let ids: Vec<VirtualHostId> = self.virtual_hosts.keys().cloned().collect();
        for id in ids {
            let mut vhost = self.virtual_hosts.remove(&id).expect("listed above");
            self.start_checkers(&mut vhost);
            self.virtual_hosts.insert(id, vhost);
        }
        self.check_tracking();
        self.apply_demotion();
        let result = loop {
            self.settle();
            if self.stopping == Stopping::Forced
                || (self.stopping == Stopping::Graceful
                    && self.virtual_hosts.is_empty()
                    && self.leaving.iter().all(|v| !v.holds_leave()))
            {
                break Ok(());
            }
            if self.stopping == Stopping::No
                && self.virtual_hosts.is_empty()
                && self.waiting.is_empty()
                && !self.lost.is_empty()
            {
                // Nothing may be added or started while the down hooks
                // finish.
                self.stopping = Stopping::Graceful;
                self.waiting.clear();
                break Err(IoError::InterfaceGone(self.lost.join(", ")));
            }
            let now = Instant::now();
            for iface in self.interfaces.values_mut() {
                iface.flush_logs(now);
            }
            // Leaving vhosts too: their summary deadlines are in wait()'s.
            for vhost in self
                .virtual_hosts
                .values_mut()
                .chain(self.leaving.iter_mut())
            {
                vhost.flush_logs(now);
            }
            // After a flooded read the pause comes here, before the wait
            // and the read: whatever arrives during it is read before any
            // timer fires (a genuine advert among the flood is never late
            // for the master-down time).
            if let Some(pause) = pause.take() {
                self.coalesce(pause);
            }
            let woke = self.wait();
            if woke.adverts {
                let started = Instant::now();
                // A read that stopped at its bound left packets behind: no
                // pause then, or a flood faster than bound / pause would
                // fill the buffers and drop genuine adverts with the
                // forged ones.
                if let (read, false) = self.read_adverts(&mut scratch) {
                    pause = coalescing_pause(read, started - last_read);
                }
                last_read = started;
            }
            if woke.command {
                self.run_commands();
            }
            // Timers before the link re-check: reading interfaces costs
            // system calls, which must not delay an advert.
            self.fire_timers();
            let now = Instant::now();
            if self
                .virtual_hosts
                .values()
                .any(|v| v.startup_demotion_end().is_some_and(|end| end <= now))
            {
                self.apply_demotion();
            }
            let changes = match (&self.link, woke.link) {
                (Some(link), true) => link.changes(),
                _ => Default::default(),
            };
            self.addresses_removed(&changes.removed);
            if changes.lost {
                for vhost in self.virtual_hosts.values_mut() {
                    vhost.handle_notifications_lost();
                }
            }
            let link_changed = changes.link;
            // Done a little early when awake anyway (for an advert, a
            // timer): an idle daemon then never wakes just for it.
            let recheck_due =
                Instant::now() + self.link_check_interval() / RECHECK_EARLY >= self.next_link_check;
            let timer_soon = self
                .next_timer()
                .map(|due| self.clock.until(due))
                .filter(|&left| left < RECHECK_GUARD);
            if let (true, Some(left), false) = (recheck_due, timer_soon, link_changed) {
                // The periodic re-check waits until the timer has fired.
                self.next_link_check = Instant::now() + left + Duration::from_millis(1);
            } else if link_changed || recheck_due {
                self.next_link_check = Instant::now() + self.link_check_interval();
                self.check_links();
            }
        };
        self.finish_hooks();
        if !self.unclean.is_empty() && result.is_ok() {
            return Err(IoError::Unclean(self.unclean.join(", ")));
        }
        result
    }

    /// Releases held transmits, and retires virtual hosts that are done.
    fn settle(&mut self) {
        let now = self.clock.now();
        for vhost in self
            .virtual_hosts
            .values_mut()
            .chain(self.leaving.iter_mut())
            .filter(|v| !v.settled())
        {
            if let Some(iface) = self.interfaces.get_mut(&vhost.config.interface) {
                vhost.drain(iface, now);
                vhost.release_held(iface, now);
            }
        }
        for vhost in self.virtual_hosts.values_mut().filter(|v| !v.settled()) {
            if let Some(iface) = self.interfaces.get_mut(&vhost.config.interface) {
                vhost.refresh(iface, now);
            }
        }
        let (gone, leaving): (Vec<VirtualHost>, Vec<VirtualHost>) =
            std::mem::take(&mut self.leaving)
                .into_iter()
                .partition(|v| !v.holds_leave() && !v.hooks.pending());
        self.leaving = leaving;
        if gone.is_empty() {
            return;
        }
        for vhost in gone {
            self.retire(vhost);
        }
        self.close_unused();
    }

    /// A leaving virtual host is done: its status goes, its hooks are let
    /// go of off this thread, and a configuration waiting for its identity
    /// starts.
    fn retire(&mut self, vhost: VirtualHost) {
        {
            let mut cells = self.handle.status.lock().unwrap_or_else(|e| e.into_inner());
            let ours = cells
                .virtual_hosts
                .get(&vhost.id)
                .is_some_and(|cell| Arc::ptr_eq(&cell.status, &vhost.status_cell()));
            if ours {
                cells.virtual_hosts.remove(&vhost.id);
            }
        }
        let id = vhost.id.clone();
        finish_elsewhere(vhost.hooks);
        if let Some((config, hooks)) = self.waiting.remove(&id) {
            if let Err(e) = self.start(config, hooks) {
                error!("{id}: cannot start its new configuration: {e}");
            }
        }
    }

    fn next_timer(&self) -> Option<carp_engine::Time> {
        self.virtual_hosts
            .values()
            .filter_map(|v| v.engine.poll_timeout())
            .min()
    }

    fn fire_timers(&mut self) {
        let now = self.clock.now();
        for vhost in self.virtual_hosts.values_mut() {
            if vhost.engine.poll_timeout().is_some_and(|due| due <= now) {
                vhost.engine.handle_timeout(now);
                if let Some(iface) = self.interfaces.get_mut(&vhost.config.interface) {
                    vhost.drain(iface, now);
                }
            }
        }
    }

    fn link_check_interval(&self) -> Duration {
        if self.link.is_some() {
            self.config.link_recheck
        } else {
            LINK_POLL_WITHOUT_NETLINK
        }
    }

    /// Under a flood: lets packets gather for `pause` (never past the
    /// next timer) so that the next wake-up reads a batch of them, instead
    /// of waking, and switching tasks, for every one or two.
    fn coalesce(&self, mut pause: Duration) {
        if let Some(due) = self.next_timer() {
            pause = pause.min(self.clock.until(due));
        }
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
    }

    /// Arms the timerfd for `next` (the time to the next deadline); the
    /// timeout ppoll itself then needs: none, zero when a deadline is due,
    /// or `next` when there is no timerfd or arming it failed.
    fn arm_timer(&self, next: Option<Duration>) -> Option<TimeSpec> {
        let Some(timer) = &self.timer else {
            return next.map(TimeSpec::from_duration);
        };
        let armed = match next {
            Some(left) if left.is_zero() => return Some(TimeSpec::from_duration(left)),
            Some(left) => timer.set(
                Expiration::OneShot(TimeSpec::from_duration(left)),
                TimerSetTimeFlags::empty(),
            ),
            None => timer.unset(),
        };
        match armed {
            Ok(()) => None,
            Err(e) => {
                warn!("arming the timerfd failed ({e}); using the poll timeout");
                next.map(TimeSpec::from_duration)
            }
        }
    }

    /// Sleeps until a datagram, a command, a link notification, or the next
    /// deadline (engine timer, link re-check, log summary, hook wait).
    fn wait(&mut self) -> Woke {
        let now = Instant::now();
        self.handle.heartbeat.beat();
        let timer = self.next_timer().map(|due| self.clock.until(due));
        let instants = self
            .virtual_hosts
            .values()
            .chain(&self.leaving)
            .flat_map(|v| {
                [
                    v.next_log_flush(),
                    v.hook_deadline(),
                    v.startup_demotion_end(),
                    v.next_refresh(),
                ]
            })
            .chain(self.interfaces.values().map(Interface::next_log_flush))
            .flatten()
            .map(|at| at.saturating_duration_since(now));
        let earliest = instants
            .chain([self.next_link_check.saturating_duration_since(now)])
            .chain(self.config.heartbeat)
            .chain(timer)
            .min();
        let timeout = self.arm_timer(earliest);
        let mut fds = vec![PollFd::new(self.waker.as_fd(), PollFlags::POLLIN)];
        if let Some(timer) = &self.timer {
            fds.push(PollFd::new(timer.as_fd(), PollFlags::POLLIN));
        }
        let link_fd = fds.len();
        if let Some(link) = &self.link {
            fds.push(PollFd::new(link.as_fd(), PollFlags::POLLIN));
        }
        let first_receiver = fds.len();
        for iface in self.interfaces.values() {
            for fd in iface.receive_fds() {
                fds.push(PollFd::new(fd, PollFlags::POLLIN));
            }
        }

        if let Err(e) = ppoll(&mut fds, timeout, None) {
            if e != nix::errno::Errno::EINTR {
                error!("poll failed: {e}");
            }
            return Woke::default();
        }
        let ready = |fd: &PollFd<'_>| fd.revents().is_some_and(|r| !r.is_empty());
        if let Some(timer) = self.timer.as_ref().filter(|_| ready(&fds[1])) {
            // Reads the expiry, so the descriptor is quiet until re-armed
            // (non-blocking: returns at once).
            let _ = timer.wait();
        }
        let failed = fds[first_receiver..]
            .iter()
            .any(|fd| fd.revents().is_some_and(|r| r.contains(PollFlags::POLLERR)));
        let readable: Vec<bool> = fds[first_receiver..].iter().map(ready).collect();
        let woke = Woke {
            command: ready(&fds[0]),
            link: self.link.is_some() && ready(&fds[link_fd]),
            adverts: fds[first_receiver..].iter().any(ready),
        };
        drop(fds);
        // Only what has something is read: no system call for the others.
        let mut readable = readable.into_iter();
        for iface in self.interfaces.values_mut() {
            iface.mark_readable(&mut readable);
        }
        if failed {
            // A pending socket error (the ring's ENETDOWN when the
            // interface goes down) is reported by every poll until read:
            // read, or the loop would spin.
            for iface in self.interfaces.values_mut() {
                iface.take_errors();
            }
        }
        woke
    }

    /// Reads every interface's ring and receive sockets (a bounded batch
    /// each), parses each datagram once and hands it to the virtual host
    /// owning its vhid. Returns how many datagrams were read, and whether
    /// one still had some when its bound ([`READ_BATCH`]) was reached.
    fn read_adverts(&mut self, scratch: &mut Scratch) -> (usize, bool) {
        let now = self.clock.now();
        let at = Instant::now();
        let mut read = 0;
        let mut capped = false;
        let Scratch {
            buf,
            batch,
            ring: parsed,
            sockets: received,
            id,
        } = scratch;
        for (name, iface) in self.interfaces.iter_mut() {
            // One key for the interface's packets (its buffer reused).
            id.interface.clone_from(name);
            let rounds = read_ring(id, iface, &mut self.virtual_hosts, (now, at), parsed);
            read += rounds;
            capped |= rounds >= READ_BATCH;
            for group_index in 0..iface.receivers.len() {
                if !iface.readable(group_index) {
                    continue;
                }
                let mut rounds = 0;
                while rounds < READ_BATCH {
                    received.clear();
                    match &iface.receivers[group_index].1 {
                        GroupReceiver::V4(receiver) => match receiver.recv_batch(batch) {
                            Ok(0) => break,
                            Ok(_) => {
                                iface.receive_overflowed(batch.dropped(), Overflow::Socket4);
                                received.extend(batch.datagrams().map(|bytes| {
                                    AdvertDatagram::parse(bytes)
                                        .map(Received::from)
                                        .map_err(|e| (ipv4_source(bytes), e))
                                }))
                            }
                            Err(e) => {
                                error!("interface {name}: receive failed: {e}");
                                break;
                            }
                        },
                        GroupReceiver::V6(receiver) => match receiver.recv(buf) {
                            Ok(None) => break,
                            Ok(Some(packet)) => {
                                iface.receive_overflowed(packet.dropped, Overflow::Socket6);
                                received.push(parse_received6(&packet).map(Received::from));
                            }
                            Err(e) => {
                                error!("interface {name}: receive failed: {e}");
                                break;
                            }
                        },
                    }
                    rounds += received.len();
                    read += received.len();
                    let full = received.len() == RecvBatch::LEN;
                    for one in received.drain(..) {
                        let hosts = &mut self.virtual_hosts;
                        deliver(id, iface, group_index, hosts, (now, at), one);
                    }
                    if matches!(iface.receivers[group_index].1, GroupReceiver::V4(_)) && !full {
                        break;
                    }
                }
                capped |= rounds >= READ_BATCH;
            }
        }
        // Counts changed only when a packet was rejected here.
        if self.interfaces.values().any(Interface::unpublished) {
            self.publish_interfaces();
        }
        (read, capped)
    }

    fn run_commands(&mut self) {
        let mut sink = [0u8; 64];
        while matches!((&self.waker).read(&mut sink), Ok(n) if n > 0) {}
        while let Ok(command) = self.commands.try_recv() {
            match command {
                Command::Add(config, hooks, reply) => {
                    let result = if self.stopping == Stopping::No {
                        self.add(*config, hooks)
                    } else {
                        Err(IoError::Stopped)
                    };
                    let _ = reply.send(result);
                }
                Command::Replace(config, hooks, reply) => {
                    let result = if self.stopping == Stopping::No {
                        self.replace(*config, hooks)
                    } else {
                        Err(IoError::Stopped)
                    };
                    let _ = reply.send(result);
                }
                Command::Remove(id, reply) => {
                    let _ = reply.send(self.remove(&id, true));
                }
                Command::StepDown(id) => self.step_down(id.as_ref()),
                Command::Health {
                    id,
                    generation,
                    index,
                    failed,
                } => {
                    let vhost = self.virtual_hosts.get_mut(&id);
                    if let Some(vhost) = vhost.filter(|v| v.generation == generation) {
                        vhost.handle_script_health(index, failed);
                        self.apply_demotion();
                    }
                }
                Command::SetDemote(id, demote, reply) => {
                    let result = match self.virtual_hosts.get_mut(&id) {
                        Some(vhost) => {
                            vhost.manual_demote = demote;
                            self.apply_demotion();
                            Ok(())
                        }
                        None => Err(IoError::NoSuchVirtualHost(id.to_string())),
                    };
                    let _ = reply.send(result);
                }
                Command::SetGroupDemote(group, demote, reply) => {
                    let known = self
                        .virtual_hosts
                        .values()
                        .any(|v| v.config.demote_group.as_deref() == Some(group.as_str()));
                    let result = if known {
                        if demote == 0 {
                            self.group_demote.remove(&group);
                        } else {
                            self.group_demote.insert(group, demote);
                        }
                        self.apply_demotion();
                        Ok(())
                    } else {
                        Err(IoError::NoSuchGroup(group))
                    };
                    let _ = reply.send(result);
                }
                Command::Shutdown { run_down_hook } => self.shut_down(run_down_hook),
                Command::LogStatus => {
                    // Leaving ones too (marked stopping): they still run.
                    let mut all: Vec<&VirtualHost> =
                        self.virtual_hosts.values().chain(&self.leaving).collect();
                    all.sort_by(|a, b| a.id.cmp(&b.id));
                    for vhost in all {
                        vhost.log_status(self.interfaces.get(&vhost.config.interface));
                    }
                }
            }
        }
    }

    /// Takes a virtual host out of the election: shut down (down hook if
    /// `run_down_hook` and master; the leave advert after it), then kept
    /// among the leaving until its hooks are done.
    /// A configuration still waiting for its predecessor is dropped
    /// unstarted.
    fn remove(&mut self, id: &VirtualHostId, run_down_hook: bool) -> Result<(), IoError> {
        if self.waiting.remove(id).is_some() {
            return Ok(());
        }
        let mut vhost = self
            .virtual_hosts
            .remove(id)
            .ok_or_else(|| IoError::NoSuchVirtualHost(id.to_string()))?;
        // Its status stays, marked stopping, until it has left.
        vhost.set_stopping();
        vhost.hooks.interrupt();
        if !run_down_hook {
            vhost.release_owned();
        }
        let now = self.clock.now();
        vhost.engine.shutdown(now, run_down_hook);
        if let Some(iface) = self.interfaces.get_mut(&id.interface) {
            vhost.drain(iface, now);
        }
        self.leaving.push(vhost);
        // Its share of a group's demotion goes with it.
        self.apply_demotion();
        Ok(())
    }

    fn step_down(&mut self, id: Option<&VirtualHostId>) {
        let now = self.clock.now();
        for (vid, vhost) in self.virtual_hosts.iter_mut() {
            if id.is_some_and(|id| id != vid) {
                continue;
            }
            if !vhost.engine.step_down(now) {
                info!("{vid}: asked to step down, but not master");
            }
            if let Some(iface) = self.interfaces.get_mut(&vid.interface) {
                vhost.drain(iface, now);
            }
        }
    }

    /// First request: every virtual host leaves (see [`Runtime::remove`]).
    /// Second: stop now.
    fn shut_down(&mut self, run_down_hook: bool) {
        self.handle
            .heartbeat
            .stopping
            .store(true, Ordering::Relaxed);
        match self.stopping {
            Stopping::No => {
                self.stopping = Stopping::Graceful;
                self.waiting.clear();
                let ids: Vec<VirtualHostId> = self.virtual_hosts.keys().cloned().collect();
                for id in ids {
                    let _ = self.remove(&id, run_down_hook);
                }
            }
            Stopping::Graceful | Stopping::Forced => {
                warn!("asked again to stop: killing running scripts and leaving now");
                self.stopping = Stopping::Forced;
                for vhost in self
                    .virtual_hosts
                    .values_mut()
                    .chain(self.leaving.iter_mut())
                {
                    vhost.hooks.abandon();
                    // A leave advert still held means its down hook did not
                    // finish: the address may still be here, and handing
                    // over at once would put it on two hosts.
                    if vhost.drop_held_leave() {
                        error!(
                            "{}: stopped before the down hook finished; the virtual address may still be configured on this host",
                            vhost.id
                        );
                        self.unclean.push(vhost.id.to_string());
                    }
                }
            }
        }
    }

    /// Waits for the leaving virtual hosts' hooks while still answering
    /// commands, so that a second stop signal abandons them; then lets
    /// every hook finish.
    fn finish_hooks(&mut self) {
        self.handle
            .heartbeat
            .stopping
            .store(true, Ordering::Relaxed);
        loop {
            self.handle.heartbeat.beat();
            self.settle();
            let pending = self.leaving.iter().any(|v| v.hooks.pending());
            if self.stopping == Stopping::Forced || !pending {
                break;
            }
            let mut fds = [PollFd::new(self.waker.as_fd(), PollFlags::POLLIN)];
            let tick = TimeSpec::from_duration(FINISH_TICK);
            if matches!(ppoll(&mut fds, Some(tick), None), Ok(n) if n > 0) {
                self.run_commands();
            }
        }
        for vhost in self
            .virtual_hosts
            .values_mut()
            .chain(self.leaving.iter_mut())
        {
            vhost.hooks.finish();
        }
    }

    /// Re-reads every interface: carrier changes go to the virtual hosts
    /// (unless they ignore link state), a new index (deleted and
    /// re-created) re-opens the sockets and makes masters take their
    /// addresses again, a vanished interface stops the virtual hosts that
    /// follow link state, and a failure to read is only retried later.
    /// Addresses the kernel says were removed: masters put back those their
    /// hooks own.
    fn addresses_removed(&mut self, removed: &[(u32, IpAddr)]) {
        for (index, addr) in removed {
            for vhost in self.virtual_hosts.values_mut() {
                // With a virtual MAC the addresses live on its device,
                // whose index changes if it is made again: any removal of
                // an owned address counts (putting it back is harmless).
                let ours = vhost.config.vmac.is_some()
                    || self
                        .interfaces
                        .get(&vhost.config.interface)
                        .is_some_and(|iface| iface.info.index == *index);
                if ours {
                    vhost.handle_address_removed(*addr);
                }
            }
        }
    }

    fn check_links(&mut self) {
        let names: Vec<String> = self.interfaces.keys().cloned().collect();
        for name in names {
            let status = self.links.status(&name);
            let iface = self.interfaces.get_mut(&name).expect("listed above");
            match status {
                Err(e) => iface.event("interface_unreadable", || {
                    format!("cannot read its state ({e}); trying again")
                }),
                Ok(None) => self.interface_gone(&name),
                Ok(Some(status)) => self.interface_seen(&name, status),
            }
        }
        self.check_tracking();
        self.publish_interfaces();
    }

    /// Reads the carrier of every tracked interface once and lets each
    /// virtual host set its demotion from it.
    fn check_tracking(&mut self) {
        let mut names: Vec<&str> = self
            .virtual_hosts
            .values()
            .flat_map(|v| v.config.track_interfaces.iter().map(|t| t.name.as_str()))
            .collect();
        if names.is_empty() {
            return;
        }
        names.sort_unstable();
        names.dedup();
        // A failed read is unknown (None): it changes nothing.
        let up: BTreeMap<String, Option<bool>> = names
            .into_iter()
            .map(|name| {
                let running = self
                    .links
                    .status(name)
                    .ok()
                    .map(|s| s.is_some_and(|s| s.running));
                (name.to_string(), running)
            })
            .collect();
        let mut changed = false;
        for vhost in self.virtual_hosts.values_mut() {
            changed |= vhost.apply_tracking(|name| up.get(name).copied().flatten());
        }
        if changed {
            self.apply_demotion();
        }
    }

    /// Starts a virtual host's track-script threads. Only from `run`: before
    /// it, the process may still fork (`--daemonize`), and threads must not
    /// exist then.
    fn start_checkers(&self, vhost: &mut VirtualHost) {
        let (handle, who, generation) = (self.handle.clone(), vhost.id.clone(), vhost.generation);
        vhost.start_checkers(move |index, failed| {
            handle.send(Command::Health {
                id: who.clone(),
                generation,
                index,
                failed,
            });
        });
    }

    /// Sets every virtual host's advertised demotion: its own, or the sum
    /// of its group members' own (saturating), so a group moves together.
    fn apply_demotion(&mut self) {
        let at = Instant::now();
        let own: BTreeMap<VirtualHostId, u8> = self
            .virtual_hosts
            .iter_mut()
            .map(|(id, v)| (id.clone(), v.own_demote(at)))
            .collect();
        let mut groups: BTreeMap<String, u8> = BTreeMap::new();
        for (id, vhost) in &self.virtual_hosts {
            if let Some(group) = &vhost.config.demote_group {
                let sum = groups
                    .entry(group.clone())
                    .or_insert_with(|| self.group_demote.get(group).copied().unwrap_or(0));
                *sum = sum.saturating_add(own[id]);
            }
        }
        let now = self.clock.now();
        for (id, vhost) in self.virtual_hosts.iter_mut() {
            let demote = match &vhost.config.demote_group {
                Some(group) => groups[group],
                None => own[id],
            };
            vhost.set_demote(now, demote);
        }
    }

    fn interface_seen(&mut self, name: &str, LinkStatus { index, running }: LinkStatus) {
        let now = self.clock.now();
        let iface = self.interfaces.get_mut(name).expect("caller checked");
        if iface.gone || index != iface.info.index {
            let old = iface.info.index;
            match iface.reopen() {
                Ok(()) => {
                    iface.event("reopened", || {
                        format!("re-created (index {old} -> {index}); sockets re-opened")
                    });
                    if let Some(link) = &mut self.link {
                        link.watch(0);
                    }
                    for vhost in self.virtual_hosts.values_mut() {
                        if vhost.config.interface == name {
                            vhost.engine.handle_interface_reset(now);
                            vhost.drain(iface, now);
                        }
                    }
                }
                Err(e) => iface.event("reopen_failed", || {
                    format!(
                        "back (index {index}) but its sockets cannot be opened: {e}; trying again"
                    )
                }),
            }
        }
        if running != iface.link_up {
            iface.link_up = running;
            let (label, what) = if running {
                ("link_up", "link is back")
            } else {
                ("link_down", "link lost carrier")
            };
            iface.event(label, || what.to_string());
            for vhost in self.virtual_hosts.values_mut() {
                if vhost.config.interface == name {
                    vhost.handle_link_change(iface, now, running);
                }
            }
        }
    }

    fn interface_gone(&mut self, name: &str) {
        let now = self.clock.now();
        let iface = self.interfaces.get_mut(name).expect("caller checked");
        if !iface.gone {
            iface.gone = true;
            error!("interface {name} disappeared");
        }
        let following: Vec<VirtualHostId> = self
            .virtual_hosts
            .iter()
            .filter(|(id, v)| id.interface == name && !v.config.engine.ignore_link_state)
            .map(|(id, _)| id.clone())
            .collect();
        for id in following {
            error!("{id}: stopping, its interface is gone (down hook runs)");
            if let Some(vhost) = self.virtual_hosts.get_mut(&id) {
                vhost.engine.handle_link_change(now, false);
            }
            let _ = self.remove(&id, true);
            self.lost.push(name.to_string());
        }
        self.lost.dedup();
        let iface = self.interfaces.get_mut(name).expect("caller checked");
        if self
            .virtual_hosts
            .values()
            .any(|v| v.config.interface == name)
        {
            iface.event("interface_gone", || {
                "is gone; waiting for it to return (link state ignored)".to_string()
            });
        }
    }
}

/// What a wait ended on.
#[derive(Debug, Default, Clone, Copy)]
struct Woke {
    adverts: bool,
    command: bool,
    link: bool,
}

/// Lets hooks finish on a thread of their own: a retired virtual host's
/// hooks report no pending work, but `finish` is the embedder's code and
/// may still wait (join a thread of its own), which must not happen on the
/// protocol thread.
fn finish_elsewhere(mut hooks: Box<dyn Hooks>) {
    let spawned = std::thread::Builder::new()
        .name("ucarp-retire".into())
        .spawn(move || hooks.finish());
    if let Err(e) = spawned {
        // The hooks were moved into the failed spawn and dropped with it.
        warn!("cannot start a thread to let a removed virtual host's hooks finish: {e}");
    }
}

/// A datagram as the codec read it, or why it is not an advert (and from
/// whom, when that is known).
type Parsed = Result<Received, (Option<IpAddr>, ParseError)>;

/// An IPv4 datagram read from a ring, parsed, or why it is not an advert.
type ParsedV4 = Result<AdvertDatagram, (Option<IpAddr>, ParseError)>;

/// The receive path's buffers, allocated once for the loop's lifetime: a
/// wake-up for one advert then costs no allocation (at one advert a second
/// the allocator's cold paths were a measurable part of a wake-up).
struct Scratch {
    /// One IPv6 datagram.
    buf: [u8; 2048],
    /// A `recvmmsg` batch of IPv4 datagrams.
    batch: RecvBatch,
    /// A batch from a ring, parsed.
    ring: Vec<ParsedV4>,
    /// A batch from a receive socket, parsed.
    sockets: Vec<Parsed>,
    /// The key looked up for each datagram.
    id: VirtualHostId,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch {
            buf: [0; 2048],
            batch: RecvBatch::new(),
            ring: Vec::with_capacity(RecvBatch::LEN),
            sockets: Vec::with_capacity(RecvBatch::LEN),
            id: VirtualHostId {
                interface: String::new(),
                vhid: 0,
            },
        }
    }
}

/// The pause before reading again after a read of `read` datagrams that
/// gathered over `window`: none below [`COALESCE_AT`] (no flood), else
/// as long as it takes the same rate to bring half a [`READ_BATCH`], at
/// most [`COALESCE`]. So the pause never lets more gather than one
/// bounded read takes (the next timer is never late for a backlog) and
/// stays far below what the ring (4096 packets) and the sockets' 2 MiB
/// buffers (about 2,700) hold, however fast the flood.
fn coalescing_pause(read: usize, window: Duration) -> Option<Duration> {
    if read < COALESCE_AT {
        return None;
    }
    let per_packet = window / u32::try_from(read).unwrap_or(u32::MAX);
    Some(COALESCE.min(per_packet * (READ_BATCH / 2) as u32))
}

/// Reads the interface's ring (multicast and broadcast IPv4 adverts), up
/// to [`READ_BATCH`] datagrams in batches, and delivers each to the
/// virtual hosts of the group it was sent to; returns how many it read.
fn read_ring(
    id: &mut VirtualHostId,
    iface: &mut Interface,
    virtual_hosts: &mut BTreeMap<VirtualHostId, VirtualHost>,
    (now, at): (carp_engine::Time, Instant),
    parsed: &mut Vec<ParsedV4>,
) -> usize {
    let mut rounds = 0;
    while rounds < READ_BATCH && iface.ring_readable() {
        let Some(ring) = iface.ring.as_mut() else {
            break;
        };
        parsed.clear();
        let count = ring.read(RecvBatch::LEN, |bytes| {
            parsed.push(AdvertDatagram::parse(bytes).map_err(|e| (ipv4_source(bytes), e)));
        });
        let dropped = ring.dropped();
        iface.receive_overflowed(dropped, Overflow::Ring);
        rounds += count;
        for one in parsed.drain(..) {
            let (index, one) = match one {
                Ok(datagram) => match iface.group_index_v4(datagram.dst) {
                    Some(index) => (index, Ok(Received::from(datagram))),
                    None => {
                        iface.reject("other_group");
                        continue;
                    }
                },
                Err(e) => (0, Err(e)),
            };
            deliver(id, iface, index, virtual_hosts, (now, at), one);
        }
        if count < RecvBatch::LEN {
            break;
        }
    }
    rounds
}

/// Hands a parsed datagram to the virtual host owning its vhid on the
/// interface, or counts why no one takes it.
fn deliver(
    id: &mut VirtualHostId,
    iface: &mut Interface,
    group_index: usize,
    virtual_hosts: &mut BTreeMap<VirtualHostId, VirtualHost>,
    (now, at): (carp_engine::Time, Instant),
    parsed: Parsed,
) {
    let received = match parsed {
        // A unicast advert reaches every raw socket of its family on the
        // interface: one of them reads it.
        Ok(received) if !iface.handles(group_index, received.dst) => return,
        Ok(received) => received,
        Err((source, e)) => {
            iface.reject_malformed(source, e);
            return;
        }
    };
    id.vhid = received.advert.vhid;
    match virtual_hosts.get_mut(id) {
        Some(vhost) => vhost.receive(iface, now, at, received),
        // Another cluster's vhid on the segment: normal.
        None => iface.reject("wrong_vhid"),
    }
}

/// The source of what claims to be an IPv4 datagram, for a rejection log.
fn ipv4_source(bytes: &[u8]) -> Option<IpAddr> {
    let source: [u8; 4] = bytes.get(12..16)?.try_into().ok()?;
    Some(IpAddr::from(source))
}

/// The codec's checks on what a raw IPv6 socket returned; an error comes
/// with the sender.
fn parse_received6(
    packet: &Received6<'_>,
) -> Result<AdvertDatagram6, (Option<IpAddr>, ParseError)> {
    let source = Some(IpAddr::V6(packet.src));
    if let Some(header) = packet.extension_header {
        return Err((source, ParseError::ExtensionHeader(header)));
    }
    // The kernel always gives both when asked; a missing one fails the
    // checks rather than being assumed.
    let dst = packet.dst.unwrap_or(std::net::Ipv6Addr::UNSPECIFIED);
    let hop_limit = packet.hop_limit.unwrap_or(0);
    AdvertDatagram6::parse_payload(packet.src, dst, hop_limit, packet.payload)
        .map_err(|e| (source, e))
}

fn join(addresses: &[std::net::IpAddr]) -> String {
    let parts: Vec<String> = addresses.iter().map(ToString::to_string).collect();
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_coalescing_pause_lets_half_a_read_gather_at_most() {
        let ms = Duration::from_millis;
        assert_eq!(coalescing_pause(COALESCE_AT - 1, ms(1)), None);
        // 100,000 a second: 512 take 5.12 ms, so the cap.
        assert_eq!(coalescing_pause(100, ms(1)), Some(COALESCE));
        // 1,000,000 a second: 512 µs, 512 packets.
        assert_eq!(
            coalescing_pause(1000, ms(1)),
            Some(Duration::from_micros(512))
        );
    }
}
