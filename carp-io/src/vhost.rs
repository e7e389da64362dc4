//! One virtual host inside the runtime: its engine, hooks, the transmits
//! that wait for a hook, and its status. The I/O it needs comes from its
//! interface ([`crate::interface::Interface`]), passed in by the runtime.

use std::collections::VecDeque;
use std::fmt;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use carp_engine::{
    AdvertOutcome, Engine, Hook, Refusal, State, Time, Transition, Transmit, LEAVE_ADVBASE,
    LEAVE_ADVSKEW,
};
use carp_proto::arp::GratuitousArp;
use carp_proto::datagram::{AdvertDatagram, AdvertDatagram6};
use carp_proto::ndp::NeighborAdvert;
use carp_proto::receive::Received;
use carp_proto::{AdvertRepr, ReceiveFilter, Rejected};
use log::{debug, info, warn};

use crate::events::{EventBus, TransitionEvent};
use crate::interface::Interface;
use crate::ratelimit::RateLimitedLog;
use crate::status::{DemoteCause, MasterAdvert, VirtualHostStatus};
use crate::{HookDone, Hooks, IoError};

/// Which virtual host: its interface and vhid. Two virtual hosts on one
/// interface cannot share a vhid.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VirtualHostId {
    /// The interface.
    pub interface: String,
    /// The vhid.
    pub vhid: u8,
}

impl fmt::Display for VirtualHostId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "vhid {} on {}", self.vhid, self.interface)
    }
}

/// Another interface whose carrier the virtual host depends on: while it
/// is down (or gone) the virtual host is demoted by `weight`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TrackedInterface {
    /// Its name.
    pub name: String,
    /// Demotion while it is down, 1 to 255 (OpenBSD demotes by 1).
    pub weight: u8,
}

/// How one virtual host runs: where, with which election configuration,
/// how it advertises.
#[derive(Debug, Clone)]
pub struct VirtualHostConfig {
    /// The interface to advertise on.
    pub interface: String,
    /// The election's configuration. Its authenticator holds the virtual
    /// addresses (the digest covers them all; gratuitous ARP announces the
    /// IPv4 ones, neighbour advertisements the IPv6 ones). Its sources say
    /// which families the virtual host advertises on: `src_addr` (IPv4 or
    /// IPv6) and, dual-stack, `src_addr_v6`.
    pub engine: carp_engine::Config,
    /// The IPv4 CARP group (UCARP `--mcast`), used with an IPv4 source.
    pub group: Ipv4Addr,
    /// The IPv6 CARP group (ff02::12 by default), used with an IPv6 source.
    pub group6: Ipv6Addr,
    /// Ethernet broadcast instead of multicast (UCARP `-M`).
    pub broadcast: bool,
    /// Unicast peers: adverts go to each of them instead of the group, and
    /// only adverts from them, sent to our own address, are accepted.
    pub peers: Vec<IpAddr>,
    /// Interfaces whose loss of carrier demotes this virtual host.
    pub track_interfaces: Vec<TrackedInterface>,
    /// Health checks whose failure demotes this virtual host.
    pub track_scripts: Vec<crate::TrackScript>,
    /// Virtual hosts with the same demotion group share one demotion (the
    /// sum of each member's own), so they fail over together (keepalived's
    /// sync group, OpenBSD's interface group).
    pub demote_group: Option<String>,
    /// Demotion for a while after start, so that a host still starting its
    /// services does not take over (OpenBSD's rc demotes by 128 while
    /// booting): how much, and for how long.
    pub startup_demote: (u8, Duration),
    /// How long the gratuitous ARP after a takeover waits for the up hook,
    /// and a stopping master's leave advertisement for the down hook, once
    /// that hook is the oldest unfinished one. Set it to the hooks' own
    /// bound (for scripts, [`crate::ScriptConfig::longest_wait`]).
    pub hook_wait: Duration,
    /// The addresses the hooks add and remove themselves (managed
    /// addresses): a master that stops always releases them
    /// ([`crate::Hooks::release`]) before its leave advertisement, with or
    /// without the down hook, and puts them back if they are removed under
    /// it ([`crate::Hooks::reassert`]).
    pub managed: Vec<IpAddr>,
    /// While master, announce the addresses again (gratuitous ARP,
    /// neighbour advertisement) this often: switches and routers whose
    /// caches outlive a takeover they missed (keepalived's
    /// `vrrp_garp_master_refresh`). `None`: only on takeover.
    pub garp_refresh: Option<Duration>,
    /// The virtual MAC the managed addresses answer with
    /// ([`crate::vmac`]): gratuitous ARPs and neighbour advertisements
    /// announce it instead of the interface's own.
    pub vmac: Option<carp_proto::ethernet::MacAddr>,
}

impl VirtualHostConfig {
    /// Defaults: group 224.0.0.18, multicast, hooks waited for at most 62 s
    /// (a script's default 60 s timeout and the kill grace, twice).
    pub fn new(interface: &str, engine: carp_engine::Config) -> VirtualHostConfig {
        VirtualHostConfig {
            interface: interface.to_string(),
            engine,
            group: carp_proto::DEFAULT_GROUP,
            group6: carp_proto::DEFAULT_GROUP6,
            broadcast: false,
            peers: Vec::new(),
            track_interfaces: Vec::new(),
            track_scripts: Vec::new(),
            demote_group: None,
            startup_demote: (0, Duration::ZERO),
            hook_wait: Duration::from_secs(62),
            managed: Vec::new(),
            garp_refresh: None,
            vmac: None,
        }
    }

    /// Its identity in the runtime.
    pub fn id(&self) -> VirtualHostId {
        VirtualHostId {
            interface: self.interface.clone(),
            vhid: self.engine.vhid(),
        }
    }

    /// Our IPv4 source, if we advertise over IPv4.
    pub fn source_v4(&self) -> Option<Ipv4Addr> {
        match self.engine.src_addr {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        }
    }

    /// Our IPv6 source, if we advertise over IPv6.
    pub fn source_v6(&self) -> Option<Ipv6Addr> {
        match self.engine.src_addr {
            IpAddr::V6(v6) => Some(v6),
            IpAddr::V4(_) => self.engine.src_addr_v6,
        }
    }

    /// Every source we advertise from, IPv4 first.
    pub fn sources(&self) -> Vec<IpAddr> {
        let v4 = self.source_v4().map(IpAddr::V4);
        v4.into_iter()
            .chain(self.source_v6().map(IpAddr::V6))
            .collect()
    }

    /// The groups we advertise to and listen on, one per source family.
    pub fn groups(&self) -> Vec<IpAddr> {
        let v4 = self.source_v4().map(|_| IpAddr::V4(self.group));
        v4.into_iter()
            .chain(self.source_v6().map(|_| IpAddr::V6(self.group6)))
            .collect()
    }

    /// A virtual host advertises on the families of its virtual addresses:
    /// each needs a source of that family, and a source of a family it has
    /// no address of would advertise where no peer can check it.
    pub(crate) fn check_families(&self) -> Result<(), IoError> {
        let addresses = self.engine.auth.addresses();
        let has_v4 = addresses.iter().any(IpAddr::is_ipv4);
        let has_v6 = addresses.iter().any(IpAddr::is_ipv6);
        let problem = match (has_v4, self.source_v4(), has_v6, self.source_v6()) {
            (true, None, ..) => "has IPv4 virtual addresses but no IPv4 source address",
            (false, Some(_), ..) => "has an IPv4 source address but no IPv4 virtual address",
            (_, _, true, None) => "has IPv6 virtual addresses but no IPv6 source address",
            (_, _, false, Some(_)) => "has an IPv6 source address but no IPv6 virtual address",
            _ => {
                let sources = self.sources();
                let lonely = self
                    .peers
                    .iter()
                    .find(|p| !sources.iter().any(|s| s.is_ipv4() == p.is_ipv4()));
                match lonely {
                    Some(peer) => {
                        return Err(IoError::Families(format!(
                            "{}: peer {peer} is of a family none of the virtual addresses has",
                            self.id()
                        )))
                    }
                    None => return Ok(()),
                }
            }
        };
        Err(IoError::Families(format!("{}: {problem}", self.id())))
    }

    /// The IPv4 virtual addresses, announced by gratuitous ARP.
    pub fn ipv4_addresses(&self) -> Vec<Ipv4Addr> {
        self.engine
            .auth
            .addresses()
            .iter()
            .filter_map(|a| match a {
                IpAddr::V4(v4) => Some(*v4),
                IpAddr::V6(_) => None,
            })
            .collect()
    }

    /// The IPv6 virtual addresses, announced by neighbour advertisements.
    pub fn ipv6_addresses(&self) -> Vec<Ipv6Addr> {
        self.engine
            .auth
            .addresses()
            .iter()
            .filter_map(|a| match a {
                IpAddr::V6(v6) => Some(*v6),
                IpAddr::V4(_) => None,
            })
            .collect()
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

/// A running virtual host.
pub(crate) struct VirtualHost {
    pub id: VirtualHostId,
    pub config: VirtualHostConfig,
    pub engine: Engine,
    pub hooks: Box<dyn Hooks>,
    filter: ReceiveFilter,
    in_flight: VecDeque<InFlight>,
    held: Held,
    rejections: RateLimitedLog,
    /// Send failures, rate-limited.
    events: RateLimitedLog,
    status: Arc<Mutex<VirtualHostStatus>>,
    /// Wakes the protocol loop when a hook finishes.
    waker: Arc<UnixStream>,
    /// Tells this virtual host's track-script reports from those of an
    /// earlier one with the same identity (a replaced configuration).
    pub generation: u64,
    /// Demotion from tracked interfaces that are down.
    interfaces_demote: u8,
    /// Which tracked interfaces are down (for the status).
    tracked_down: Vec<String>,
    /// Which track scripts are failed now.
    scripts_failed: Vec<bool>,
    /// The operator's demotion: the configured one, changed at run time
    /// by [`crate::RuntimeHandle::set_demote`].
    pub manual_demote: u8,
    /// Until when the start-up demotion lasts.
    startup_until: Option<Instant>,
    /// The track scripts' checkers; dropped (stopped) with the vhost or
    /// when it starts leaving.
    checkers: Vec<crate::track::Checker>,
    /// Where its transitions are published.
    bus: Arc<EventBus>,
    /// The next periodic re-announcement (`garp_refresh`, while master).
    refresh_at: Option<Instant>,
}

impl VirtualHost {
    /// Starts the engine (INIT to BACKUP, down hook unless neutral).
    pub fn start(
        config: VirtualHostConfig,
        hooks: Box<dyn Hooks>,
        now: Time,
        waker: Arc<UnixStream>,
        reject_log_period: Duration,
        events: Arc<EventBus>,
    ) -> Result<VirtualHost, IoError> {
        config.check_families()?;
        let engine = Engine::new(config.engine.clone(), now)?;
        // Failed until each script's first verdict: a node whose service
        // is dead must not take over in the moment before it is checked.
        let scripts_failed = vec![true; config.track_scripts.len()];
        let manual_demote = config.engine.demote;
        let startup_until =
            (config.startup_demote.0 > 0).then(|| Instant::now() + config.startup_demote.1);
        let id = config.id();
        let mut status = VirtualHostStatus::new(
            &id.interface,
            id.vhid,
            config.engine.auth.addresses().to_vec(),
            config.engine.src_addr,
        );
        status.advbase = config.engine.advbase;
        status.advskew = config.engine.advskew;
        status.master_down = engine.master_down_time();
        status.demote_group = config.demote_group.clone();
        Ok(VirtualHost {
            filter: ReceiveFilter {
                own_addrs: config.sources(),
                groups: config.groups(),
                peers: config.peers.clone(),
                auth: config.engine.auth.clone(),
            },
            rejections: RateLimitedLog::rejections(&id, reject_log_period),
            events: RateLimitedLog::events(&id, reject_log_period),
            id,
            config,
            engine,
            hooks,
            in_flight: VecDeque::new(),
            held: Held::default(),
            status: Arc::new(Mutex::new(status)),
            waker,
            generation: 0,
            interfaces_demote: 0,
            tracked_down: Vec::new(),
            scripts_failed,
            manual_demote,
            startup_until,
            checkers: Vec::new(),
            bus: events,
            refresh_at: None,
        })
    }

    /// Carrier lost or back on its interface. Without carrier nobody can
    /// be heard, so the master we last heard is no longer known.
    pub fn handle_link_change(&mut self, iface: &mut Interface, now: Time, up: bool) {
        self.engine.handle_link_change(now, up);
        if !up && self.engine.state() != State::Master {
            self.with_status(|s| s.master = None);
        }
        self.drain(iface, now);
    }

    /// Applies what the tracked interfaces say: the sum of the weights of
    /// those that are down (`up(name)` false) is their share of our
    /// demotion.
    /// Returns whether that share changed.
    /// `up(name)` is `None` when the state could not be read: then nothing
    /// changes (a transient failure to ask the kernel must not move the
    /// address either way).
    pub fn apply_tracking(&mut self, up: impl Fn(&str) -> Option<bool>) -> bool {
        if self.config.track_interfaces.is_empty() {
            return false;
        }
        let states: Option<Vec<bool>> = self
            .config
            .track_interfaces
            .iter()
            .map(|t| up(&t.name))
            .collect();
        let Some(states) = states else {
            return false;
        };
        let down: Vec<&TrackedInterface> = self
            .config
            .track_interfaces
            .iter()
            .zip(states)
            .filter(|(_, up)| !up)
            .map(|(t, _)| t)
            .collect();
        let demote = down.iter().fold(0u8, |sum, t| sum.saturating_add(t.weight));
        self.tracked_down = down.iter().map(|t| t.name.clone()).collect();
        if demote == self.interfaces_demote {
            return false;
        }
        if down.is_empty() {
            warn!("{}: every tracked interface is up again", self.id);
        } else {
            let names: Vec<&str> = down.iter().map(|t| t.name.as_str()).collect();
            warn!(
                "{}: tracked interface {} down (demotion {demote})",
                self.id,
                names.join(", ")
            );
        }
        self.interfaces_demote = demote;
        true
    }

    /// Starts the track scripts' checkers; each reports through `report`
    /// with its index.
    pub fn start_checkers(&mut self, report: impl Fn(usize, bool) + Clone + Send + 'static) {
        for (index, script) in self.config.track_scripts.iter().enumerate() {
            let report = report.clone();
            match crate::track::Checker::start(script.clone(), self.id.to_string(), move |failed| {
                report(index, failed)
            }) {
                Ok(checker) => self.checkers.push(checker),
                Err(e) => warn!(
                    "{}: cannot start a thread for track script `{}`: {e}",
                    self.id, script.command
                ),
            }
        }
    }

    /// Forgets the start-up demotion: for a virtual host added while the
    /// runtime runs (a reload), not one started with the process.
    pub fn skip_startup_demotion(&mut self) {
        self.startup_until = None;
    }

    /// Stops the checkers (the virtual host is leaving).
    pub fn stop_checkers(&mut self) {
        self.checkers.clear();
    }

    /// A track script's verdict changed.
    pub fn handle_script_health(&mut self, index: usize, failed: bool) {
        if let Some(slot) = self.scripts_failed.get_mut(index) {
            *slot = failed;
        }
    }

    /// When the start-up demotion ends, if it has not yet.
    pub fn startup_demotion_end(&self) -> Option<Instant> {
        self.startup_until
    }

    /// This virtual host's own demotion at `at`: the operator's, tracked
    /// interfaces down, failed track scripts, and the start-up demotion
    /// while it lasts (which it forgets once over).
    pub fn own_demote(&mut self, at: Instant) -> u8 {
        if self.startup_until.is_some_and(|until| at >= until) {
            self.startup_until = None;
            info!("{}: start-up demotion over", self.id);
        }
        let causes = self.demote_causes();
        let demote = causes
            .iter()
            .fold(0u8, |sum, c| sum.saturating_add(c.demote));
        self.with_status(|s| s.demote_causes = causes);
        demote
    }

    /// Each cause of our own demotion now in effect, with its share.
    fn demote_causes(&self) -> Vec<DemoteCause> {
        let mut causes = Vec::new();
        let mut add = |cause: String, demote: u8| {
            if demote > 0 {
                causes.push(DemoteCause { cause, demote });
            }
        };
        add("operator".into(), self.manual_demote);
        if self.startup_until.is_some() {
            add("start-up".into(), self.config.startup_demote.0);
        }
        if self.interfaces_demote > 0 {
            let states = &self.tracked_down;
            for t in self
                .config
                .track_interfaces
                .iter()
                .filter(|t| states.contains(&t.name))
            {
                add(format!("interface {} down", t.name), t.weight);
            }
        }
        for (script, _) in self
            .config
            .track_scripts
            .iter()
            .zip(&self.scripts_failed)
            .filter(|(_, failed)| **failed)
        {
            add(
                format!("track script `{}` failing", script.command),
                script.weight,
            );
        }
        causes
    }

    /// Sets the demotion we advertise (our own, or our group's).
    pub fn set_demote(&mut self, now: Time, demote: u8) {
        if demote == self.engine.demote() {
            // Started with it (a configured or carried demotion): the
            // status must say so too.
            self.with_status(|s| s.demote = demote);
            return;
        }
        if demote == 0 {
            warn!("{}: no longer demoted", self.id);
        } else {
            warn!("{}: demoted to {demote}", self.id);
        }
        // Not drained here: the loop's next turn sends the advert, after
        // whoever added this virtual host has set its hooks (draining now
        // would act on the start-up transition with no hooks).
        self.engine.handle_demote(now, demote);
        let advertised = self.engine.advertised_demote();
        let master = self.engine.state() == State::Master;
        self.with_status(|s| {
            s.demote = demote;
            if let Some(ours) = s.master_advert.as_mut().filter(|_| master) {
                ours.demote = advertised;
            }
        });
    }

    /// Marks its status as stopping (removed, or the runtime shuts down):
    /// it stays visible until its down hook and leave advert are done.
    pub fn set_stopping(&mut self) {
        self.with_status(|s| s.stopping = true);
        self.stop_checkers();
        // Its demotion no longer matters, and a deadline left behind would
        // wake the loop for ever.
        self.startup_until = None;
    }

    /// The shared status this virtual host keeps up to date.
    pub fn status_cell(&self) -> Arc<Mutex<VirtualHostStatus>> {
        Arc::clone(&self.status)
    }

    fn with_status(&self, update: impl FnOnce(&mut VirtualHostStatus)) {
        update(&mut self.status.lock().unwrap_or_else(|e| e.into_inner()));
    }

    pub fn status(&self) -> VirtualHostStatus {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// An advert for our vhid (either family), already parsed by the
    /// interface: the checks that need our configuration, then the engine.
    /// `at`: when the batch it came in was read (a flood's rejections do
    /// not each read the clock).
    pub fn receive(&mut self, iface: &mut Interface, now: Time, at: Instant, received: Received) {
        match self.filter.check(received) {
            Ok(datagram) => {
                debug!(
                    "{}: advert from {} advbase {} advskew {} demote {}",
                    self.id,
                    datagram.src,
                    datagram.advert.advbase,
                    datagram.advert.advskew,
                    datagram.advert.demote
                );
                let src = datagram.src;
                let counter = datagram.advert.counter;
                let outcome = self.engine.handle_advert(now, src, &datagram.advert);
                match outcome {
                    AdvertOutcome::Refused(refusal) => {
                        self.refuse(src, counter, refusal);
                        return;
                    }
                    AdvertOutcome::Tolerated(refusal) => self.tolerate(src, counter, refusal),
                    AdvertOutcome::Accepted | AdvertOutcome::Ignored => {}
                }
                self.with_status(|s| s.counters.accepted += 1);
                if outcome != AdvertOutcome::Ignored && self.engine.state() == State::Backup {
                    let advert = MasterAdvert {
                        advbase: datagram.advert.advbase,
                        advskew: datagram.advert.advskew,
                        demote: datagram.advert.demote,
                    };
                    let master_down = self.engine.master_down_time();
                    self.with_status(|s| {
                        s.master = Some(src);
                        s.master_advert = Some(advert);
                        s.master_down = master_down;
                    });
                }
                self.drain(iface, now);
            }
            Err(rejected) => self.reject(received.src, rejected, at),
        }
    }

    /// An authenticated advert refused as a replay: counted, and logged at
    /// most once a period per cause, naming the source.
    fn refuse(&mut self, src: IpAddr, counter: u64, refusal: Refusal) {
        self.with_status(|s| s.counters.reject(refusal.label()));
        self.rejections.record(Instant::now(), refusal.label(), || {
            format!("advert from {src} (counter {counter:#x}) refused: {refusal}")
        });
    }

    /// Permissive mode: accepted, but what would have been refused is
    /// counted and logged.
    fn tolerate(&mut self, src: IpAddr, counter: u64, refusal: Refusal) {
        self.with_status(|s| s.counters.replays_tolerated += 1);
        self.rejections.record(Instant::now(), "tolerated_replay", || {
            format!(
                "advert from {src} (counter {counter:#x}) accepted in permissive replay mode, but it is {refusal}"
            )
        });
    }

    fn reject(&mut self, src: IpAddr, rejected: Rejected, at: Instant) {
        self.with_status(|s| s.counters.reject(rejected.label()));
        if matches!(rejected, Rejected::OwnPacket) {
            return;
        }
        self.rejections
            .record(at, rejected.label(), || format!("{rejected} from {src}"));
    }

    pub fn flush_logs(&mut self, now: Instant) {
        self.rejections.flush(now);
        self.events.flush(now);
    }

    pub fn next_log_flush(&self) -> Option<Instant> {
        [self.rejections.next_flush(), self.events.next_flush()]
            .into_iter()
            .flatten()
            .min()
    }

    /// When the oldest unfinished hook is given up on.
    pub fn hook_deadline(&self) -> Option<Instant> {
        self.in_flight
            .front()
            .and_then(|f| f.oldest_since)
            .map(|since| since + self.config.hook_wait)
    }

    /// Acts on everything the engine has queued: transitions, then frames.
    /// A gratuitous ARP waits for a running up hook and a leave advert for
    /// a running down hook ([`VirtualHost::release_held`] sends them).
    pub fn drain(&mut self, iface: &mut Interface, now: Time) {
        while let Some(transition) = self.engine.poll_event() {
            self.on_transition(&transition);
        }
        while let Some(transmit) = self.engine.poll_transmit() {
            match transmit {
                Transmit::GratuitousArp if self.waiting_for(Hook::Up) => {
                    self.held.arps = self.held.arps.saturating_add(1)
                }
                Transmit::Advert(advert) if is_leave(&advert) && self.waiting_for(Hook::Down) => {
                    self.held.leave = Some(advert)
                }
                _ => self.send(iface, now, &transmit),
            }
        }
    }

    /// Whether [`VirtualHost::drain`], [`VirtualHost::release_held`] and
    /// [`VirtualHost::refresh`] would do nothing now: with hundreds of
    /// virtual hosts, the loop skips those after every wake-up (under a
    /// flood, hundreds of times a second).
    pub fn settled(&self) -> bool {
        !self.engine.has_output()
            && self.in_flight.is_empty()
            && self.held.arps == 0
            && self.held.leave.is_none()
            && self.config.garp_refresh.is_none()
    }

    /// Whether a stopped virtual host still has something to send.
    pub fn holds_leave(&self) -> bool {
        self.held.leave.is_some()
    }

    /// Forgets a held leave advert (a forced stop); whether there was one.
    pub fn drop_held_leave(&mut self) -> bool {
        self.held.leave.take().is_some()
    }

    /// Sends a held leave advert.
    pub fn send_held_leave(&mut self, iface: &mut Interface, now: Time) {
        if let Some(leave) = self.held.leave.take() {
            self.send(iface, now, &Transmit::Advert(leave));
        }
    }

    fn send(&mut self, iface: &mut Interface, now: Time, transmit: &Transmit) {
        let sent = match transmit {
            Transmit::Advert(advert) => self.send_advert(iface, advert),
            Transmit::GratuitousArp => self.announce(iface),
        };
        self.engine.handle_send_result(now, transmit, sent);
        if matches!(transmit, Transmit::Advert(_))
            && std::mem::take(&mut self.held.arp_with_next_advert)
            && self.engine.state() == State::Master
        {
            self.send(iface, now, &Transmit::GratuitousArp);
        }
    }

    /// Sends `advert` on every family we advertise on. It counts as sent
    /// if one family got it out: either family's adverts keep a backup
    /// quiet.
    fn send_advert(&mut self, iface: &mut Interface, advert: &AdvertRepr) -> bool {
        if !self.config.peers.is_empty() {
            return self.send_unicast(iface, advert);
        }
        let broadcast = self.config.broadcast;
        let mut any_sent = false;
        if let Some(src) = self.config.source_v4() {
            let datagram = AdvertDatagram {
                src,
                dst: self.config.group,
                ident: 0,
                advert: *advert,
            };
            let result = iface.send_advert(datagram, broadcast);
            any_sent |= result.is_ok();
            self.count_send(
                &iface.info.name,
                format_args!("an IPv4 advertisement"),
                &result,
            );
        }
        if let Some(src) = self.config.source_v6() {
            let datagram = AdvertDatagram6 {
                src,
                dst: self.config.group6,
                advert: *advert,
            };
            let result = iface.send_advert6(datagram, broadcast);
            any_sent |= result.is_ok();
            self.count_send(
                &iface.info.name,
                format_args!("an IPv6 advertisement"),
                &result,
            );
        }
        any_sent
    }

    /// Counts one advert copy as sent or failed; a failure is logged
    /// (rate-limited) as "sending `what` on IFACE failed".
    fn count_send(&mut self, iface: &str, what: fmt::Arguments<'_>, result: &std::io::Result<()>) {
        self.with_status(|s| {
            if result.is_ok() {
                s.counters.sent += 1
            } else {
                s.counters.send_errors += 1
            }
        });
        if let Err(e) = result {
            self.events.record(Instant::now(), "send_error", || {
                format!("sending {what} on {iface} failed: {e}")
            });
        }
    }

    /// Sends `advert` to every peer, from our source of its family. It
    /// counts as sent if one peer's copy got out.
    fn send_unicast(&mut self, iface: &mut Interface, advert: &AdvertRepr) -> bool {
        let mut any_sent = false;
        for index in 0..self.config.peers.len() {
            let peer = self.config.peers[index];
            let src = match peer {
                IpAddr::V4(_) => self.config.source_v4().map(IpAddr::V4),
                IpAddr::V6(_) => self.config.source_v6().map(IpAddr::V6),
            };
            let Some(src) = src else {
                continue;
            };
            let result = iface.send_unicast(advert, src, peer);
            any_sent |= result.is_ok();
            let what = format_args!("an advertisement to peer {peer}");
            self.count_send(&iface.info.name, what, &result);
        }
        any_sent
    }

    /// Tells the link where the virtual addresses now are: one gratuitous
    /// ARP per IPv4 address, one unsolicited neighbour advertisement per
    /// IPv6 address (from our IPv6 source, override flag set).
    fn announce(&mut self, iface: &mut Interface) -> bool {
        // Owned addresses on a virtual MAC answer with it; the rest live
        // on the interface.
        let managed = &self.config.managed;
        let vmac = self.config.vmac;
        let mac_of = |ip: IpAddr| match vmac {
            Some(vmac) if managed.contains(&ip) => vmac,
            _ => iface.info.mac,
        };
        let frames = self.config.ipv4_addresses().into_iter().map(|ip| {
            let mac = mac_of(IpAddr::V4(ip));
            (
                IpAddr::V4(ip),
                GratuitousArp { mac, ip }.to_frame().to_vec(),
            )
        });
        let source6 = self.config.source_v6();
        let router = iface.info.ipv6_forwarding;
        let frames6 = self
            .config
            .ipv6_addresses()
            .into_iter()
            .filter_map(|target| {
                let src = source6?;
                let advert = NeighborAdvert {
                    mac: mac_of(IpAddr::V6(target)),
                    src,
                    target,
                    router,
                };
                let frame = advert.to_frame().to_vec();
                Some((IpAddr::V6(target), frame))
            });
        let mut all_sent = true;
        for (ip, frame) in frames.chain(frames6).collect::<Vec<_>>() {
            let what = if ip.is_ipv4() {
                "gratuitous ARP"
            } else {
                "neighbour advertisement"
            };
            match iface.send_frame(&frame) {
                Ok(()) => {
                    self.with_status(|s| s.counters.arps_sent += 1);
                    debug!("{}: {what} for {ip}", self.id);
                }
                Err(e) => {
                    all_sent = false;
                    let name = iface.info.name.clone();
                    self.events.record(Instant::now(), "arp_error", || {
                        format!("{what} for {ip} on {name} failed: {e}")
                    });
                }
            }
        }
        all_sent
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
        if self.in_flight.is_empty() {
            return;
        }
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
                "{}: {:?} hook still running after {:.0}s; not waiting for it any longer",
                self.id,
                oldest.hook,
                self.config.hook_wait.as_secs_f64()
            );
            self.in_flight.pop_front();
        }
    }

    /// Sends what waited for a hook once it has finished (or was given up
    /// on). Held ARPs go out only if still master.
    pub fn release_held(&mut self, iface: &mut Interface, now: Time) {
        self.settle_hooks();
        if self.held.arps > 0 && !self.waiting_for(Hook::Up) {
            let held = std::mem::take(&mut self.held.arps);
            if self.engine.state() == State::Master {
                self.send(iface, now, &Transmit::GratuitousArp);
                self.held.arp_with_next_advert = held > 1;
            }
        }
        if self.held.leave.is_some() && !self.waiting_for(Hook::Down) {
            self.send_held_leave(iface, now);
        }
    }

    fn on_transition(&mut self, transition: &Transition) {
        warn!(
            "Switching to state: {} (vhid {} on {}: {})",
            transition.to, self.id.vhid, self.id.interface, transition.reason
        );
        let own = self.config.engine.src_addr;
        let ours = MasterAdvert {
            advbase: self.config.engine.advbase,
            advskew: self.engine.advertised_skew(),
            demote: self.engine.advertised_demote(),
        };
        let master_down = self.engine.master_down_time();
        let mut master = None;
        self.with_status(|s| {
            s.counters.state = transition.to;
            s.counters.transitions += 1;
            s.since = Instant::now();
            s.since_wall = SystemTime::now();
            s.last_reason = Some(transition.reason);
            s.master_down = master_down;
            match (transition.to, transition.reason) {
                (State::Master, _) => {
                    s.master = Some(own);
                    s.master_advert = Some(ours);
                }
                // Yielded: the better master is known at once.
                (State::Backup, carp_engine::Reason::Yield { peer }) => {
                    s.master = Some(peer);
                    s.master_advert = None;
                }
                (State::Backup, _) if s.master == Some(own) => {
                    s.master = None;
                    s.master_advert = None;
                }
                (State::Backup, _) => {}
                (State::Init, _) => {
                    s.master = None;
                    s.master_advert = None;
                }
            }
            master = s.master;
        });
        self.bus.publish(TransitionEvent {
            seq: 0,
            at: SystemTime::now(),
            interface: self.id.interface.clone(),
            vhid: self.id.vhid,
            from: transition.from,
            to: transition.to,
            reason: transition.reason.to_string(),
            master,
            addresses: self.config.engine.auth.addresses().to_vec(),
        });
        let done = self.hook_done(transition.hook);
        self.hooks.transition(transition, done);
    }

    /// The completion handle for a hook action; a `hook` action is
    /// tracked, so that what waits for it (held ARPs, the leave advert)
    /// goes out once it has finished.
    fn hook_done(&mut self, hook: Option<Hook>) -> HookDone {
        let (done, finished) = HookDone::new(Some(Arc::clone(&self.waker)));
        if let Some(hook) = hook {
            self.in_flight.push_back(InFlight {
                hook,
                finished,
                oldest_since: None,
            });
        }
        done
    }

    /// A master stopping without its down hook releases the addresses its
    /// hooks own; the leave advertisement waits for that.
    pub fn release_owned(&mut self) {
        if self.config.managed.is_empty() || self.engine.state() != State::Master {
            return;
        }
        let done = self.hook_done(Some(Hook::Down));
        self.hooks.release(done);
    }

    /// `addr` was removed from our interface: a master puts back what its
    /// hooks own, then announces it again.
    pub fn handle_address_removed(&mut self, addr: IpAddr) {
        if !self.config.managed.contains(&addr) || self.engine.state() != State::Master {
            return;
        }
        warn!(
            "{}: {addr} was removed from {} while master; adding it back",
            self.id, self.id.interface
        );
        self.put_back();
    }

    /// The kernel's address notifications were lost: a master puts back
    /// what its hooks own in case one was removed unseen (adding an
    /// address that is there changes nothing).
    pub fn handle_notifications_lost(&mut self) {
        if self.config.managed.is_empty() || self.engine.state() != State::Master {
            return;
        }
        warn!(
            "{}: address notifications were lost; adding its addresses again in case one was removed",
            self.id
        );
        self.put_back();
    }

    /// Has the hooks add the owned addresses again, then announces them.
    fn put_back(&mut self) {
        let done = self.hook_done(Some(Hook::Up));
        self.hooks.reassert(done);
        self.held.arps = self.held.arps.saturating_add(1);
    }

    /// The periodic re-announcement: armed while master, sent when due.
    pub fn refresh(&mut self, iface: &mut Interface, now: Time) {
        let Some(period) = self.config.garp_refresh else {
            return;
        };
        if self.engine.state() != State::Master || self.waiting_for(Hook::Up) {
            self.refresh_at = None;
            return;
        }
        let at = Instant::now();
        match self.refresh_at {
            None => self.refresh_at = Some(at + period),
            Some(due) if due <= at => {
                debug!("{}: periodic re-announcement", self.id);
                self.send(iface, now, &Transmit::GratuitousArp);
                self.refresh_at = Some(at + period);
            }
            Some(_) => {}
        }
    }

    /// When the next re-announcement is due, if one is armed.
    pub fn next_refresh(&self) -> Option<Instant> {
        self.refresh_at
    }

    /// UCARP's SIGUSR1 line.
    pub fn log_status(&self, iface: Option<&Interface>) {
        let extra = iface.map(|i| i.rejected.clone()).unwrap_or_default();
        info!("{}", self.status().status_line(&extra));
    }
}

/// Wakes the protocol loop from another thread.
pub(crate) fn wake(waker: &UnixStream) {
    // A full socket buffer already holds a wake-up: nothing lost.
    let _ = (&*waker).write(&[1]);
}

/// The advert a leaving master sends.
fn is_leave(advert: &AdvertRepr) -> bool {
    (advert.advbase, advert.advskew) == (LEAVE_ADVBASE, LEAVE_ADVSKEW)
}
