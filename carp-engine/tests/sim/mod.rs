//! A deterministic simulator of many engines on one segment.
//!
//! A virtual clock steps to the earliest pending delivery or engine timer;
//! nothing sleeps, so minutes of protocol run in milliseconds and a seed
//! replays a run exactly. Links have latency, the segment has seeded loss
//! and partitions; nodes can be killed, restarted, unplugged, stepped down
//! and shut down.
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
//! Scenario-level checks (one master after convergence, takeover bounds)
//! are helpers the tests call.

#![allow(dead_code)] // each test binary uses a different part

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use carp_engine::{
    Claim, Config, Engine, Hook, Interval, Reason, State, Time, Transition, Transmit,
};
use carp_proto::{AdvertRepr, Password, VirtualHostAuth};

/// SplitMix64: small, seedable, good enough for loss and fault schedules.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
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

pub const VHID: u8 = 42;
pub const VIP: Ipv4Addr = Ipv4Addr::new(10, 1, 1, 252);

pub fn auth() -> VirtualHostAuth {
    VirtualHostAuth::new(&Password::new(b"love").unwrap(), VHID, &[IpAddr::V4(VIP)]).unwrap()
}

/// One simulated host.
pub struct Node {
    pub name: String,
    pub config: Config,
    pub engine: Option<Engine>,
    pub link_up: bool,
    pub partition: u32,
    /// Whether the up hook ran more recently than the down hook.
    pub holds_vip: bool,
    pub last_advert_sent: Option<Time>,
    /// Time and claimed interval of the last advert the engine accepted.
    last_accepted: Option<(Time, Interval)>,
    /// Since when the engine listens as a fresh backup (start, link up, end
    /// of a step-down hold).
    listening_since: Time,
    pub transitions: Vec<Transition>,
    pub arps: Vec<Time>,
    pub adverts_sent: u64,
}

impl Node {
    pub fn state(&self) -> Option<State> {
        self.engine.as_ref().map(Engine::state)
    }
    pub fn addr(&self) -> IpAddr {
        self.config.src_addr
    }
}

struct Delivery {
    at: Time,
    seq: u64,
    to: usize,
    from: usize,
    advert: AdvertRepr,
}

pub struct Sim {
    pub now: Time,
    pub nodes: Vec<Node>,
    pending: Vec<Option<Delivery>>,
    queue: BinaryHeap<Reverse<(Time, u64, usize)>>,
    seq: u64,
    pub rng: Rng,
    /// Percentage of adverts lost, per receiver.
    pub loss_percent: u32,
    /// One-way latency of every link.
    pub latency: Duration,
    pub trace: String,
    /// Trace advert sends (verbose; on for golden traces).
    pub trace_adverts: bool,
}

impl Sim {
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
        }
    }

    /// Adds and starts a node at `addr` whose config `tune` adjusts.
    pub fn add_node(
        &mut self,
        name: &str,
        addr: Ipv4Addr,
        tune: impl FnOnce(Config) -> Config,
    ) -> usize {
        let counter = self.rng.next_u64();
        let config = tune(Config::new(auth(), addr, counter));
        self.nodes.push(Node {
            name: name.to_string(),
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
        });
        let id = self.nodes.len() - 1;
        self.start(id);
        id
    }

    fn start(&mut self, id: usize) {
        let mut config = self.nodes[id].config.clone();
        config.initial_counter = self.rng.next_u64();
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

    pub fn restart(&mut self, id: usize) {
        if self.nodes[id].engine.is_none() {
            self.note(id, "restarted");
            self.start(id);
        }
    }

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
            let reachable = node.link_up
                && node.partition == self.nodes[delivery.from].partition
                && node.engine.is_some();
            if !reachable {
                continue;
            }
            let src = self.nodes[delivery.from].addr();
            let engine = self.nodes[to].engine.as_mut().unwrap();
            let accepted_before = engine.stats().adverts_accepted;
            engine.handle_advert(self.now, src, &delivery.advert);
            if engine.stats().adverts_accepted > accepted_before {
                let interval = Interval::new(delivery.advert.advbase, delivery.advert.advskew);
                self.nodes[to].last_accepted = Some((self.now, interval));
            }
            self.drain(to, Some((src, delivery.advert)));
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
        for to in 0..self.nodes.len() {
            if to == from || self.rng.chance(self.loss_percent) {
                continue;
            }
            self.seq += 1;
            let at = self.now + self.latency;
            self.pending.push(Some(Delivery {
                at,
                seq: self.seq,
                to,
                from,
                advert,
            }));
            self.queue
                .push(Reverse((at, self.seq, self.pending.len() - 1)));
        }
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
            Reason::PeerDemoted { peer, demote } => from_advert(peer)
                .is_some_and(|theirs| theirs.demote == demote && demote > config.demote),
            Reason::Yield { peer } => from_advert(peer).is_some_and(|theirs| {
                let engine = node.engine.as_ref().unwrap();
                let ours = Claim {
                    demote: config.demote,
                    interval: Interval::new(
                        config.advbase,
                        if engine.is_degraded() {
                            config.advskew.max(240)
                        } else {
                            config.advskew
                        },
                    ),
                    addr: config.src_addr,
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

pub fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

pub fn at(s: f64) -> Time {
    Time::from_duration(secs(s))
}

pub fn addr(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 1, 1, last)
}
