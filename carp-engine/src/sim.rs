//! A deterministic simulator of many engines on one segment.
//!
//! A virtual clock steps to the earliest pending delivery or engine timer;
//! nothing sleeps, so minutes of protocol run in milliseconds and a seed
//! replays a run exactly. Links have latency, the segment has seeded loss
//! and partitions; nodes can be killed, restarted, unplugged, stepped down
//! and shut down.
//!
//! A node is one virtual host (one engine). Several vhids share the
//! segment, and several nodes can share a host address (one host running
//! several vhids). Every advert goes through the codec as on a real link:
//! emitted as an IPv4 or IPv6 datagram (a dual-stack node sends both),
//! parsed, and checked (own packet, vhid, group, digest) by the receiver's
//! `ReceiveFilter` before its engine sees it; rejections are counted per
//! node. Either family can be blocked on the segment.
//!
//! Invariants are checked as the simulation runs (a broken one panics with
//! the trace so far):
//! - every transition has the cause it claims: a master-down takeover only
//!   after the master-down time of silence, a yield only to a better
//!   master, a preemption only with preemption on and a less frequent
//!   master, and so on;
//! - hooks alternate: no up hook while holding the address, no down hook
//!   from MASTER without it.
//!
//! Scenario-level checks (one master per vhid after convergence, takeover
//! bounds) are helpers the tests call.
//!
//! It is part of the library (pure: virtual time, no I/O) so that this
//! crate's tests, the `engines` fuzz target ([`crate::fuzzing`]) and
//! embedders testing their own configurations share one simulator.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use crate::{
    AdvertOutcome, Claim, Config, Engine, Hook, Interval, Reason, State, Time, Transition, Transmit,
};
use carp_proto::datagram::{AdvertDatagram, AdvertDatagram6};
use carp_proto::receive::Received;
use carp_proto::{
    AdvertRepr, Password, ReceiveFilter, VirtualHostAuth, DEFAULT_GROUP, DEFAULT_GROUP6,
};

/// SplitMix64: small, seedable, good enough for loss and fault schedules.
#[derive(Debug, Clone)]
/// SplitMix64 state.
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u32) -> bool {
        self.below(100) < u64::from(percent)
    }
}

/// The vhid of [`Sim::add_node`]'s nodes.
pub const VHID: u8 = 42;
/// The virtual address of [`VHID`].
pub const VIP: Ipv4Addr = Ipv4Addr::new(10, 1, 1, 252);

/// The authenticator of [`VHID`] (password `love`, [`VIP`]).
pub fn auth() -> VirtualHostAuth {
    auth_for(VHID)
}

/// The authenticator of `vhid`: VIP for [`VHID`], 10.1.<vhid>.252 for the
/// others.
pub fn auth_for(vhid: u8) -> VirtualHostAuth {
    let vip = if vhid == VHID {
        VIP
    } else {
        Ipv4Addr::new(10, 1, vhid, 252)
    };
    VirtualHostAuth::new(&Password::new(b"love").unwrap(), vhid, &[IpAddr::V4(vip)]).unwrap()
}

/// One simulated host.
pub struct Node {
    /// For traces and messages.
    pub name: String,
    /// Its virtual host.
    pub vhid: u8,
    /// Its configuration (the engine is rebuilt from it on restart).
    pub config: Config,
    /// `None` while killed.
    pub engine: Option<Engine>,
    /// Plugged in.
    pub link_up: bool,
    /// Hears only nodes with the same number.
    pub partition: u32,
    /// Whether the up hook ran more recently than the down hook.
    pub holds_vip: bool,
    /// When it last advertised.
    pub last_advert_sent: Option<Time>,
    /// Time and claimed interval of the last advert the engine accepted.
    last_accepted: Option<(Time, Interval)>,
    /// Since when the engine listens as a fresh backup (start, link up, end
    /// of a step-down hold).
    listening_since: Time,
    /// Every transition, in order.
    pub transitions: Vec<Transition>,
    /// When it sent gratuitous ARPs.
    pub arps: Vec<Time>,
    /// Adverts it sent.
    pub adverts_sent: u64,
    /// Datagrams its receive filter refused, and adverts its engine
    /// refused as replays, by cause.
    pub rejected: BTreeMap<&'static str, u64>,
    /// Its wall clock's error, in milliseconds (negative: behind); its
    /// start counter comes from it.
    pub wall_offset_ms: i64,
}

impl Node {
    /// Its state (`None` while killed).
    pub fn state(&self) -> Option<State> {
        self.engine.as_ref().map(Engine::state)
    }
    /// Its real address.
    pub fn addr(&self) -> IpAddr {
        self.config.src_addr
    }
}

struct Delivery {
    to: usize,
    /// `None`: injected from outside the simulated nodes.
    from: Option<usize>,
    /// The advert as it travels: an IPv4 or IPv6 datagram.
    bytes: Vec<u8>,
}

/// Nodes on one segment, in virtual time.
pub struct Sim {
    /// The virtual clock.
    pub now: Time,
    /// Every node ever added, by id.
    pub nodes: Vec<Node>,
    pending: Vec<Option<Delivery>>,
    queue: BinaryHeap<Reverse<(Time, u64, usize)>>,
    seq: u64,
    /// Loss and fault schedules.
    pub rng: Rng,
    /// Percentage of adverts lost, per receiver.
    pub loss_percent: u32,
    /// One-way latency of every link.
    pub latency: Duration,
    /// What happened, a line each.
    pub trace: String,
    /// Trace advert sends (verbose; on for golden traces).
    pub trace_adverts: bool,
    /// Drop every IPv4 advert (a segment where only IPv6 gets through).
    pub block_ipv4: bool,
    /// Drop every IPv6 advert.
    pub block_ipv6: bool,
    /// Record every datagram the nodes send (for replays).
    pub capture: bool,
    /// What was recorded: sender id and datagram.
    pub captured: Vec<(usize, Vec<u8>)>,
}

impl Sim {
    /// An empty segment; `seed` makes the run repeatable.
    pub fn new(seed: u64) -> Sim {
        Sim {
            now: Time::ZERO,
            nodes: Vec::new(),
            pending: Vec::new(),
            queue: BinaryHeap::new(),
            seq: 0,
            rng: Rng::new(seed),
            loss_percent: 0,
            latency: Duration::from_micros(200),
            trace: String::new(),
            trace_adverts: false,
            block_ipv4: false,
            block_ipv6: false,
            capture: false,
            captured: Vec::new(),
        }
    }

    /// Adds and starts a node of vhid [`VHID`] at `addr` whose config
    /// `tune` adjusts.
    pub fn add_node(
        &mut self,
        name: &str,
        addr: impl Into<IpAddr>,
        tune: impl FnOnce(Config) -> Config,
    ) -> usize {
        self.add_vhost(name, addr, VHID, tune)
    }

    /// Adds and starts a node of `vhid` at `addr` (several vhids may share
    /// a host address). An IPv6 `addr` makes an IPv6-only node; `tune`
    /// can set `src_addr_v6` for a dual-stack one.
    pub fn add_vhost(
        &mut self,
        name: &str,
        addr: impl Into<IpAddr>,
        vhid: u8,
        tune: impl FnOnce(Config) -> Config,
    ) -> usize {
        let counter = self.rng.next_u64();
        let config = tune(Config::new(auth_for(vhid), addr, counter));
        self.nodes.push(Node {
            name: name.to_string(),
            vhid,
            config,
            engine: None,
            link_up: true,
            partition: 0,
            holds_vip: false,
            last_advert_sent: None,
            last_accepted: None,
            listening_since: self.now,
            transitions: Vec::new(),
            arps: Vec::new(),
            adverts_sent: 0,
            rejected: BTreeMap::new(),
            wall_offset_ms: 0,
        });
        let id = self.nodes.len() - 1;
        self.start(id);
        id
    }

    fn start(&mut self, id: usize) {
        let mut config = self.nodes[id].config.clone();
        // As carp-io does: the wall clock's milliseconds × 2^16 and random
        // low bits (the simulated wall clock starts in November 2026).
        let wall_ms = (1_795_000_000_000
            + self.now.since_origin().as_millis() as i64
            + self.nodes[id].wall_offset_ms) as u64;
        config.initial_counter = (wall_ms << 16) | (self.rng.next_u64() & 0xffff);
        let engine = Engine::new(config, self.now).expect("valid config");
        let node = &mut self.nodes[id];
        node.engine = Some(engine);
        node.listening_since = self.now;
        node.last_accepted = None;
        node.holds_vip = false;
        if !node.link_up {
            let now = self.now;
            node.engine.as_mut().unwrap().handle_link_change(now, false);
        }
        self.drain(id, None);
    }

    fn log(&mut self, line: String) {
        let _ = writeln!(self.trace, "{:>11}  {}", self.now.to_string(), line);
    }

    /// Logs `what` happening to node `id`.
    fn note(&mut self, id: usize, what: &str) {
        let line = format!("{}: {what}", self.nodes[id].name);
        self.log(line);
    }

    // ---- faults -------------------------------------------------------

    /// kill -9: the node vanishes without a word.
    pub fn kill(&mut self, id: usize) {
        self.note(id, "killed");
        self.nodes[id].engine = None;
        self.nodes[id].holds_vip = false;
    }

    /// Sets a node's demotion counter (a tracked service failing or
    /// recovering).
    pub fn demote(&mut self, id: usize, demote: u8) {
        self.note(id, &format!("demote {demote}"));
        let now = self.now;
        if let Some(engine) = self.nodes[id].engine.as_mut() {
            engine.handle_demote(now, demote);
            self.drain(id, None);
        }
    }

    /// Starts a killed node again (a fresh engine).
    pub fn restart(&mut self, id: usize) {
        if self.nodes[id].engine.is_none() {
            self.note(id, "restarted");
            self.start(id);
        }
    }

    /// Plugs a node in or out.
    pub fn set_link(&mut self, id: usize, up: bool) {
        if self.nodes[id].link_up == up {
            return;
        }
        self.note(id, if up { "link up" } else { "link down" });
        self.nodes[id].link_up = up;
        let now = self.now;
        if let Some(engine) = self.nodes[id].engine.as_mut() {
            engine.handle_link_change(now, up);
            if up {
                self.nodes[id].listening_since = now;
            }
        }
        self.drain(id, None);
    }

    /// UCARP's SIGUSR2 on a node.
    pub fn step_down(&mut self, id: usize) {
        let now = self.now;
        let Some(engine) = self.nodes[id].engine.as_mut() else {
            return;
        };
        let hold = engine.config().step_down_hold;
        if engine.step_down(now) {
            self.nodes[id].listening_since = now + hold;
            self.note(id, "step down");
        }
        self.drain(id, None);
    }

    /// Clean shutdown: the leave advert goes out, then the node is gone.
    pub fn shutdown(&mut self, id: usize) {
        let now = self.now;
        let Some(engine) = self.nodes[id].engine.as_mut() else {
            return;
        };
        engine.shutdown(now, true);
        self.note(id, "shutdown");
        self.drain(id, None);
        self.nodes[id].engine = None;
    }

    /// Splits the segment: nodes hear only nodes with the same group number.
    pub fn partition(&mut self, groups: &[u32]) {
        self.log(format!("partition {groups:?}"));
        for (node, &group) in self.nodes.iter_mut().zip(groups) {
            node.partition = group;
        }
    }

    /// Ends any partition.
    pub fn heal(&mut self) {
        self.log("partition healed".to_string());
        for node in &mut self.nodes {
            node.partition = 0;
        }
    }

    // ---- running ------------------------------------------------------

    fn next_due(&self) -> Option<Time> {
        let delivery = self.queue.peek().map(|Reverse((at, _, _))| *at);
        let timer = self
            .nodes
            .iter()
            .filter_map(|n| n.engine.as_ref()?.poll_timeout())
            .min();
        [delivery, timer].into_iter().flatten().min()
    }

    /// Runs every event up to and including `until`; the clock ends there.
    pub fn run_until(&mut self, until: Time) {
        while let Some(at) = self.next_due().filter(|&at| at <= until) {
            self.now = at;
            self.deliver_due();
            for id in 0..self.nodes.len() {
                let due = self.nodes[id]
                    .engine
                    .as_ref()
                    .and_then(Engine::poll_timeout);
                if due.is_some_and(|due| due <= at) {
                    self.nodes[id].engine.as_mut().unwrap().handle_timeout(at);
                    self.drain(id, None);
                }
            }
        }
        self.now = until;
    }

    /// Runs for `duration` of virtual time.
    pub fn run_for(&mut self, duration: Duration) {
        self.run_until(self.now + duration);
    }

    fn deliver_due(&mut self) {
        while let Some(Reverse((at, _, slot))) = self.queue.peek().copied() {
            if at > self.now {
                break;
            }
            self.queue.pop();
            let delivery = self.pending[slot].take().expect("queued delivery");
            let to = delivery.to;
            let node = &self.nodes[to];
            // Checked at delivery too: the receiver may have died, been
            // unplugged or partitioned away while the advert was in flight.
            let sender_partition = delivery.from.map_or(0, |from| self.nodes[from].partition);
            let reachable =
                node.link_up && node.partition == sender_partition && node.engine.is_some();
            if !reachable {
                continue;
            }
            let filter = ReceiveFilter {
                own_addrs: own_addrs(&node.config),
                groups: vec![DEFAULT_GROUP.into(), DEFAULT_GROUP6.into()],
                peers: Vec::new(),
                auth: node.config.auth.clone(),
            };
            let accepted = if delivery.bytes[0] >> 4 == 6 {
                filter.accept_datagram6(&delivery.bytes)
            } else {
                filter.accept_datagram(&delivery.bytes)
            };
            let received: Received = match accepted {
                Ok(received) => received,
                Err(rejected) => {
                    *self.nodes[to].rejected.entry(rejected.label()).or_default() += 1;
                    continue;
                }
            };
            let (src, advert) = (received.src, received.advert);
            let engine = self.nodes[to].engine.as_mut().unwrap();
            let accepted_before = engine.stats().adverts_accepted;
            let outcome = engine.handle_advert(self.now, src, &advert);
            let accepted = engine.stats().adverts_accepted > accepted_before;
            if let AdvertOutcome::Refused(refusal) = outcome {
                *self.nodes[to].rejected.entry(refusal.label()).or_default() += 1;
            }
            if accepted {
                let interval = Interval::new(advert.advbase, advert.advskew);
                self.nodes[to].last_accepted = Some((self.now, interval));
            }
            self.drain(to, Some((src, advert)));
        }
    }

    /// Collects a node's outputs: sends adverts on the segment, records
    /// ARPs and checks each transition.
    fn drain(&mut self, id: usize, heard: Option<(IpAddr, AdvertRepr)>) {
        loop {
            let now = self.now;
            let link_up = self.nodes[id].link_up;
            let Some(engine) = self.nodes[id].engine.as_mut() else {
                return;
            };
            if let Some(event) = engine.poll_event() {
                self.check_transition(id, &event, heard);
                self.nodes[id].transitions.push(event);
                continue;
            }
            let Some(transmit) = engine.poll_transmit() else {
                return;
            };
            engine.handle_send_result(now, &transmit, link_up);
            match transmit {
                Transmit::GratuitousArp => {
                    self.nodes[id].arps.push(now);
                    if self.trace_adverts {
                        self.note(id, &format!("gratuitous ARP for {VIP}"));
                    }
                }
                Transmit::Advert(advert) => self.send(id, advert),
            }
        }
    }

    fn send(&mut self, from: usize, advert: AdvertRepr) {
        let node = &mut self.nodes[from];
        node.last_advert_sent = Some(self.now);
        node.adverts_sent += 1;
        if self.trace_adverts {
            let name = node.name.clone();
            self.log(format!(
                "{name}: advert advbase={} advskew={}",
                advert.advbase, advert.advskew
            ));
        }
        if !self.nodes[from].link_up {
            return;
        }
        for src in own_addrs(&self.nodes[from].config) {
            let bytes = self.datagram(src, advert);
            if self.capture && !bytes.is_empty() {
                self.captured.push((from, bytes.clone()));
            }
            for to in 0..self.nodes.len() {
                if to == from || self.rng.chance(self.loss_percent) {
                    continue;
                }
                self.enqueue(to, Some(from), bytes.clone());
            }
        }
    }

    /// `advert` from `src` to the group of its family, as bytes; empty if
    /// that family is blocked.
    fn datagram(&mut self, src: IpAddr, advert: AdvertRepr) -> Vec<u8> {
        self.seq += 1;
        match src {
            IpAddr::V4(_) if self.block_ipv4 => Vec::new(),
            IpAddr::V6(_) if self.block_ipv6 => Vec::new(),
            IpAddr::V4(src) => AdvertDatagram {
                src,
                dst: DEFAULT_GROUP,
                ident: self.seq as u16,
                advert,
            }
            .to_bytes()
            .to_vec(),
            IpAddr::V6(src) => AdvertDatagram6 {
                src,
                dst: DEFAULT_GROUP6,
                advert,
            }
            .to_bytes()
            .to_vec(),
        }
    }

    fn enqueue(&mut self, to: usize, from: Option<usize>, bytes: Vec<u8>) {
        if bytes.is_empty() {
            return;
        }
        self.seq += 1;
        let at = self.now + self.latency;
        self.pending.push(Some(Delivery { to, from, bytes }));
        self.queue
            .push(Reverse((at, self.seq, self.pending.len() - 1)));
    }

    // ---- invariants ---------------------------------------------------

    fn fail(&self, what: String) -> ! {
        panic!(
            "invariant broken at {}: {what}\n--- trace ---\n{}",
            self.now, self.trace
        );
    }

    fn check_transition(
        &mut self,
        id: usize,
        event: &Transition,
        heard: Option<(IpAddr, AdvertRepr)>,
    ) {
        let node = &self.nodes[id];
        let config = &node.config;
        let name = node.name.clone();
        let heard_claim = heard.map(|(addr, advert)| Claim {
            demote: advert.demote,
            interval: Interval::new(advert.advbase, advert.advskew),
            addr,
        });
        let from_advert = |peer: IpAddr| heard_claim.filter(|c| c.addr == peer);
        let cause_ok = match event.reason {
            Reason::Startup => event.from == State::Init && event.to == State::Backup,
            Reason::MasterDown { silent_for } => {
                let (since, interval) = match node.last_accepted {
                    Some((at, interval)) if at >= node.listening_since => (at, interval),
                    _ => (node.listening_since, config.interval()),
                };
                let silence = self.now - since;
                silence == silent_for && silence >= config.master_down(interval) && heard.is_none()
            }
            Reason::Preempt { peer } => from_advert(peer)
                .is_some_and(|theirs| config.preempt && theirs.interval > config.interval()),
            Reason::PeerWillTimeOut { peer, interval } => from_advert(peer).is_some_and(|theirs| {
                theirs.interval.as_duration() == interval
                    && interval > config.will_time_out_threshold()
            }),
            Reason::PeerLeft { peer } => {
                from_advert(peer).is_some_and(|theirs| theirs.interval == Interval::new(255, 255))
            }
            Reason::PeerDemoted { peer, demote } => from_advert(peer).is_some_and(|theirs| {
                let ours = node
                    .engine
                    .as_ref()
                    .map_or(config.demote, Engine::advertised_demote);
                theirs.demote == demote && demote > ours
            }),
            Reason::Yield { peer } => from_advert(peer).is_some_and(|theirs| {
                let engine = node.engine.as_ref().unwrap();
                let ours = Claim {
                    demote: engine.advertised_demote(),
                    interval: Interval::new(config.advbase, engine.advertised_skew()),
                    addr: engine.tie_address(self.now, theirs.addr),
                };
                theirs.rank(&ours, config.tie_break).is_gt()
            }),
            // Faults the simulator itself injected just now.
            Reason::LinkDown => !node.link_up,
            Reason::StepDown | Reason::Shutdown | Reason::InterfaceReset => heard.is_none(),
        };
        if !cause_ok {
            self.fail(format!(
                "{name}: {} -> {} without its cause ({})",
                event.from, event.to, event.reason
            ));
        }
        let node = &mut self.nodes[id];
        match event.hook {
            Some(Hook::Up) if node.holds_vip => {
                self.fail(format!("{name}: up hook while already holding the address"))
            }
            Some(Hook::Up) => node.holds_vip = true,
            Some(Hook::Down) if event.from == State::Master && !node.holds_vip => {
                self.fail(format!("{name}: down hook from MASTER without the address"))
            }
            Some(Hook::Down) => node.holds_vip = false,
            None => {}
        }
        let hook = match event.hook {
            Some(Hook::Up) => "  [up hook]",
            Some(Hook::Down) => "  [down hook]",
            None => "",
        };
        self.log(format!(
            "{name}: {} -> {} ({}){hook}",
            event.from, event.to, event.reason
        ));
    }

    // ---- scenario checks ----------------------------------------------

    /// Live, plugged-in nodes in MASTER state.
    pub fn masters(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].link_up && self.nodes[i].state() == Some(State::Master))
            .collect()
    }

    /// Live, plugged-in masters of `vhid`.
    pub fn masters_of(&self, vhid: u8) -> Vec<usize> {
        self.masters()
            .into_iter()
            .filter(|&i| self.nodes[i].vhid == vhid)
            .collect()
    }

    /// Exactly one master per vhid among the live nodes; returns them.
    pub fn assert_one_master_per_vhid(&self) -> BTreeMap<u8, usize> {
        let vhids: std::collections::BTreeSet<u8> = self
            .nodes
            .iter()
            .filter(|n| n.engine.is_some() && n.link_up)
            .map(|n| n.vhid)
            .collect();
        vhids
            .into_iter()
            .map(|vhid| {
                let masters = self.masters_of(vhid);
                if masters.len() != 1 {
                    let names: Vec<_> = masters
                        .iter()
                        .map(|&i| self.nodes[i].name.as_str())
                        .collect();
                    self.fail(format!(
                        "vhid {vhid}: expected exactly one master, got {names:?}"
                    ));
                }
                (vhid, masters[0])
            })
            .collect()
    }

    /// An advert from outside the simulated nodes (an attacker, a peer we
    /// do not model), sent now from `src` to every node as a datagram; it
    /// meets the same loss, partitions (group 0) and receive checks.
    pub fn inject(&mut self, src: Ipv4Addr, advert: AdvertRepr) {
        if self.trace_adverts {
            self.log(format!(
                "{src} (outside): advert vhid={} advbase={} advskew={} demote={}",
                advert.vhid, advert.advbase, advert.advskew, advert.demote
            ));
        }
        let bytes = self.datagram(IpAddr::V4(src), advert);
        for to in 0..self.nodes.len() {
            if self.rng.chance(self.loss_percent) {
                continue;
            }
            self.enqueue(to, None, bytes.clone());
        }
    }

    /// A datagram from outside (a replay of a captured one), now, to every
    /// node; the same loss, partitions (group 0) and checks apply.
    pub fn inject_bytes(&mut self, bytes: &[u8]) {
        for to in 0..self.nodes.len() {
            if self.rng.chance(self.loss_percent) {
                continue;
            }
            self.enqueue(to, None, bytes.to_vec());
        }
    }

    /// Kills every node running on host `addr` (all its vhids).
    pub fn kill_host(&mut self, addr: Ipv4Addr) {
        for id in 0..self.nodes.len() {
            if self.nodes[id].addr() == IpAddr::V4(addr) && self.nodes[id].engine.is_some() {
                self.kill(id);
            }
        }
    }

    /// Exactly one master among all live nodes (one vhid); returns it.
    pub fn assert_one_master(&self) -> usize {
        let masters = self.masters();
        if masters.len() != 1 {
            let names: Vec<_> = masters
                .iter()
                .map(|&i| self.nodes[i].name.as_str())
                .collect();
            self.fail(format!("expected exactly one master, got {names:?}"));
        }
        masters[0]
    }

    /// A node's name.
    pub fn name_of(&self, id: usize) -> &str {
        &self.nodes[id].name
    }

    /// Transitions of all nodes after `since`, in time order.
    pub fn transitions_since(&self, since: Time) -> usize {
        self.nodes
            .iter()
            .flat_map(|n| n.transitions.iter())
            .filter(|t| t.at > since)
            .count()
    }

    /// The longest master-down time any live node could wait.
    pub fn worst_master_down(&self) -> Duration {
        let slowest = self
            .nodes
            .iter()
            .map(|n| n.config.interval())
            .max()
            .unwrap();
        self.nodes
            .iter()
            .map(|n| n.config.master_down(slowest.max(n.config.interval())))
            .max()
            .unwrap()
    }
}

/// `s` seconds.
pub fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// The virtual time `s` seconds after start.
pub fn at(s: f64) -> Time {
    Time::from_duration(secs(s))
}

/// Every source a node advertises from.
fn own_addrs(config: &Config) -> Vec<IpAddr> {
    std::iter::once(config.src_addr)
        .chain(config.src_addr_v6.map(IpAddr::V6))
        .collect()
}

/// fe80::`last`, an IPv6 node's link-local source.
pub fn addr6(last: u16) -> Ipv6Addr {
    Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, last)
}

/// The authenticator of an IPv6-only virtual host `vhid` (virtual address
/// 2001:db8::`vhid`).
pub fn auth6_for(vhid: u8) -> VirtualHostAuth {
    let vip = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(vhid));
    VirtualHostAuth::new(&Password::new(b"love").unwrap(), vhid, &[IpAddr::V6(vip)]).unwrap()
}

/// The authenticator of a dual-stack virtual host `vhid`: [`auth_for`]'s
/// IPv4 address and [`auth6_for`]'s IPv6 one.
pub fn auth_dual_for(vhid: u8) -> VirtualHostAuth {
    let both = [
        auth_for(vhid).addresses()[0],
        auth6_for(vhid).addresses()[0],
    ];
    VirtualHostAuth::new(&Password::new(b"love").unwrap(), vhid, &both).unwrap()
}

/// 10.1.1.`last`.
pub fn addr(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 1, 1, last)
}
