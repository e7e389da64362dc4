//! A running CARP node: the engine driven by sockets, a monotonic clock,
//! link polling and hooks, on the thread that calls [`Node::run`].

use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use carp_engine::{Engine, Transition, Transmit};
use carp_proto::arp::GratuitousArp;
use carp_proto::datagram::{AdvertDatagram, AdvertFrame};
use carp_proto::ethernet::MacAddr;
use carp_proto::{AdvertRepr, ReceiveFilter, Rejected};
use log::{debug, error, info, warn};
use nix::poll::{ppoll, PollFd, PollFlags};
use nix::sys::time::TimeSpec;

use crate::clock::Clock;
use crate::counters::{CounterSnapshot, Counters};
use crate::iface::{self, InterfaceInfo};
use crate::link::LinkMonitor;
use crate::ratelimit::RejectLog;
use crate::socket::{AdvertReceiver, FrameSender};
use crate::{Hooks, IoError};

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
    /// At most one summary line per rejection cause per period.
    pub reject_log_period: Duration,
}

impl NodeConfig {
    /// Defaults: group 224.0.0.18, multicast, carrier followed by netlink
    /// and re-read every 5 s, rejected packets summarised once a minute.
    pub fn new(interface: &str, vip: Ipv4Addr, engine: carp_engine::Config) -> NodeConfig {
        NodeConfig {
            interface: interface.to_string(),
            vip,
            group: carp_proto::DEFAULT_GROUP,
            broadcast: false,
            engine,
            link_recheck: Duration::from_secs(5),
            reject_log_period: Duration::from_secs(60),
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

    /// Stops the node: a master sends the leave advertisement; the down hook
    /// runs only if `run_down_hook` (UCARP `--shutdown`). [`Node::run`]
    /// returns once queued hooks have finished.
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

/// A node ready to run.
pub struct Node {
    config: NodeConfig,
    info: InterfaceInfo,
    receiver: AdvertReceiver,
    sender: FrameSender,
    link: Option<LinkMonitor>,
    filter: ReceiveFilter,
    hooks: Box<dyn Hooks>,
    counters: Arc<Counters>,
    commands: Receiver<Command>,
    waker: UnixStream,
    handle: NodeHandle,
    reject_log: RejectLog,
    ip_ident: u16,
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
    /// Opens the sockets on the interface. Needs CAP_NET_RAW.
    pub fn new(config: NodeConfig, hooks: Box<dyn Hooks>) -> Result<Node, IoError> {
        config.engine.validate()?;
        let info = InterfaceInfo::lookup(&config.interface)?;
        let receiver = AdvertReceiver::open(&info.name, info.index, config.group)?;
        let sender = FrameSender::open(&info.name, info.index)?;
        let link = if config.engine.ignore_link_state {
            None
        } else {
            LinkMonitor::open(info.index)
                .map_err(|e| {
                    warn!(
                        "vhid {}: no netlink link notifications ({e}); polling carrier every {:?}",
                        config.engine.vhid(),
                        LINK_POLL_WITHOUT_NETLINK
                    )
                })
                .ok()
        };
        let filter = ReceiveFilter {
            own_addr: config.engine.src_addr,
            group: config.group,
            auth: config.engine.auth.clone(),
        };
        let (waker, wake_end) = UnixStream::pair()
            .map_err(|e| IoError::socket("creating the control socket", &info.name, e))?;
        for end in [&waker, &wake_end] {
            end.set_nonblocking(true)
                .map_err(|e| IoError::socket("creating the control socket", &info.name, e))?;
        }
        let (commands_tx, commands) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let handle = NodeHandle {
            commands: commands_tx,
            waker: Arc::new(wake_end),
            counters: Arc::clone(&counters),
        };
        let vhid = config.engine.vhid();
        Ok(Node {
            reject_log: RejectLog::new(vhid, config.reject_log_period),
            ip_ident: config.engine.initial_counter as u16 | 1,
            config,
            info,
            receiver,
            sender,
            link,
            filter,
            hooks,
            counters,
            commands,
            waker,
            handle,
        })
    }

    /// A handle to control the node once it runs.
    pub fn handle(&self) -> NodeHandle {
        self.handle.clone()
    }

    /// The interface as found at start.
    pub fn interface(&self) -> &InterfaceInfo {
        &self.info
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
        info!(
            "vhid {}: starting on {} ({}) from {}, virtual address {}, group {}{}",
            self.config.engine.vhid(),
            self.info.name,
            self.info.mac,
            self.config.engine.src_addr,
            self.config.vip,
            self.config.group,
            if self.config.broadcast {
                " (broadcast)"
            } else {
                ""
            }
        );
        let mut link_up = self.info.running;
        if !link_up {
            warn!(
                "vhid {}: {} has no carrier; waiting for it",
                engine.config().vhid(),
                self.info.name
            );
            engine.handle_link_change(clock.now(), false);
        }
        // Check at once: a change between the lookup in `new` and the
        // netlink subscription would otherwise wait for the re-check.
        let mut next_link_check = Instant::now();
        let mut buf = [0u8; 2048];
        let result = loop {
            self.drain(&mut engine, &clock);
            if engine.state() == carp_engine::State::Init {
                break Ok(());
            }
            let now = Instant::now();
            self.reject_log.flush(now);
            let watching_link = !engine.config().ignore_link_state;
            let woke = self.wait(&engine, &clock, watching_link.then_some(next_link_check));
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
            let recheck_due = watching_link && Instant::now() >= next_link_check;
            let timer_soon = engine
                .poll_timeout()
                .map(|due| clock.until(due))
                .filter(|&left| left < RECHECK_GUARD);
            if let (true, Some(left), false) = (recheck_due, timer_soon, link_changed) {
                // The periodic re-check waits until the timer has fired.
                next_link_check = Instant::now() + left + Duration::from_millis(1);
            } else if link_changed || recheck_due {
                next_link_check = Instant::now() + self.link_check_interval();
                if let Err(gone) = self.check_link(&mut engine, &clock, &mut link_up) {
                    break Err(gone);
                }
            }
        };
        self.hooks.finish();
        result
    }

    fn link_check_interval(&self) -> Duration {
        if self.link.is_some() {
            self.config.link_recheck
        } else {
            LINK_POLL_WITHOUT_NETLINK
        }
    }

    /// Re-reads carrier and tells the engine about a change. `Err` when the
    /// interface is gone: the engine has then been shut down (down hook).
    fn check_link(
        &mut self,
        engine: &mut Engine,
        clock: &Clock,
        link_up: &mut bool,
    ) -> Result<(), IoError> {
        let vhid = engine.config().vhid();
        match iface::link_state(&self.info.name) {
            None => {
                error!("vhid {vhid}: interface {} disappeared", self.info.name);
                engine.handle_link_change(clock.now(), false);
                engine.shutdown(clock.now(), true);
                self.drain(engine, clock);
                Err(IoError::InterfaceGone(self.info.name.clone()))
            }
            Some(up) if up != *link_up => {
                *link_up = up;
                let what = if up { "is back" } else { "lost carrier" };
                warn!("vhid {vhid}: link on {} {what}", self.info.name);
                engine.handle_link_change(clock.now(), up);
                Ok(())
            }
            Some(_) => Ok(()),
        }
    }

    /// Sleeps until a datagram, a command, a link notification, or the next
    /// deadline (engine timer, link re-check, log summary).
    fn wait(&self, engine: &Engine, clock: &Clock, next_link_check: Option<Instant>) -> Woke {
        let now = Instant::now();
        let mut deadlines = vec![];
        if let Some(due) = engine.poll_timeout() {
            deadlines.push(clock.until(due));
        }
        if let Some(check) = next_link_check {
            deadlines.push(check.saturating_duration_since(now));
        }
        if let Some(flush) = self.reject_log.next_flush() {
            deadlines.push(flush.saturating_duration_since(now));
        }
        let timeout = deadlines.into_iter().min().map(TimeSpec::from_duration);
        let mut fds = vec![
            PollFd::new(self.receiver.as_fd(), PollFlags::POLLIN),
            PollFd::new(self.waker.as_fd(), PollFlags::POLLIN),
        ];
        if let Some(link) = &self.link {
            fds.push(PollFd::new(link.as_fd(), PollFlags::POLLIN));
        }
        if let Err(e) = ppoll(&mut fds, timeout, None) {
            if e != nix::errno::Errno::EINTR {
                error!("vhid {}: poll failed: {e}", engine.config().vhid());
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
            let bytes = match self.receiver.recv(buf) {
                Ok(Some(bytes)) => bytes,
                Ok(None) => return,
                Err(e) => {
                    error!("vhid {}: receive failed: {e}", engine.config().vhid());
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
                        info!(
                            "vhid {}: asked to step down, but not master",
                            engine.config().vhid()
                        );
                    }
                }
                Command::Shutdown { run_down_hook } => engine.shutdown(clock.now(), run_down_hook),
                Command::LogStatus => self.log_status(engine),
            }
            self.drain(engine, clock);
        }
    }

    fn log_status(&self, engine: &Engine) {
        let c = self.counters.snapshot();
        let rejected: Vec<String> = c.rejected.iter().map(|(k, v)| format!("{k}={v}")).collect();
        info!(
            "{} on {} id {}: accepted {} sent {} send-errors {} arps {} transitions {} rejected [{}]",
            engine.state(),
            self.info.name,
            engine.config().vhid(),
            c.accepted,
            c.sent,
            c.send_errors,
            c.arps_sent,
            c.transitions,
            rejected.join(" ")
        );
    }

    /// Acts on everything the engine has queued: transitions, then frames.
    fn drain(&mut self, engine: &mut Engine, clock: &Clock) {
        while let Some(transition) = engine.poll_event() {
            self.on_transition(&transition);
        }
        while let Some(transmit) = engine.poll_transmit() {
            let sent = match transmit {
                Transmit::Advert(advert) => self.send_advert(&advert),
                Transmit::GratuitousArp => self.send_arp(),
            };
            engine.handle_send_result(clock.now(), sent);
        }
    }

    fn on_transition(&mut self, transition: &Transition) {
        self.counters.set_state(transition.to);
        warn!(
            "Switching to state: {} (vhid {} on {}: {})",
            transition.to,
            self.config.engine.vhid(),
            self.info.name,
            transition.reason
        );
        self.hooks.transition(transition);
    }

    fn send_advert(&mut self, advert: &AdvertRepr) -> bool {
        self.ip_ident = self.ip_ident.wrapping_mul(25173).wrapping_add(13849);
        let frame = AdvertFrame {
            eth_src: self.info.mac,
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
        let result = self.sender.send(&frame.to_bytes());
        self.counters.sent(result.is_ok());
        if let Err(e) = &result {
            self.reject_log.record(Instant::now(), "send_error", || {
                format!("sending an advertisement on {} failed: {e}", self.info.name)
            });
        }
        result.is_ok()
    }

    fn send_arp(&mut self) -> bool {
        let frame = GratuitousArp {
            mac: self.info.mac,
            ip: self.config.vip,
        }
        .to_frame();
        match self.sender.send(&frame) {
            Ok(()) => {
                self.counters.arp_sent();
                debug!(
                    "vhid {}: gratuitous ARP for {}",
                    self.config.engine.vhid(),
                    self.config.vip
                );
                true
            }
            Err(e) => {
                warn!(
                    "vhid {}: gratuitous ARP on {} failed: {e}",
                    self.config.engine.vhid(),
                    self.info.name
                );
                false
            }
        }
    }
}
