//! The one status model: what each virtual host and each interface is
//! doing, kept up to date by the protocol thread and read from any thread.
//! The SIGUSR1 line, tests, and later status output and metrics all render
//! these values instead of scraping log text.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

use carp_engine::{Reason, State};

/// Counts of what a virtual host did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterSnapshot {
    /// Current state.
    pub state: State,
    /// Advertisements received, authenticated and handed to the engine.
    pub accepted: u64,
    /// Advertisements sent.
    pub sent: u64,
    /// Sends that failed.
    pub send_errors: u64,
    /// Gratuitous ARPs sent.
    pub arps_sent: u64,
    /// State transitions.
    pub transitions: u64,
    /// Received packets rejected, by cause (`bad_ttl`, `bad_digest`, …; see
    /// `carp_proto::Rejected::label`; replays: `carp_engine::Refusal::label`).
    pub rejected: BTreeMap<&'static str, u64>,
    /// Adverts accepted in permissive replay mode although the replay
    /// rules refuse them.
    pub replays_tolerated: u64,
}

impl Default for CounterSnapshot {
    fn default() -> CounterSnapshot {
        CounterSnapshot {
            state: State::Init,
            accepted: 0,
            sent: 0,
            send_errors: 0,
            arps_sent: 0,
            transitions: 0,
            rejected: BTreeMap::new(),
            replays_tolerated: 0,
        }
    }
}

impl CounterSnapshot {
    /// Rejections of one cause.
    pub fn rejected(&self, label: &str) -> u64 {
        self.rejected.get(label).copied().unwrap_or(0)
    }

    /// All rejections.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    pub(crate) fn reject(&mut self, label: &'static str) {
        *self.rejected.entry(label).or_default() += 1;
    }
}

/// One virtual host, as the protocol thread last left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualHostStatus {
    /// The interface it runs on.
    pub interface: String,
    /// Its vhid.
    pub vhid: u8,
    /// Its virtual addresses, in the order the digest covers them.
    pub addresses: Vec<IpAddr>,
    /// Our real address (the adverts' source).
    pub source: IpAddr,
    /// When it entered its current state.
    pub since: Instant,
    /// The same moment on the wall clock, for operators.
    pub since_wall: SystemTime,
    /// Why it entered it (`None` before the first transition).
    pub last_reason: Option<Reason>,
    /// Who is master as far as we know: us when master, the source of the
    /// last accepted advert when backup, `None` when nobody was heard.
    pub master: Option<IpAddr>,
    /// What that master advertises: ours when master, the last accepted
    /// advert's when backup.
    pub master_advert: Option<MasterAdvert>,
    /// Our own advertisement interval.
    pub advbase: u8,
    /// Our own skew, as configured (the skew sent can be higher: see
    /// `carp_engine::Engine::advertised_skew`).
    pub advskew: u8,
    /// How long a backup waits for a silent master.
    pub master_down: Duration,
    /// Counters, with the state.
    pub counters: CounterSnapshot,
    /// Removed or shutting down: still finishing its down hook and leave
    /// advertisement.
    pub stopping: bool,
    /// The demotion it advertises (tracking, groups, the operator); 0
    /// when healthy.
    pub demote: u8,
    /// Where its own demotion comes from, one entry per cause now in
    /// effect (empty when healthy). With a demotion group, `demote` is the
    /// group's sum and this lists only this virtual host's share.
    pub demote_causes: Vec<DemoteCause>,
    /// The demotion group it belongs to, if any.
    pub demote_group: Option<String>,
    /// What its hooks (scripts) are doing, when they say.
    pub hooks: HookReport,
}

/// The advert of the master we follow (or our own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MasterAdvert {
    /// Its interval's base, in seconds.
    pub advbase: u8,
    /// Its skew, in 1/256 s.
    pub advskew: u8,
    /// Its demotion.
    pub demote: u8,
}

/// One reason a virtual host is demoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoteCause {
    /// `operator`, `start-up`, `interface eth1`, `script <command>`.
    pub cause: String,
    /// What it adds.
    pub demote: u8,
}

/// What a virtual host's hooks are doing, as they report it (scripts do;
/// [`crate::NoHooks`] says nothing).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HookReport {
    /// The hook running now.
    pub running: Option<HookRun>,
    /// The last hook run that ended.
    pub last: Option<HookRun>,
}

/// One hook run (one script for one address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookRun {
    /// `up` or `down`.
    pub hook: &'static str,
    /// The script.
    pub command: String,
    /// When it started.
    pub started: SystemTime,
    /// How it ended (`None` while running): `exit 0`, `exit 3`,
    /// `killed at its timeout (…)`, `cut short by the stop (…)`, `not
    /// started`, `skipped`.
    pub outcome: Option<String>,
    /// Whether it ended well (exit status 0).
    pub success: bool,
    /// How long it ran (set when it ends).
    pub took: Option<Duration>,
}

/// Where a hook implementation publishes its [`HookReport`].
pub type HookReportCell = std::sync::Arc<std::sync::Mutex<HookReport>>;

impl VirtualHostStatus {
    pub(crate) fn new(interface: &str, vhid: u8, addresses: Vec<IpAddr>, source: IpAddr) -> Self {
        VirtualHostStatus {
            interface: interface.to_string(),
            vhid,
            addresses,
            source,
            since: Instant::now(),
            since_wall: SystemTime::now(),
            last_reason: None,
            master: None,
            master_advert: None,
            advbase: 0,
            advskew: 0,
            master_down: Duration::ZERO,
            counters: CounterSnapshot::default(),
            stopping: false,
            demote: 0,
            demote_causes: Vec::new(),
            demote_group: None,
            hooks: HookReport::default(),
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.counters.state
    }

    /// How long it has been in its current state.
    pub fn in_state_for(&self) -> Duration {
        self.since.elapsed()
    }

    /// UCARP's SIGUSR1 line, extended: `MASTER on eth0 id 7: …`, with the
    /// counters; `extra_rejected` adds rejections counted on the interface
    /// (packets no virtual host could claim).
    pub fn status_line(&self, extra_rejected: &BTreeMap<&'static str, u64>) -> String {
        let c = &self.counters;
        let mut rejected = c.rejected.clone();
        for (label, count) in extra_rejected {
            *rejected.entry(label).or_default() += count;
        }
        let rejected: Vec<String> = rejected.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut line = format!(
            "{} on {} id {}: accepted {} sent {} send-errors {} arps {} transitions {} rejected [{}]",
            c.state,
            self.interface,
            self.vhid,
            c.accepted,
            c.sent,
            c.send_errors,
            c.arps_sent,
            c.transitions,
            rejected.join(" ")
        );
        let _ = write!(line, " for {:.1}s", self.in_state_for().as_secs_f64());
        if let Some(reason) = &self.last_reason {
            let _ = write!(line, " ({reason})");
        }
        if let Some(master) = self.master {
            let _ = write!(line, " master {master}");
        }
        if self.demote > 0 {
            let _ = write!(line, " demote {}", self.demote);
        }
        if self.stopping {
            line.push_str(" stopping");
        }
        line
    }
}

/// One interface, as the protocol thread last left it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InterfaceStatus {
    /// Its name.
    pub name: String,
    /// Its kernel index (changes when it is re-created).
    pub index: u32,
    /// Up with carrier, as last seen.
    pub link_up: bool,
    /// Packets no virtual host could claim, by cause: malformed ones,
    /// adverts for vhids nobody here runs (`wrong_vhid`, normal on a shared
    /// segment), IPv4 adverts to a group not joined here (`other_group`)
    /// and packets lost to a full receive ring (`receive_overflow`) or
    /// refused by a full raw socket buffer (`socket_overflow`, an upper
    /// bound: while it is full the kernel counts even datagrams the
    /// socket's filter would discard, and a unicast advert reaches every
    /// group's socket of its family).
    pub rejected: BTreeMap<&'static str, u64>,
}

impl InterfaceStatus {
    /// The causes in `rejected` that are losses (packets the kernel
    /// dropped for want of room, genuine adverts possibly among them),
    /// not refusals.
    pub const LOSSES: [&'static str; 2] = ["receive_overflow", "socket_overflow"];
}

/// Everything a runtime runs, at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RuntimeStatus {
    /// Interfaces in use, by name.
    pub interfaces: Vec<InterfaceStatus>,
    /// Virtual hosts, by interface then vhid.
    pub virtual_hosts: Vec<VirtualHostStatus>,
}

impl RuntimeStatus {
    /// The virtual host `vhid` on `interface`.
    pub fn virtual_host(&self, interface: &str, vhid: u8) -> Option<&VirtualHostStatus> {
        self.virtual_hosts
            .iter()
            .find(|v| v.interface == interface && v.vhid == vhid)
    }

    /// The interface `name`.
    pub fn interface(&self, name: &str) -> Option<&InterfaceStatus> {
        self.interfaces.iter().find(|i| i.name == name)
    }
}
