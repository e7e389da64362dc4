//! What one virtual host is configured with, validated once at construction.

use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use carp_proto::VirtualHostAuth;
use thiserror::Error;

use crate::election::TieBreak;
use crate::time::{self, Interval};

/// Configuration of one virtual host. Build it with [`Config::new`] and the
/// `with_*` setters; [`crate::Engine::new`] validates it.
#[derive(Debug, Clone)]
pub struct Config {
    /// Signs our advertisements; its vhid is the virtual host's.
    pub auth: VirtualHostAuth,
    /// Our real address: the source of our adverts and our side of the
    /// tie-break between equal intervals. IPv4 or IPv6; for a dual-stack
    /// virtual host, the IPv4 one.
    pub src_addr: IpAddr,
    /// A dual-stack virtual host (IPv4 and IPv6 addresses) advertises on
    /// both families: this is the source of its IPv6 adverts. Which pair
    /// of addresses decides a tie: [`crate::Engine::tie_address`].
    pub src_addr_v6: Option<Ipv6Addr>,
    /// Whole seconds of our advertisement interval (UCARP `-b`, default 1).
    pub advbase: u8,
    /// Our skew in 1/256 s (UCARP `-k`, default 0).
    pub advskew: u8,
    /// Missed intervals before a master is declared dead (UCARP `-r`,
    /// default 3).
    pub deadratio: u32,
    /// Take over from a master that advertises less often (UCARP `-P`).
    pub preempt: bool,
    /// Do not run the down hook at start-up (UCARP `-n`).
    pub neutral: bool,
    /// Ignore link state changes (UCARP `-S`).
    pub ignore_link_state: bool,
    /// OpenBSD demotion counter we advertise; lower wins. UCARP sends 0.
    /// The starting value; [`crate::Engine::handle_demote`] changes it.
    pub demote: u8,
    /// Also add the demotion to the advertised skew, capped at 240 (as
    /// FreeBSD, which has no demote byte, does), so that UCARP peers, which
    /// ignore the demote byte, see a slower master and take over with
    /// their `-P`. On by default; among our own nodes the demote byte
    /// decides before the interval, so the penalty changes nothing there.
    pub demote_skew: bool,
    /// How equal intervals are decided.
    pub tie_break: TieBreak,
    /// Counter our adverts start from, supplied by the caller: the wall
    /// clock's milliseconds × 2^16 (plus random low bits), so that counters
    /// grow across restarts (carp-io's `initial_counter()`). Our counters
    /// then never fall behind it plus the time since start (see
    /// [`crate::replay`]).
    pub initial_counter: u64,
    /// How long a step-down keeps us deaf before we behave as a fresh backup.
    pub step_down_hold: Duration,
    /// Which replays are refused ([`crate::replay`]); enforce by default.
    pub replay: crate::replay::ReplayMode,
}

/// A configuration the engine refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// vhid 0 is not a virtual host.
    #[error("vhid must be 1..=255, got 0")]
    InvalidVhid,
    /// An interval of zero would advertise without pause.
    #[error("advbase and advskew cannot both be 0 (the interval would be zero)")]
    ZeroInterval,
    /// A deadratio of 0 would declare every master dead at once.
    #[error("deadratio must be at least 1, got 0")]
    ZeroDeadratio,
    /// Our own address cannot be unspecified: it is our tie-break identity.
    #[error("source address must not be unspecified (0.0.0.0 or ::)")]
    UnspecifiedSource,
    /// A second (IPv6) source needs an IPv4 first one: dual-stack only.
    #[error("a second, IPv6 source address needs an IPv4 first one")]
    SecondSourceWithoutIpv4,
    /// advbase 255 with advskew 255 is the leave advertisement: every backup
    /// hearing it would take over at once, so no node may advertise it.
    #[error("advbase 255 with advskew 255 is reserved for the leave advertisement")]
    LeaveInterval,
}

impl Config {
    /// UCARP's defaults for everything but the identity: advbase 1, advskew
    /// 0, deadratio 3, no preemption, UCARP's tie-break.
    pub fn new(auth: VirtualHostAuth, src_addr: impl Into<IpAddr>, initial_counter: u64) -> Config {
        Config {
            auth,
            src_addr: src_addr.into(),
            src_addr_v6: None,
            advbase: 1,
            advskew: 0,
            deadratio: 3,
            preempt: false,
            neutral: false,
            ignore_link_state: false,
            demote: 0,
            demote_skew: true,
            tie_break: TieBreak::default(),
            initial_counter,
            step_down_hold: Duration::from_secs(3),
            replay: crate::replay::ReplayMode::default(),
        }
    }

    /// Sets advbase and advskew.
    pub fn with_interval(mut self, advbase: u8, advskew: u8) -> Config {
        self.advbase = advbase;
        self.advskew = advskew;
        self
    }

    /// Sets the deadratio.
    pub fn with_deadratio(mut self, deadratio: u32) -> Config {
        self.deadratio = deadratio;
        self
    }

    /// Sets preemption.
    pub fn with_preempt(mut self, preempt: bool) -> Config {
        self.preempt = preempt;
        self
    }

    /// Checks every rule; [`crate::Engine::new`] calls it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.auth.vhid() == 0 {
            return Err(ConfigError::InvalidVhid);
        }
        if self.advbase == 0 && self.advskew == 0 {
            return Err(ConfigError::ZeroInterval);
        }
        if (self.advbase, self.advskew)
            == (crate::engine::LEAVE_ADVBASE, crate::engine::LEAVE_ADVSKEW)
        {
            return Err(ConfigError::LeaveInterval);
        }
        if self.deadratio == 0 {
            return Err(ConfigError::ZeroDeadratio);
        }
        if self.src_addr.is_unspecified() || self.src_addr_v6.is_some_and(|a| a.is_unspecified()) {
            return Err(ConfigError::UnspecifiedSource);
        }
        if self.src_addr_v6.is_some() && !self.src_addr.is_ipv4() {
            return Err(ConfigError::SecondSourceWithoutIpv4);
        }
        Ok(())
    }

    /// Whether `addr` is one of our own sources.
    pub fn is_own(&self, addr: IpAddr) -> bool {
        addr == self.src_addr || Some(addr) == self.src_addr_v6.map(IpAddr::V6)
    }

    /// The virtual host id.
    pub fn vhid(&self) -> u8 {
        self.auth.vhid()
    }

    /// Our advertisement interval.
    pub fn interval(&self) -> Interval {
        Interval::new(self.advbase, self.advskew)
    }

    /// A master advertising less often than this would be declared dead
    /// between two of its own adverts by a backup configured like us, so a
    /// backup that hears one takes over at once (UCARP's "will time out
    /// anyway" rule). UCARP's threshold is `advbase × deadratio +
    /// advskew/256`, which at advbase 0 is a single skew fraction: every
    /// slower master would be preempted. Ours is the master-down time we
    /// would give a master advertising at our own interval.
    pub fn will_time_out_threshold(&self) -> Duration {
        self.master_down(self.interval())
    }

    /// How long a backup waits after the last advert of a master announcing
    /// `master_interval` before it takes over:
    ///
    /// `advskew/256 + deadratio × max(advbase, master_interval)`
    ///
    /// This is UCARP's `advbase × deadratio + advskew/256` whenever the
    /// master's interval is at most our advbase (the usual case), so timing
    /// matches UCARP there. Where UCARP's formula breaks, at advbase 0, it
    /// would wait a single skew fraction, less than one of a healthy master's
    /// intervals, and flap; here a backup always waits at least deadratio of
    /// the master's intervals. Backups hearing the same master still race in
    /// the order of their own advbase, then advskew.
    pub fn master_down(&self, master_interval: Interval) -> Duration {
        let base = Duration::from_secs(u64::from(self.advbase));
        let slowest = base.max(master_interval.as_duration());
        time::skew(self.advskew) + slowest * self.deadratio
    }
}
