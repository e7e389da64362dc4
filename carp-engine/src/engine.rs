//! One virtual host's election: the state machine and its timers.
//!
//! Inputs come in through `handle_*` methods with the current time; outputs
//! are drained with [`Engine::poll_transmit`], [`Engine::poll_event`] and
//! [`Engine::poll_timeout`]. Rules cite ../shared/carp-notes.md sections as
//! "notes §N" (UCARP 1.5.2's behaviour) and say where we differ.

use std::collections::VecDeque;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use carp_proto::AdvertRepr;

use crate::config::{Config, ConfigError};
use crate::election::{self, Claim, Verdict};
use crate::replay::{Candidate, Checked, Refusal, ReplayGuard, ReplayMode, LANE};
use crate::time::{Interval, Time};

/// Consecutive send failures after which we advertise a poor skew, and
/// consecutive successes after which we stop (notes §5).
const SEND_ERROR_LIMIT: u8 = 3;
/// The skew advertised while sends are failing, so that peers preempt us.
pub const DEGRADED_ADVSKEW: u8 = 240;
/// The highest skew the demotion penalty reaches (FreeBSD's
/// `DEMOTE_ADVSKEW`), below the leave advertisement's 255.
const DEMOTE_ADVSKEW_CAP: u16 = 240;
/// advbase and advskew of the advertisement a leaving master sends: every
/// CARP backup sees an interval it will time out on and takes over at once.
pub const LEAVE_ADVBASE: u8 = 255;
/// See [`LEAVE_ADVBASE`].
pub const LEAVE_ADVSKEW: u8 = 255;
/// Adverts after a takeover (or after hearing a weaker master) at which one
/// more gratuitous ARP goes out, for switches that missed the first.
const DELAYED_ARP_ADVERTS: u8 = 2;

/// The CARP states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Not taking part: before start, and after shutdown.
    Init,
    /// Listening; takes over when the master falls silent.
    Backup,
    /// Holding the virtual address and advertising.
    Master,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Init => "INIT",
            State::Backup => "BACKUP",
            State::Master => "MASTER",
        })
    }
}

/// Which user action a transition calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hook {
    /// Take the virtual address (UCARP's up script).
    Up,
    /// Release it (UCARP's down script).
    Down,
}

/// Why a transition happened. Every transition has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Start-up: INIT to BACKUP.
    Startup,
    /// No advert from a master for the master-down time.
    MasterDown {
        /// Time since the last accepted advert (or since we became backup).
        silent_for: Duration,
    },
    /// Preemption: the master advertises less often than we would.
    Preempt {
        /// The master we preempted.
        peer: IpAddr,
    },
    /// The master sent a leave advertisement (advbase 255, advskew 255).
    PeerLeft {
        /// The master that left.
        peer: IpAddr,
    },
    /// The master's interval is longer than our master-down time: it would
    /// time out anyway.
    PeerWillTimeOut {
        /// The master.
        peer: IpAddr,
        /// Its advertised interval.
        interval: Duration,
    },
    /// The master advertises a higher demotion counter than ours.
    PeerDemoted {
        /// The master.
        peer: IpAddr,
        /// Its demotion counter.
        demote: u8,
    },
    /// We heard a master that ranks above us.
    Yield {
        /// The better master.
        peer: IpAddr,
    },
    /// Our link lost carrier.
    LinkDown,
    /// The interface was deleted and created again: the address went with
    /// it, so it must be taken again.
    InterfaceReset,
    /// Told to step down (UCARP's SIGUSR2).
    StepDown,
    /// Told to shut down.
    Shutdown,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Startup => write!(f, "start-up"),
            Reason::MasterDown { silent_for } => {
                write!(
                    f,
                    "master down: silent for {:.3}s",
                    silent_for.as_secs_f64()
                )
            }
            Reason::Preempt { peer } => write!(f, "preempting {peer}, which advertises less often"),
            Reason::PeerLeft { peer } => write!(f, "{peer} left (leave advertisement)"),
            Reason::PeerWillTimeOut { peer, interval } => write!(
                f,
                "{peer} advertises every {:.3}s, longer than our master-down time",
                interval.as_secs_f64()
            ),
            Reason::PeerDemoted { peer, demote } => {
                write!(f, "{peer} is demoted ({demote})")
            }
            Reason::Yield { peer } => write!(f, "{peer} is a better master"),
            Reason::LinkDown => write!(f, "link down"),
            Reason::InterfaceReset => write!(f, "interface re-created; address lost"),
            Reason::StepDown => write!(f, "asked to step down"),
            Reason::Shutdown => write!(f, "shutdown"),
        }
    }
}

/// A state change, with its cause and the action it calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// When it happened.
    pub at: Time,
    /// State before.
    pub from: State,
    /// State after.
    pub to: State,
    /// Why.
    pub reason: Reason,
    /// The user action to run, if any.
    pub hook: Option<Hook>,
}

/// Something to put on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transmit {
    /// A signed advertisement, to the group from our address.
    Advert(AdvertRepr),
    /// A gratuitous ARP for the virtual address(es).
    GratuitousArp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    /// Master: next advertisement due.
    Advertise,
    /// Backup: the master is considered dead.
    MasterDown,
    /// After a step-down: we start listening again.
    StepDownHold,
}

const TIMERS: [Timer; 3] = [Timer::Advertise, Timer::MasterDown, Timer::StepDownHold];

#[derive(Debug, Clone, Default)]
struct Timers([Option<Time>; 3]);

impl Timers {
    fn get(&self, timer: Timer) -> Option<Time> {
        self.0[timer as usize]
    }
    fn set(&mut self, timer: Timer, at: Time) {
        self.0[timer as usize] = Some(at);
    }
    fn stop(&mut self, timer: Timer) {
        self.0[timer as usize] = None;
    }
    fn stop_all(&mut self) {
        self.0 = [None; 3];
    }
    fn next(&self) -> Option<Time> {
        self.0.iter().flatten().min().copied()
    }
}

/// Counts of what the engine did with its inputs, for status lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Adverts accepted and acted on.
    pub adverts_accepted: u64,
    /// Adverts ignored: not ours, while deaf (link down, step-down hold,
    /// stopped), or from our own address.
    pub adverts_ignored: u64,
    /// Adverts we queued for sending.
    pub adverts_sent: u64,
    /// Transitions.
    pub transitions: u64,
    /// Authenticated adverts refused as replays (see [`crate::replay`]).
    pub adverts_refused: u64,
    /// Adverts the replay rules would refuse, accepted in permissive mode.
    pub adverts_tolerated: u64,
}

/// What [`Engine::handle_advert`] did with an advert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdvertOutcome {
    /// Acted on.
    Accepted,
    /// Acted on although the replay rules refuse it (permissive mode).
    Tolerated(Refusal),
    /// Refused as a replay: no effect at all.
    Refused(Refusal),
    /// Not for us now (another vhid, our own, or we are deaf).
    Ignored,
}

/// The election state machine of one virtual host.
#[derive(Debug, Clone)]
pub struct Engine {
    config: Config,
    state: State,
    timers: Timers,
    /// The counter our next advert continues from: our last one (we never
    /// take a peer's, unlike UCARP; see `queue_advert`).
    send_counter: u64,
    /// The last accepted advert's source and counter, kept apart from
    /// ours: replay protection compares against what each peer sent.
    heard_counter: Option<(IpAddr, u64)>,
    /// Interval the current master announces (ours until one is heard).
    master_interval: Interval,
    /// When we last accepted an advert, or became a listening backup.
    last_heard: Time,
    /// Our demotion counter now: the configured one, changed at run time by
    /// [`Engine::handle_demote`] (lower is better; OpenBSD's demote byte).
    demote: u8,
    /// Dual stack: when we last accepted an IPv4 advert. While IPv4 adverts
    /// flow, ties are decided on them alone (see [`Engine::tie_address`]).
    last_ipv4_heard: Option<Time>,
    /// Adverts to send before the delayed gratuitous ARP.
    delayed_arp: Option<u8>,
    send_failures: u8,
    send_successes: u8,
    degraded: bool,
    link_up: bool,
    stopped: bool,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Transition>,
    stats: EngineStats,
    /// Accepted counters, for replay protection.
    replay: ReplayGuard,
    /// The master a backup follows: where a leave advert may come from.
    following: Option<IpAddr>,
    /// The counter of our last advert sent.
    last_sent: Option<u64>,
    /// When the engine started, and the latest time it was given: our
    /// counters never fall behind `initial_counter` + the milliseconds
    /// since start × 2^16.
    started: Time,
    now: Time,
}

impl Engine {
    /// Validates `config` and starts: INIT to BACKUP at once (down hook
    /// unless neutral), master-down timer armed (notes §5).
    pub fn new(config: Config, now: Time) -> Result<Engine, ConfigError> {
        config.validate()?;
        let mut engine = Engine {
            master_interval: config.interval(),
            send_counter: config.initial_counter,
            demote: config.demote,
            heard_counter: None,
            config,
            state: State::Init,
            timers: Timers::default(),
            last_heard: now,
            last_ipv4_heard: None,
            delayed_arp: None,
            send_failures: 0,
            send_successes: 0,
            degraded: false,
            link_up: true,
            stopped: false,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: EngineStats::default(),
            replay: ReplayGuard::default(),
            following: None,
            last_sent: None,
            started: now,
            now,
        };
        let hook = (!engine.config.neutral).then_some(Hook::Down);
        engine.transition(now, State::Backup, Reason::Startup, hook);
        engine.listen_as_fresh_backup(now);
        Ok(engine)
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The counter our next advert continues from: our last one (or the
    /// start counter).
    pub fn send_counter(&self) -> u64 {
        self.send_counter
    }

    /// The source and counter of the last advert accepted, if any.
    pub fn heard_counter(&self) -> Option<(IpAddr, u64)> {
        self.heard_counter
    }

    /// Our demotion counter now.
    pub fn demote(&self) -> u8 {
        self.demote
    }

    /// The demotion we advertise and rank by: ours, plus one while a
    /// master's sends keep failing (OpenBSD demotes on send errors too; the
    /// skew 240 UCARP uses for the same is kept for UCARP peers). Only as
    /// master: a backup sends nothing, so nothing would ever clear it, and
    /// it would keep a backup from taking over from a master demoted by
    /// one.
    pub fn advertised_demote(&self) -> u8 {
        let failing = self.degraded && self.state == State::Master;
        self.demote.saturating_add(u8::from(failing))
    }

    /// Sets our demotion counter (a tracked service failed or recovered,
    /// an operator demoted us). A master advertises the new value at once,
    /// as OpenBSD does, so that a less demoted backup takes over within
    /// one advert's latency rather than at the next interval; a backup
    /// simply advertises it when it next becomes master and ranks by it.
    pub fn handle_demote(&mut self, now: Time, demote: u8) {
        self.now = self.now.max(now);
        if demote == self.demote || self.stopped {
            return;
        }
        self.demote = demote;
        if self.state == State::Master {
            self.send_advert();
            self.timers
                .set(Timer::Advertise, now + self.config.interval().as_duration());
        }
    }

    /// Whether repeated send failures make us advertise a poor skew.
    pub fn is_degraded(&self) -> bool {
        self.degraded
    }

    /// What the engine has done so far.
    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// How long we wait, as a backup, for the master we currently follow.
    pub fn master_down_time(&self) -> Duration {
        self.config.master_down(self.master_interval)
    }

    /// Next thing to send, in order.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Whether [`Engine::poll_event`] or [`Engine::poll_transmit`] has
    /// something: a runtime with many engines asks this first, instead of
    /// visiting every one after each event.
    pub fn has_output(&self) -> bool {
        !self.events.is_empty() || !self.transmits.is_empty()
    }

    /// Next transition, in order.
    pub fn poll_event(&mut self) -> Option<Transition> {
        self.events.pop_front()
    }

    /// When [`Engine::handle_timeout`] must next be called; `None` while
    /// nothing is scheduled (stopped, link down, or master-down disabled).
    pub fn poll_timeout(&self) -> Option<Time> {
        self.timers.next()
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Time) {
        self.now = self.now.max(now);
        for timer in TIMERS {
            match self.timers.get(timer) {
                Some(due) if due <= now => self.fire(timer, due, now),
                _ => {}
            }
        }
    }

    fn fire(&mut self, timer: Timer, due: Time, now: Time) {
        self.timers.stop(timer);
        match timer {
            Timer::Advertise => {
                self.send_advert();
                // Keep the cadence exact: schedule from the deadline, unless
                // we were woken so late that we would fall behind.
                let interval = self.config.interval().as_duration();
                let next = if due + interval > now {
                    due + interval
                } else {
                    now + interval
                };
                self.timers.set(Timer::Advertise, next);
            }
            Timer::MasterDown => {
                let silent_for = now - self.last_heard;
                self.take_over(now, Reason::MasterDown { silent_for });
            }
            Timer::StepDownHold => self.listen_as_fresh_backup(now),
        }
    }

    /// An advertisement that the I/O layer has parsed and authenticated,
    /// received at `now` from `src` (notes §5). Replays are refused first
    /// (see [`crate::replay`]): a refused advert has no effect at all.
    pub fn handle_advert(&mut self, now: Time, src: IpAddr, advert: &AdvertRepr) -> AdvertOutcome {
        self.now = self.now.max(now);
        if !self.is_listening() || advert.vhid != self.config.vhid() || self.config.is_own(src) {
            self.stats.adverts_ignored += 1;
            return AdvertOutcome::Ignored;
        }
        let outcome = match self.check_replay(now, src, advert) {
            Ok(outcome) => outcome,
            Err(refusal) => {
                self.stats.adverts_refused += 1;
                return AdvertOutcome::Refused(refusal);
            }
        };
        self.stats.adverts_accepted += 1;
        if src.is_ipv4() {
            self.last_ipv4_heard = Some(now);
        }
        // UCARP continues from the counter of the last advert it accepted;
        // we do not: our counters keep their lane and follow the clock
        // (see `queue_advert`), which keeps them growing across restarts
        // and far from wrapping, and peers judge each lane by itself.
        self.heard_counter = Some((src, advert.counter));
        let theirs = Claim {
            demote: advert.demote,
            interval: Interval::new(advert.advbase, advert.advskew),
            addr: src,
        };
        match self.state {
            State::Master => self.master_hears(now, theirs),
            State::Backup => self.backup_hears(now, theirs),
            State::Init => {}
        }
        outcome
    }

    /// The replay rules of [`Config::replay`]: `Err` to refuse, else what
    /// to report. An advert acted on is remembered.
    fn check_replay(
        &mut self,
        now: Time,
        src: IpAddr,
        advert: &AdvertRepr,
    ) -> Result<AdvertOutcome, Refusal> {
        let mode = self.config.replay;
        if mode == ReplayMode::Off {
            return Ok(AdvertOutcome::Accepted);
        }
        let candidate = Candidate {
            src,
            counter: advert.counter,
            leave: (advert.advbase, advert.advskew) == (LEAVE_ADVBASE, LEAVE_ADVSKEW),
        };
        let stale_below = (mode == ReplayMode::Strict).then(|| {
            let slack = (crate::replay::STRICT_SLACK.as_millis() as u64) << 16;
            self.config.initial_counter.saturating_sub(slack)
        });
        let backup = self.state == State::Backup;
        let checked = self.replay.check(
            now,
            candidate,
            backup,
            self.following,
            self.last_sent,
            stale_below,
        );
        let (checked, outcome) = match checked {
            Ok(checked) => (checked, AdvertOutcome::Accepted),
            Err(refusal) if mode == ReplayMode::Permissive => {
                self.stats.adverts_tolerated += 1;
                (Checked::Fresh, AdvertOutcome::Tolerated(refusal))
            }
            Err(refusal) => return Err(refusal),
        };
        self.replay.accept(now, candidate, checked);
        Ok(outcome)
    }
    fn master_hears(&mut self, now: Time, theirs: Claim) {
        let ours = Claim {
            addr: self.tie_address(now, theirs.addr),
            ..self.our_claim()
        };
        match self.verdict(true, &ours, &theirs) {
            Verdict::Yield => {
                // Send one more advert so the peer hears us, then yield.
                self.send_advert();
                self.transition(
                    now,
                    State::Backup,
                    Reason::Yield { peer: theirs.addr },
                    Some(Hook::Down),
                );
                self.timers.stop(Timer::Advertise);
                self.follow(now, theirs.interval);
            }
            _ => {
                // A weaker master: re-announce the address now and a
                // little later (it yields when it hears our next advert).
                self.transmits.push_back(Transmit::GratuitousArp);
                self.delayed_arp = Some(DELAYED_ARP_ADVERTS);
            }
        }
    }

    fn backup_hears(&mut self, now: Time, theirs: Claim) {
        let peer = theirs.addr;
        match self.verdict(false, &self.our_claim(), &theirs) {
            Verdict::TakeOverDemoted => self.take_over(
                now,
                Reason::PeerDemoted {
                    peer,
                    demote: theirs.demote,
                },
            ),
            Verdict::TakeOverPreempt => self.take_over(now, Reason::Preempt { peer }),
            Verdict::TakeOverLeft => self.take_over(now, Reason::PeerLeft { peer }),
            Verdict::TakeOverWillTimeOut => {
                let interval = theirs.interval.as_duration();
                self.take_over(now, Reason::PeerWillTimeOut { peer, interval });
            }
            _ => self.follow(now, theirs.interval),
        }
    }

    fn verdict(&self, master: bool, ours: &Claim, theirs: &Claim) -> Verdict {
        election::verdict(
            master,
            ours,
            theirs,
            self.config.tie_break,
            self.config.preempt,
            self.config.will_time_out_threshold(),
        )
    }

    /// Re-arms the master-down timer for a master announcing `interval`,
    /// heard at `now`: exact, measured from this advert.
    fn follow(&mut self, now: Time, interval: Interval) {
        self.following = self.heard_counter.map(|(src, _)| src);
        self.master_interval = interval;
        self.last_heard = now;
        self.timers
            .set(Timer::MasterDown, now + self.master_down_time());
    }

    fn listen_as_fresh_backup(&mut self, now: Time) {
        self.timers.stop(Timer::StepDownHold);
        self.follow(now, self.config.interval());
        self.following = None;
    }

    fn take_over(&mut self, now: Time, reason: Reason) {
        self.transition(now, State::Master, reason, Some(Hook::Up));
        self.timers.stop(Timer::MasterDown);
        self.transmits.push_back(Transmit::GratuitousArp);
        self.send_advert();
        self.delayed_arp = Some(DELAYED_ARP_ADVERTS);
        self.timers
            .set(Timer::Advertise, now + self.config.interval().as_duration());
    }

    /// Our address in a tie with an advert from `peer`. A single-family
    /// virtual host has one. A dual-stack one hears each peer on both
    /// families and must pick the pair both sides compare: while IPv4
    /// adverts arrive (one within the master-down time), ties are decided
    /// by the IPv4 pair alone, and a tie heard over IPv6 is compared with
    /// our IPv4 address, which every IPv6 address ranks after (so it never
    /// makes us yield); when only IPv6 gets through, the IPv6 pair decides.
    /// Deciding per family always would let a pair whose IPv4 and IPv6
    /// orders disagree both yield; deciding by IPv4 always would leave two
    /// masters where IPv4 CARP is blocked.
    pub fn tie_address(&self, now: Time, peer: IpAddr) -> IpAddr {
        match (peer, self.config.src_addr_v6) {
            (IpAddr::V6(_), Some(v6)) => {
                let ipv4_flows = self
                    .last_ipv4_heard
                    .is_some_and(|at| now - at <= self.master_down_time());
                if ipv4_flows {
                    self.config.src_addr
                } else {
                    IpAddr::V6(v6)
                }
            }
            _ => self.config.src_addr,
        }
    }

    fn our_claim(&self) -> Claim {
        Claim {
            demote: self.advertised_demote(),
            interval: Interval::new(self.config.advbase, self.advertised_skew()),
            addr: self.config.src_addr,
        }
    }

    /// The skew we advertise now: ours, raised by the demotion penalty
    /// ([`Config::demote_skew`]) and to 240 while sends fail.
    pub fn advertised_skew(&self) -> u8 {
        let mut skew = self.config.advskew;
        let demote = self.advertised_demote();
        if self.config.demote_skew && demote > 0 {
            let penalised = (u16::from(skew) + u16::from(demote)).min(DEMOTE_ADVSKEW_CAP);
            skew = skew.max(penalised as u8);
        }
        if self.degraded {
            skew = skew.max(DEGRADED_ADVSKEW);
        }
        skew
    }

    fn send_advert(&mut self) {
        let (advbase, advskew) = (self.config.advbase, self.advertised_skew());
        self.queue_advert(advbase, advskew);
        if let Some(left) = self.delayed_arp {
            let left = left.saturating_sub(1);
            if left == 0 {
                self.transmits.push_back(Transmit::GratuitousArp);
                self.delayed_arp = None;
            } else {
                self.delayed_arp = Some(left);
            }
        }
    }

    /// Our counters step by 2^16 and keep the low 16 bits of the start
    /// counter (random, from the caller): this run's lane, by which peers
    /// refuse replays of its older adverts (see [`crate::replay`]).
    fn queue_advert(&mut self, advbase: u8, advskew: u8) {
        self.send_counter = self
            .send_counter
            .wrapping_add(LANE)
            .max(self.counter_floor());
        self.last_sent = Some(self.send_counter);
        self.stats.adverts_sent += 1;
        self.transmits.push_back(Transmit::Advert(AdvertRepr {
            vhid: self.config.vhid(),
            advbase,
            advskew,
            demote: self.advertised_demote(),
            counter: self.send_counter,
            digest: self.config.auth.sign(self.send_counter),
        }));
    }

    /// What our counter never falls behind: the start counter plus the
    /// milliseconds since start × 2^16. With a start counter from the wall
    /// clock (as carp-io gives), our counters keep up with it, so a restart
    /// continues above every counter of the previous run. 0 once that
    /// would overflow (a random start counter near the top).
    fn counter_floor(&self) -> u64 {
        let elapsed = self.now.saturating_since(self.started).as_millis() as u64;
        self.config
            .initial_counter
            .checked_add(elapsed << 16)
            .unwrap_or(0)
    }

    fn transition(&mut self, now: Time, to: State, reason: Reason, hook: Option<Hook>) {
        self.now = self.now.max(now);
        if to != State::Backup {
            self.following = None;
        }
        self.stats.transitions += 1;
        self.events.push_back(Transition {
            at: now,
            from: self.state,
            to,
            reason,
            hook,
        });
        self.state = to;
    }

    fn is_listening(&self) -> bool {
        !self.stopped && self.link_up && self.timers.get(Timer::StepDownHold).is_none()
    }

    /// Whether `transmit` was handed over to the network. After three
    /// advertisements in a row failed we advertise skew 240 so that peers
    /// preempt us, until three in a row succeed (notes §5). Only adverts
    /// count: a failed gratuitous ARP says nothing about whether peers hear
    /// us, and must not make us advertise a poor skew.
    pub fn handle_send_result(&mut self, _now: Time, transmit: &Transmit, sent: bool) {
        if !matches!(transmit, Transmit::Advert(_)) {
            return;
        }
        if sent {
            self.send_successes = self.send_successes.saturating_add(1);
            if !self.degraded || self.send_successes >= SEND_ERROR_LIMIT {
                self.degraded = false;
                self.send_failures = 0;
            }
        } else {
            self.send_successes = 0;
            self.send_failures = self.send_failures.saturating_add(1);
            if self.send_failures >= SEND_ERROR_LIMIT {
                self.degraded = true;
            }
        }
    }

    /// Carrier lost or back. Lost: a master goes BACKUP (down hook) and the
    /// node falls silent and deaf; back: it listens as a fresh backup. Unlike
    /// UCARP there is no 10 s sleep: the caller reports changes as they come.
    /// Ignored with `ignore_link_state`.
    pub fn handle_link_change(&mut self, now: Time, up: bool) {
        self.now = self.now.max(now);
        if self.config.ignore_link_state || self.stopped || up == self.link_up {
            return;
        }
        self.link_up = up;
        if up {
            self.listen_as_fresh_backup(now);
            return;
        }
        if self.state == State::Master {
            self.transition(now, State::Backup, Reason::LinkDown, Some(Hook::Down));
        }
        self.timers.stop_all();
        self.delayed_arp = None;
    }

    /// The interface was deleted and created again, so the virtual address
    /// is gone from it even if link state is ignored. A master goes BACKUP
    /// (down hook) and listens as a fresh backup: unless a peer takes over
    /// first, it takes the address again (up hook, gratuitous ARP) after the
    /// master-down time. A backup only listens afresh.
    pub fn handle_interface_reset(&mut self, now: Time) {
        self.now = self.now.max(now);
        if self.stopped {
            return;
        }
        if self.state == State::Master {
            self.transition(now, State::Backup, Reason::InterfaceReset, Some(Hook::Down));
            self.timers.stop(Timer::Advertise);
            self.delayed_arp = None;
        }
        if self.link_up {
            self.listen_as_fresh_backup(now);
        }
    }

    /// UCARP's SIGUSR2: a master goes BACKUP (down hook), stays deaf for the
    /// hold time, then listens as a fresh backup. Returns whether it stepped
    /// down (a backup has nothing to step down from).
    pub fn step_down(&mut self, now: Time) -> bool {
        self.now = self.now.max(now);
        if self.state != State::Master || self.stopped {
            return false;
        }
        self.transition(now, State::Backup, Reason::StepDown, Some(Hook::Down));
        self.timers.stop_all();
        self.delayed_arp = None;
        self.timers
            .set(Timer::StepDownHold, now + self.config.step_down_hold);
        true
    }

    /// Leaves the election for good. A master first sends one advertisement
    /// with advbase 255 / advskew 255 so every backup, UCARP's included,
    /// takes over at once instead of waiting out the master-down time; the
    /// down hook runs only if `run_down_hook` (UCARP's `--shutdown`).
    pub fn shutdown(&mut self, now: Time, run_down_hook: bool) {
        self.now = self.now.max(now);
        if self.stopped {
            return;
        }
        let hook = match self.state {
            State::Master => {
                self.queue_advert(LEAVE_ADVBASE, LEAVE_ADVSKEW);
                run_down_hook.then_some(Hook::Down)
            }
            _ => None,
        };
        self.transition(now, State::Init, Reason::Shutdown, hook);
        self.timers.stop_all();
        self.delayed_arp = None;
        self.stopped = true;
    }
}
