//! A running CARP node: the engine driven by sockets, a monotonic clock,
//! link polling and hooks, on the thread that calls [`Node::run`].

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use carp_engine::{Engine, Hook, State, Transition, Transmit, LEAVE_ADVBASE, LEAVE_ADVSKEW};
use carp_proto::arp::GratuitousArp;
use carp_proto::datagram::{AdvertDatagram, AdvertFrame};
use carp_proto::ethernet::MacAddr;
use carp_proto::{AdvertRepr, ReceiveFilter, Rejected};
use log::{debug, error, info, warn};
use nix::poll::{ppoll, PollFd, PollFlags};
use nix::sys::time::TimeSpec;

use crate::clock::Clock;
use crate::counters::{CounterSnapshot, Counters};
use crate::iface::{self, InterfaceInfo, LinkStatus};
use crate::link::LinkMonitor;
use crate::ratelimit::RateLimitedLog;
use crate::socket::{AdvertReceiver, FrameSender};
use crate::{HookDone, Hooks, IoError, NoHooks};

/// Where and how a node runs.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The interface to advertise on.
    pub interface: String,
    /// The virtual address announced by gratuitous ARP.
    pub vip: Ipv4Addr,
    /// The CARP group (UCARP `--mcast`).
    pub group: Ipv4Addr,
    /// Ethernet broadcast instead of multicast (UCARP `-M`).
    pub broadcast: bool,
    /// The election's configuration.
    pub engine: carp_engine::Config,
    /// How often carrier is re-read without a notification (unless the
    /// engine ignores link state). Netlink announces changes at once; this
    /// is a safety net. Without netlink, carrier is polled every 100 ms.
    pub link_recheck: Duration,
    /// At most one summary line per rejection cause (and per kind of link
    /// event) per period.
    pub reject_log_period: Duration,
    /// How long the gratuitous ARP after a takeover waits for the up hook,
    /// and a stopping master's leave advertisement for the down hook,
    /// before going out anyway. Set it to the hooks' own bound (for
    /// scripts, [`crate::ScriptConfig::longest_wait`]).
    pub hook_wait: Duration,
}

impl NodeConfig {
    /// Defaults: group 224.0.0.18, multicast, carrier followed by netlink
    /// and re-read every 5 s, rejected packets summarised once a minute,
    /// hooks waited for at most 62 s (a script's default 60 s timeout and
    /// the kill grace, twice).
    pub fn new(interface: &str, vip: Ipv4Addr, engine: carp_engine::Config) -> NodeConfig {
        NodeConfig {
            interface: interface.to_string(),
            vip,
            group: carp_proto::DEFAULT_GROUP,
            broadcast: false,
            engine,
            link_recheck: Duration::from_secs(5),
            reject_log_period: Duration::from_secs(60),
            hook_wait: Duration::from_secs(62),
        }
    }
}

/// What a wait ended on.
#[derive(Debug, Default, Clone, Copy)]
struct Woke {
    advert: bool,
    command: bool,
    link: bool,
}

enum Command {
    StepDown,
    Shutdown { run_down_hook: bool },
    LogStatus,
}

/// Controls a running node from any thread.
#[derive(Clone)]
pub struct NodeHandle {
    commands: Sender<Command>,
    waker: Arc<UnixStream>,
    counters: Arc<Counters>,
}

impl NodeHandle {
    fn send(&self, command: Command) {
        if self.commands.send(command).is_ok() {
            // A full socket buffer already holds a wake-up: nothing lost.
            let _ = (&*self.waker).write(&[1]);
        }
    }

    /// UCARP's SIGUSR2: a master steps down and keeps quiet for 3 s.
    pub fn step_down(&self) {
        self.send(Command::StepDown);
    }

    /// Stops the node: a running hook is interrupted, the down hook runs if
    /// `run_down_hook` (UCARP `--shutdown`) and, once it has finished, a
    /// master sends the leave advertisement. [`Node::run`] then returns.
    /// Asked a second time while stopping, the node stops at once: hooks
    /// are abandoned (scripts killed) and a pending leave advert goes out.
    pub fn shutdown(&self, run_down_hook: bool) {
        self.send(Command::Shutdown { run_down_hook });
    }

    /// UCARP's SIGUSR1: logs one status line.
    pub fn log_status(&self) {
        self.send(Command::LogStatus);
    }

    /// The node's counters and state now.
    pub fn counters(&self) -> CounterSnapshot {
        self.counters.snapshot()
    }
}

/// The sockets bound to the interface: re-opened together when the
/// interface is re-created under a new index.
struct Sockets {
    info: InterfaceInfo,
    receiver: AdvertReceiver,
    sender: FrameSender,
}

impl Sockets {
    fn open(interface: &str, group: Ipv4Addr) -> Result<Sockets, IoError> {
        let info = InterfaceInfo::lookup(interface)?;
        let receiver = AdvertReceiver::open(&info.name, info.index, group)?;
        let sender = FrameSender::open(&info.name, info.index)?;
        Ok(Sockets {
            info,
            receiver,
            sender,
        })
    }
}

/// A transition's hook whose action has not finished. Hooks finish in
/// order (the script worker runs them one after the other).
struct InFlight {
    hook: Hook,
    finished: Arc<AtomicBool>,
    /// When it became the oldest unfinished one: `hook_wait` counts from
    /// then, not from the transition, so an action queued behind a slow
    /// one is not given up on before it even started.
    oldest_since: Option<Instant>,
}

/// Transmits that wait for a hook (UCARP's order): gratuitous ARPs for the
/// up action, the leave advertisement for the down action.
#[derive(Default)]
struct Held {
    /// Gratuitous ARPs the engine asked for meanwhile (the takeover's, and
    /// the delayed one if the action is slow).
    arps: u8,
    leave: Option<AdvertRepr>,
    /// A second held ARP goes out with the advert after the release, so
    /// switches that missed the first still get one.
    arp_with_next_advert: bool,
}

/// Where the node is in stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stopping {
    No,
    /// Shut down; waiting for the down hook and the leave advert.
    Graceful,
    /// Told twice: leave now.
    Forced,
}

/// A node ready to run.
pub struct Node {
    config: NodeConfig,
    sockets: Sockets,
    link: Option<LinkMonitor>,
    filter: ReceiveFilter,
    hooks: Box<dyn Hooks>,
    counters: Arc<Counters>,
    commands: Receiver<Command>,
    waker: UnixStream,
    handle: NodeHandle,
    reject_log: RateLimitedLog,
    event_log: RateLimitedLog,
    ip_ident: u16,
    in_flight: VecDeque<InFlight>,
    held: Held,
    stopping: Stopping,
    /// Carrier as last reported to the engine.
    link_up: bool,
    /// The interface is gone (only kept running with `ignore_link_state`).
    gone: bool,
}

/// Datagrams read per wake-up before timers get a turn, so a flood cannot
/// delay our own advertisements.
const READ_BATCH: usize = 64;
/// A periodic link re-check (about a millisecond of netlink dump) is put
/// off when an engine timer is due sooner than this.
const RECHECK_GUARD: Duration = Duration::from_millis(10);
/// Carrier polling interval when netlink notifications are unavailable.
const LINK_POLL_WITHOUT_NETLINK: Duration = Duration::from_millis(100);

impl Node {
    /// Opens the sockets on the interface and runs `hooks` on transitions.
    /// Needs CAP_NET_RAW.
    pub fn new(config: NodeConfig, hooks: Box<dyn Hooks>) -> Result<Node, IoError> {
        let mut node = Node::open(config)?;
        node.set_hooks(hooks);
        Ok(node)
    }

    /// Opens the sockets, with no hooks yet. For a daemon that must fail
    /// before it detaches: open everything that can fail, daemonize, then
    /// start the hooks' threads and [`Node::set_hooks`].
    pub fn open(config: NodeConfig) -> Result<Node, IoError> {
        config.engine.validate()?;
        let sockets = Sockets::open(&config.interface, config.group)?;
        let vhid = config.engine.vhid();
        let link = LinkMonitor::open(sockets.info.index)
            .map_err(|e| {
                warn!(
                    "vhid {vhid}: no netlink link notifications ({e}); polling the interface every {:?}",
                    LINK_POLL_WITHOUT_NETLINK
                )
            })
            .ok();
        let filter = ReceiveFilter {
            own_addr: config.engine.src_addr,
            group: config.group,
            auth: config.engine.auth.clone(),
        };
        let control = |e| IoError::socket("creating the control socket", &config.interface, e);
        let (waker, wake_end) = UnixStream::pair().map_err(control)?;
        for end in [&waker, &wake_end] {
            end.set_nonblocking(true).map_err(control)?;
        }
        let (commands_tx, commands) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let handle = NodeHandle {
            commands: commands_tx,
            waker: Arc::new(wake_end),
            counters: Arc::clone(&counters),
        };
        Ok(Node {
            reject_log: RateLimitedLog::rejections(vhid, config.reject_log_period),
            event_log: RateLimitedLog::events(vhid, config.reject_log_period),
            ip_ident: config.engine.initial_counter as u16 | 1,
            link_up: sockets.info.running,
            config,
            sockets,
            link,
            filter,
            hooks: Box::new(NoHooks),
            counters,
            commands,
            waker,
            handle,
            in_flight: VecDeque::new(),
            held: Held::default(),
            stopping: Stopping::No,
            gone: false,
        })
    }

    /// Replaces the transition hooks (before [`Node::run`]).
    pub fn set_hooks(&mut self, hooks: Box<dyn Hooks>) {
        self.hooks = hooks;
    }

    /// A handle to control the node once it runs.
    pub fn handle(&self) -> NodeHandle {
        self.handle.clone()
    }

    /// The interface as found at start.
    pub fn interface(&self) -> &InterfaceInfo {
        &self.sockets.info
    }

    fn vhid(&self) -> u8 {
        self.config.engine.vhid()
    }

    /// Runs the protocol until shut down (`Ok`) or the interface vanishes.
    pub fn run(mut self) -> Result<(), IoError> {
        // Wake at the deadline, not up to 50 µs (the default slack) later:
        // adverts and takeovers are timed from it.
        if let Err(e) = nix::sys::prctl::set_timerslack(1) {
            debug!("cannot lower timer slack: {e}");
        }
        let clock = Clock::start();
        let mut engine = Engine::new(self.config.engine.clone(), clock.now())?;
        let info = &self.sockets.info;
        info!(
            "vhid {}: starting on {} ({}) from {}, virtual address {}, group {}{}",
            self.vhid(),
            info.name,
            info.mac,
            self.config.engine.src_addr,
            self.config.vip,
            self.config.group,
            if self.config.broadcast {
                " (broadcast)"
            } else {
                ""
            }
        );
        if !self.link_up && !self.config.engine.ignore_link_state {
            warn!(
                "vhid {}: {} has no carrier; waiting for it",
                self.vhid(),
                info.name
            );
            engine.handle_link_change(clock.now(), false);
        }
        // Check at once: a change between the lookup in `open` and the
        // netlink subscription would otherwise wait for the re-check.
        let mut next_link_check = Instant::now();
        let mut buf = [0u8; 2048];
        let result = loop {
            self.drain(&mut engine, &clock);
            self.release_held(&mut engine, &clock);
            if self.stopping == Stopping::Forced
                || (engine.state() == State::Init && self.held.leave.is_none())
            {
                break Ok(());
            }
            let now = Instant::now();
            self.reject_log.flush(now);
            self.event_log.flush(now);
            let woke = self.wait(&engine, &clock, next_link_check);
            if woke.advert {
                self.read_adverts(&mut engine, &clock, &mut buf);
            }
            if woke.command {
                self.run_commands(&mut engine, &clock);
            }
            // Timers before the link re-check: reading the interface list
            // can take a millisecond, which must not delay an advert.
            if engine.poll_timeout().is_some_and(|due| due <= clock.now()) {
                engine.handle_timeout(clock.now());
                self.drain(&mut engine, &clock);
            }
            let link_changed = woke.link && self.link.as_ref().is_some_and(LinkMonitor::changed);
            let recheck_due = Instant::now() >= next_link_check;
            let timer_soon = engine
                .poll_timeout()
                .map(|due| clock.until(due))
                .filter(|&left| left < RECHECK_GUARD);
            if let (true, Some(left), false) = (recheck_due, timer_soon, link_changed) {
                // The periodic re-check waits until the timer has fired.
                next_link_check = Instant::now() + left + Duration::from_millis(1);
            } else if link_changed || recheck_due {
                next_link_check = Instant::now() + self.link_check_interval();
                if let Err(gone) = self.check_link(&mut engine, &clock) {
                    break Err(gone);
                }
            }
        };
        self.finish_hooks(&mut engine, &clock);
        result
    }

    /// Waits for the hooks' pending work while still answering commands,
    /// so that a second stop signal abandons it, then lets them finish.
    fn finish_hooks(&mut self, engine: &mut Engine, clock: &Clock) {
        while self.stopping != Stopping::Forced && self.hooks.pending() {
            let mut fds = [PollFd::new(self.waker.as_fd(), PollFlags::POLLIN)];
            let tick = TimeSpec::from_duration(Duration::from_millis(100));
            if matches!(ppoll(&mut fds, Some(tick), None), Ok(n) if n > 0) {
                self.run_commands(engine, clock);
            }
        }
        self.hooks.finish();
    }

    fn link_check_interval(&self) -> Duration {
        if self.link.is_some() {
            self.config.link_recheck
        } else {
            LINK_POLL_WITHOUT_NETLINK
        }
    }

    /// Re-reads the interface: carrier changes go to the engine (unless it
    /// ignores link state), a new index (deleted and re-created) re-opens
    /// the sockets, and a failure to read is only retried later. `Err` when
    /// the interface is gone and link state is followed: the engine has
    /// then been shut down (down hook).
    fn check_link(&mut self, engine: &mut Engine, clock: &Clock) -> Result<(), IoError> {
        let name = self.sockets.info.name.clone();
        let now = Instant::now();
        let status = match iface::link_status(&name) {
            Ok(status) => status,
            Err(e) => {
                self.event_log.record(now, "interface_unreadable", || {
                    format!("cannot read the state of {name} ({e}); trying again")
                });
                return Ok(());
            }
        };
        let Some(LinkStatus { index, running }) = status else {
            return self.interface_gone(engine, clock);
        };
        if self.gone || index != self.sockets.info.index {
            self.reopen(engine, clock, index);
        }
        if running != self.link_up && !self.config.engine.ignore_link_state {
            self.link_up = running;
            let what = if running { "is back" } else { "lost carrier" };
            let label = if running { "link_up" } else { "link_down" };
            self.event_log
                .record(now, label, || format!("link on {name} {what}"));
            engine.handle_link_change(clock.now(), running);
        }
        Ok(())
    }

    fn interface_gone(&mut self, engine: &mut Engine, clock: &Clock) -> Result<(), IoError> {
        let name = self.sockets.info.name.clone();
        if !self.config.engine.ignore_link_state {
            error!("vhid {}: interface {name} disappeared", self.vhid());
            engine.handle_link_change(clock.now(), false);
            engine.shutdown(clock.now(), true);
            self.drain(engine, clock);
            return Err(IoError::InterfaceGone(name));
        }
        if !self.gone {
            self.gone = true;
            if let Some(link) = &mut self.link {
                link.watch(0);
            }
        }
        self.event_log.record(Instant::now(), "interface_gone", || {
            format!("interface {name} is gone; waiting for it to return (link state ignored)")
        });
        Ok(())
    }

    /// The interface came back under a new index: open new sockets on it.
    /// The virtual address went with the old one, so the engine is told to
    /// take it again.
    fn reopen(&mut self, engine: &mut Engine, clock: &Clock, index: u32) {
        let name = self.sockets.info.name.clone();
        match Sockets::open(&name, self.config.group) {
            Ok(sockets) => {
                warn!(
                    "vhid {}: interface {name} was re-created (index {} -> {index}); sockets re-opened",
                    self.vhid(),
                    self.sockets.info.index
                );
                self.sockets = sockets;
                self.gone = false;
                if let Some(link) = &mut self.link {
                    link.watch(self.sockets.info.index);
                }
                engine.handle_interface_reset(clock.now());
            }
            Err(e) => self.event_log.record(Instant::now(), "reopen_failed", || {
                format!("interface {name} is back (index {index}) but its sockets cannot be opened: {e}; trying again")
            }),
        }
    }

    /// Sleeps until a datagram, a command, a link notification, or the next
    /// deadline (engine timer, link re-check, log summary, hook wait).
    fn wait(&self, engine: &Engine, clock: &Clock, next_link_check: Instant) -> Woke {
        let now = Instant::now();
        let mut deadlines = vec![next_link_check.saturating_duration_since(now)];
        if let Some(due) = engine.poll_timeout() {
            deadlines.push(clock.until(due));
        }
        let flushes = [self.reject_log.next_flush(), self.event_log.next_flush()];
        let hook = self
            .in_flight
            .front()
            .and_then(|f| f.oldest_since)
            .map(|since| since + self.config.hook_wait);
        for at in flushes.into_iter().chain([hook]).flatten() {
            deadlines.push(at.saturating_duration_since(now));
        }
        let timeout = deadlines.into_iter().min().map(TimeSpec::from_duration);
        let mut fds = vec![
            PollFd::new(self.sockets.receiver.as_fd(), PollFlags::POLLIN),
            PollFd::new(self.waker.as_fd(), PollFlags::POLLIN),
        ];
        if let Some(link) = &self.link {
            fds.push(PollFd::new(link.as_fd(), PollFlags::POLLIN));
        }
        if let Err(e) = ppoll(&mut fds, timeout, None) {
            if e != nix::errno::Errno::EINTR {
                error!("vhid {}: poll failed: {e}", self.vhid());
            }
            return Woke::default();
        }
        let ready =
            |fd: Option<&PollFd<'_>>| fd.and_then(PollFd::revents).is_some_and(|r| !r.is_empty());
        Woke {
            advert: ready(fds.first()),
            command: ready(fds.get(1)),
            link: ready(fds.get(2)),
        }
    }

    fn read_adverts(&mut self, engine: &mut Engine, clock: &Clock, buf: &mut [u8]) {
        for _ in 0..READ_BATCH {
            let bytes = match self.sockets.receiver.recv(buf) {
                Ok(Some(bytes)) => bytes,
                Ok(None) => return,
                Err(e) => {
                    error!("vhid {}: receive failed: {e}", self.vhid());
                    return;
                }
            };
            match self.filter.accept_datagram(bytes) {
                Ok(datagram) => {
                    self.counters.accepted();
                    debug!(
                        "vhid {}: advert from {} advbase {} advskew {} demote {}",
                        datagram.advert.vhid,
                        datagram.src,
                        datagram.advert.advbase,
                        datagram.advert.advskew,
                        datagram.advert.demote
                    );
                    engine.handle_advert(clock.now(), datagram.src, &datagram.advert);
                    self.drain(engine, clock);
                }
                Err(rejected) => self.reject(bytes, rejected),
            }
        }
    }

    fn reject(&mut self, bytes: &[u8], rejected: Rejected) {
        self.counters.rejected(rejected.label());
        // Other virtual hosts on the segment are normal: count, never warn.
        if matches!(rejected, Rejected::WrongVhid { .. } | Rejected::OwnPacket) {
            return;
        }
        let source =
            (bytes.len() >= 20).then(|| Ipv4Addr::new(bytes[12], bytes[13], bytes[14], bytes[15]));
        self.reject_log
            .record(Instant::now(), rejected.label(), || match source {
                Some(src) => format!("{rejected} from {src}"),
                None => rejected.to_string(),
            });
    }

    fn run_commands(&mut self, engine: &mut Engine, clock: &Clock) {
        let mut sink = [0u8; 64];
        while matches!((&self.waker).read(&mut sink), Ok(n) if n > 0) {}
        while let Ok(command) = self.commands.try_recv() {
            match command {
                Command::StepDown => {
                    if !engine.step_down(clock.now()) {
                        info!("vhid {}: asked to step down, but not master", self.vhid());
                    }
                }
                Command::Shutdown { run_down_hook } => {
                    self.shut_down(engine, clock, run_down_hook);
                }
                Command::LogStatus => self.log_status(engine),
            }
            self.drain(engine, clock);
        }
    }

    /// First request: interrupt what runs, then leave the election (the
    /// leave advert waits for the down hook). Second: stop now.
    fn shut_down(&mut self, engine: &mut Engine, clock: &Clock, run_down_hook: bool) {
        match self.stopping {
            Stopping::No => {
                self.stopping = Stopping::Graceful;
                // Before the shutdown transition queues its own down hook,
                // which must still run.
                self.hooks.interrupt();
                engine.shutdown(clock.now(), run_down_hook);
            }
            Stopping::Graceful | Stopping::Forced => {
                warn!(
                    "vhid {}: asked again to stop: killing running scripts and leaving now",
                    self.vhid()
                );
                self.stopping = Stopping::Forced;
                self.hooks.abandon();
                if let Some(leave) = self.held.leave.take() {
                    self.send(engine, clock, &Transmit::Advert(leave));
                }
            }
        }
    }

    fn log_status(&self, engine: &Engine) {
        let c = self.counters.snapshot();
        let rejected: Vec<String> = c.rejected.iter().map(|(k, v)| format!("{k}={v}")).collect();
        info!(
            "{} on {} id {}: accepted {} sent {} send-errors {} arps {} transitions {} rejected [{}]",
            engine.state(),
            self.sockets.info.name,
            self.vhid(),
            c.accepted,
            c.sent,
            c.send_errors,
            c.arps_sent,
            c.transitions,
            rejected.join(" ")
        );
    }

    /// Acts on everything the engine has queued: transitions, then frames.
    /// A gratuitous ARP waits for a running up hook and a leave advert for
    /// a running down hook ([`Node::release_held`] sends them).
    fn drain(&mut self, engine: &mut Engine, clock: &Clock) {
        while let Some(transition) = engine.poll_event() {
            self.on_transition(&transition);
        }
        while let Some(transmit) = engine.poll_transmit() {
            match transmit {
                Transmit::GratuitousArp if self.waiting_for(Hook::Up) => {
                    self.held.arps = self.held.arps.saturating_add(1)
                }
                Transmit::Advert(advert) if is_leave(&advert) && self.waiting_for(Hook::Down) => {
                    self.held.leave = Some(advert)
                }
                _ => self.send(engine, clock, &transmit),
            }
        }
    }

    fn send(&mut self, engine: &mut Engine, clock: &Clock, transmit: &Transmit) {
        let sent = match transmit {
            Transmit::Advert(advert) => self.send_advert(advert),
            Transmit::GratuitousArp => self.send_arp(),
        };
        engine.handle_send_result(clock.now(), transmit, sent);
        if matches!(transmit, Transmit::Advert(_))
            && std::mem::take(&mut self.held.arp_with_next_advert)
            && engine.state() == State::Master
        {
            self.send(engine, clock, &Transmit::GratuitousArp);
        }
    }

    /// Whether the latest transition's `hook` action is still running.
    fn waiting_for(&self, hook: Hook) -> bool {
        self.in_flight
            .back()
            .is_some_and(|f| f.hook == hook && !f.finished.load(Ordering::Acquire))
    }

    /// Forgets finished actions, and gives up on the oldest one once it has
    /// been the oldest for `hook_wait` (a hook that never reports).
    fn settle_hooks(&mut self) {
        let now = Instant::now();
        while let Some(oldest) = self.in_flight.front_mut() {
            if oldest.finished.load(Ordering::Acquire) {
                self.in_flight.pop_front();
                continue;
            }
            let since = *oldest.oldest_since.get_or_insert(now);
            if now < since + self.config.hook_wait {
                break;
            }
            warn!(
                "vhid {}: {:?} hook still running after {:.0}s; not waiting for it any longer",
                self.config.engine.vhid(),
                oldest.hook,
                self.config.hook_wait.as_secs_f64()
            );
            self.in_flight.pop_front();
        }
    }

    /// Sends what waited for a hook once it has finished (or was given up
    /// on). Held ARPs go out only if still master.
    fn release_held(&mut self, engine: &mut Engine, clock: &Clock) {
        self.settle_hooks();
        if self.held.arps > 0 && !self.waiting_for(Hook::Up) {
            let held = std::mem::take(&mut self.held.arps);
            if engine.state() == State::Master {
                self.send(engine, clock, &Transmit::GratuitousArp);
                self.held.arp_with_next_advert = held > 1;
            }
        }
        if self.held.leave.is_some() && !self.waiting_for(Hook::Down) {
            if let Some(leave) = self.held.leave.take() {
                self.send(engine, clock, &Transmit::Advert(leave));
            }
        }
    }

    fn on_transition(&mut self, transition: &Transition) {
        self.counters.set_state(transition.to);
        warn!(
            "Switching to state: {} (vhid {} on {}: {})",
            transition.to,
            self.vhid(),
            self.sockets.info.name,
            transition.reason
        );
        let (done, finished) = HookDone::new(Some(Arc::clone(&self.handle.waker)));
        self.hooks.transition(transition, done);
        if let Some(hook) = transition.hook {
            self.in_flight.push_back(InFlight {
                hook,
                finished,
                oldest_since: None,
            });
        }
    }

    fn send_advert(&mut self, advert: &AdvertRepr) -> bool {
        self.ip_ident = self.ip_ident.wrapping_mul(25173).wrapping_add(13849);
        let frame = AdvertFrame {
            eth_src: self.sockets.info.mac,
            eth_dst: if self.config.broadcast {
                MacAddr::BROADCAST
            } else {
                MacAddr::ipv4_multicast(self.config.group)
            },
            datagram: AdvertDatagram {
                src: self.config.engine.src_addr,
                dst: self.config.group,
                ident: self.ip_ident,
                advert: *advert,
            },
        };
        let result = self.sockets.sender.send(&frame.to_bytes());
        self.counters.sent(result.is_ok());
        if let Err(e) = &result {
            let name = &self.sockets.info.name;
            self.reject_log.record(Instant::now(), "send_error", || {
                format!("sending an advertisement on {name} failed: {e}")
            });
        }
        result.is_ok()
    }

    fn send_arp(&mut self) -> bool {
        let frame = GratuitousArp {
            mac: self.sockets.info.mac,
            ip: self.config.vip,
        }
        .to_frame();
        match self.sockets.sender.send(&frame) {
            Ok(()) => {
                self.counters.arp_sent();
                debug!(
                    "vhid {}: gratuitous ARP for {}",
                    self.vhid(),
                    self.config.vip
                );
                true
            }
            Err(e) => {
                let name = &self.sockets.info.name;
                self.event_log.record(Instant::now(), "arp_error", || {
                    format!("gratuitous ARP on {name} failed: {e}")
                });
                false
            }
        }
    }
}

/// The advert a leaving master sends.
fn is_leave(advert: &AdvertRepr) -> bool {
    (advert.advbase, advert.advskew) == (LEAVE_ADVBASE, LEAVE_ADVSKEW)
}
