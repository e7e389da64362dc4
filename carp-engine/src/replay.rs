//! Replay protection: which authenticated adverts are old news.
//!
//! CARP's 64-bit counter is covered by the digest, but UCARP never checks
//! it, and a UCARP master that has never heard a peer draws a fresh random
//! counter for every advert (notes §2), so "the counter must grow" would
//! refuse UCARP masters. The rules, per virtual host (see
//! docs/PROTOCOL.md#replay-protection):
//!
//! 1. **Repeated**: a counter accepted before (any source, the last
//!    [`WINDOW`] accepted) is refused. Every implementation's adverts are
//!    distinct (ours count up, UCARP draws or counts), so only a replay
//!    repeats one. The one exception is a dual-stack sender's copy of the
//!    same advert on its other address family, accepted once within
//!    [`TWIN_WINDOW`].
//! 2. **Old**: our counters step by 2^16 and keep the 16 random low bits
//!    of their start counter: a *lane*, one per run of a node. Once two
//!    adverts of a lane have been accepted a small step apart (a run of
//!    ours), a counter of that lane not above the lane's highest is
//!    refused: every earlier advert of that run, with no memory per
//!    advert, whatever source address a replayer writes on it. A node that
//!    restarts draws a new lane, so it is never judged by its earlier run's
//!    counters (no lock-out, whatever its clock says), and a sender that
//!    counts by 1 (UCARP continuing a peer's counter) never forms a lane
//!    run: only rule 1 applies to it.
//! 3. **Leave**: a leave advertisement is accepted only from the master a
//!    backup follows (either address of a dual-stack one), with a counter
//!    above the last one accepted from it.
//! 4. **Own**: a counter equal to the last one we sent (OpenBSD's loop
//!    check; a replay of our own advert).
//! 5. **Stale** (`strict` mode only, for clusters of ucarp-rs nodes): our
//!    counters start from the wall clock (milliseconds × 2^16) and never
//!    fall behind it, so a counter from before this node started (minus
//!    [`STRICT_SLACK`] for clock differences) is a replay captured earlier.
//!    UCARP's random counters fail that test about once in 160 adverts,
//!    so it is not on by default.
//!
//! Our counters: `max(last + 2^16, start counter + elapsed ms × 2^16)`,
//! never adopted from a peer: they stay far below 2^64 (no wrap) and grow
//! across restarts.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::Duration;

use crate::time::Time;

/// Accepted counters remembered for rule 1.
pub const WINDOW: usize = 1024;
/// Largest step between two accepted counters of a lane that still makes
/// a run (rule 2): about 4.6 hours of our millisecond-based growth; two
/// random 64-bit counters of one lane are that close once in 2^24.
pub const STEP: u64 = 1 << 40;
/// A lane: the low 16 bits of a counter.
pub const LANE: u64 = 1 << 16;
/// Lanes remembered for rule 2 (most recently used).
const LANES: usize = 16;
/// How long after an advert its copy on the other address family is
/// accepted (dual-stack senders send each advert on both).
pub const TWIN_WINDOW: Duration = Duration::from_secs(1);
/// Rule 5's allowance for clocks that disagree.
pub const STRICT_SLACK: Duration = Duration::from_secs(60);
/// Sources remembered for rule 3 (the last counter of each).
const SOURCES: usize = 16;

/// How strictly replays are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReplayMode {
    /// Rules 1–4: safe beside UCARP peers. The default.
    #[default]
    Enforce,
    /// Rules 1–5: every peer is ucarp-rs (with clocks within a minute).
    Strict,
    /// Evaluate, count and report, but accept: for rolling upgrades.
    Permissive,
    /// No checks (UCARP's behaviour).
    Off,
}

/// Why an authenticated advert is refused as a replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its counter was accepted before.
    Repeated,
    /// Its counter is not above its lane's run accepted so far.
    Old,
    /// A leave advert not from the master we follow.
    LeaveNotFromMaster,
    /// A leave advert not newer than the last advert of that master.
    LeaveNotNewer,
    /// Our own last counter (a loop, or a replay of ours).
    OwnCounter,
    /// (strict) From before this node started.
    Stale,
}

impl Refusal {
    /// The label counters and logs use.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Repeated => "replayed",
            Refusal::Old => "old_counter",
            Refusal::LeaveNotFromMaster => "leave_not_from_master",
            Refusal::LeaveNotNewer => "old_leave",
            Refusal::OwnCounter => "own_counter",
            Refusal::Stale => "stale_counter",
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refusal::Repeated => "a replay (its counter was accepted before)",
            Refusal::Old => {
                "a replay (its counter is older than its sender's adverts accepted since)"
            }
            Refusal::LeaveNotFromMaster => "a leave advert not from the master we follow",
            Refusal::LeaveNotNewer => "a leave advert older than that master's last advert",
            Refusal::OwnCounter => "our own last counter (a loop or a replay of ours)",
            Refusal::Stale => "a replay (its counter is from before this node started)",
        })
    }
}

/// What the guard knows of the advert in front of it.
#[derive(Debug, Clone, Copy)]
pub struct Candidate {
    /// Its source.
    pub src: IpAddr,
    /// Its counter.
    pub counter: u64,
    /// A leave advertisement.
    pub leave: bool,
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    counter: u64,
    ipv6: bool,
    at: Time,
    /// Its other-family copy has been accepted.
    twin_taken: bool,
}

/// The memory of one virtual host's accepted counters. Bounded: at most
/// [`WINDOW`] counters and [`SOURCES`] sources.
#[derive(Debug, Clone, Default)]
pub struct ReplayGuard {
    window: VecDeque<Seen>,
    /// Lanes heard, least recently used first.
    lanes: VecDeque<Lane>,
    sources: VecDeque<(IpAddr, u64)>,
}

/// One lane's accepted counters.
#[derive(Debug, Clone, Copy)]
struct Lane {
    lane: u64,
    /// The highest counter accepted in it.
    high: u64,
    /// Two counters a small step apart were accepted: a run of ours.
    run: bool,
}

/// What [`ReplayGuard::check`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    /// New: act on it.
    Fresh,
    /// The other-family copy of an advert just accepted: nothing new.
    Twin,
}

impl ReplayGuard {
    /// Checks an authenticated advert. `following`: the master a backup
    /// follows (`None` for a master, or a backup that has heard nobody);
    /// `backup`: whether we are backup; `own_last`: the last counter we
    /// sent; `stale_below`: rule 5's bound (strict mode), if any. Nothing
    /// is remembered until [`ReplayGuard::accept`].
    pub fn check(
        &self,
        now: Time,
        advert: Candidate,
        backup: bool,
        following: Option<IpAddr>,
        own_last: Option<u64>,
        stale_below: Option<u64>,
    ) -> Result<Checked, Refusal> {
        if own_last == Some(advert.counter) {
            return Err(Refusal::OwnCounter);
        }
        if let Some(seen) = self.window.iter().find(|s| s.counter == advert.counter) {
            let twin = seen.ipv6 != advert.src.is_ipv6()
                && !seen.twin_taken
                && now.saturating_since(seen.at) <= TWIN_WINDOW;
            return if twin && !advert.leave {
                Ok(Checked::Twin)
            } else {
                Err(Refusal::Repeated)
            };
        }
        if self
            .lane(advert.counter)
            .is_some_and(|lane| lane.run && advert.counter <= lane.high)
        {
            return Err(Refusal::Old);
        }
        if stale_below.is_some_and(|bound| advert.counter < bound) {
            return Err(Refusal::Stale);
        }
        if advert.leave && backup {
            // The master followed, or its other family's address (whose
            // last advert was the twin of the followed one's).
            let last = self.last_from(advert.src);
            let followed = following
                .is_some_and(|f| f == advert.src || (last.is_some() && self.last_from(f) == last));
            if !followed {
                return Err(Refusal::LeaveNotFromMaster);
            }
            match last {
                Some(last) if advert.counter > last => {}
                _ => return Err(Refusal::LeaveNotNewer),
            }
        }
        Ok(Checked::Fresh)
    }

    /// Remembers an advert acted on (fresh or twin).
    pub fn accept(&mut self, now: Time, advert: Candidate, checked: Checked) {
        if checked == Checked::Twin {
            if let Some(seen) = self.window.iter_mut().find(|s| s.counter == advert.counter) {
                seen.twin_taken = true;
            }
            self.remember_source(advert);
            return;
        }
        if self.window.len() == WINDOW {
            self.window.pop_front();
        }
        self.window.push_back(Seen {
            counter: advert.counter,
            ipv6: advert.src.is_ipv6(),
            at: now,
            twin_taken: false,
        });
        let lane = advert.counter & (LANE - 1);
        let known = self
            .lanes
            .iter()
            .position(|l| l.lane == lane)
            .and_then(|i| self.lanes.remove(i));
        let step = known.map(|l| advert.counter.wrapping_sub(l.high));
        let run = step.is_some_and(|s| s > 0 && s <= STEP);
        // Otherwise the lane starts over here: a first counter, a jump, or
        // a random counter that fell in it. (A run's own older counters
        // never get here: rule 2 refused them.)
        if self.lanes.len() == LANES {
            self.lanes.pop_front();
        }
        self.lanes.push_back(Lane {
            lane,
            high: advert.counter,
            run,
        });
        self.remember_source(advert);
    }

    fn remember_source(&mut self, advert: Candidate) {
        self.sources.retain(|(src, _)| *src != advert.src);
        if self.sources.len() == SOURCES {
            self.sources.pop_front();
        }
        self.sources.push_back((advert.src, advert.counter));
    }

    fn lane(&self, counter: u64) -> Option<&Lane> {
        let lane = counter & (LANE - 1);
        self.lanes.iter().find(|l| l.lane == lane)
    }

    /// Whether a run of ours is known in `counter`'s lane (rule 2 applies
    /// to it).
    pub fn lane_runs(&self, counter: u64) -> bool {
        self.lane(counter).is_some_and(|l| l.run)
    }

    /// The last counter accepted from `src`.
    pub fn last_from(&self, src: IpAddr) -> Option<u64> {
        self.sources
            .iter()
            .find(|(s, _)| *s == src)
            .map(|(_, counter)| *counter)
    }

    /// How many counters are remembered (for tests: bounded).
    pub fn remembered(&self) -> usize {
        self.window.len()
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

    fn at(ms: u64) -> Time {
        Time::ZERO + Duration::from_millis(ms)
    }

    fn advert(src: IpAddr, counter: u64) -> Candidate {
        Candidate {
            src,
            counter,
            leave: false,
        }
    }

    fn take(guard: &mut ReplayGuard, now: Time, a: Candidate) -> Result<Checked, Refusal> {
        let checked = guard.check(now, a, true, Some(A), None, None)?;
        guard.accept(now, a, checked);
        Ok(checked)
    }

    #[test]
    fn a_repeated_counter_is_refused_from_any_source() {
        let mut g = ReplayGuard::default();
        // Random counters (a lone UCARP master): no run, only the window.
        for c in [9_000_000_000_000_000_000u64, 17, 4_000_000_000_000_000_000] {
            assert_eq!(take(&mut g, at(0), advert(A, c)), Ok(Checked::Fresh));
            assert!(!g.lane_runs(c));
        }
        assert_eq!(take(&mut g, at(5), advert(A, 17)), Err(Refusal::Repeated));
        assert_eq!(take(&mut g, at(5), advert(B, 17)), Err(Refusal::Repeated));
    }

    /// Our counters: lane 0x1234, 2^16 × ms.
    fn ours(ms: u64) -> u64 {
        (ms << 16) | 0x1234
    }

    #[test]
    fn once_a_lane_runs_its_older_counters_are_refused_whatever_their_source() {
        let mut g = ReplayGuard::default();
        for ms in 100..110 {
            take(&mut g, at(ms), advert(A, ours(ms * 1000))).unwrap();
        }
        assert!(g.lane_runs(ours(0)));
        // Older than the window's reach, from a forged source: still old.
        assert_eq!(
            take(&mut g, at(200), advert(B, ours(50_000))),
            Err(Refusal::Old)
        );
        assert_eq!(
            take(&mut g, at(200), advert(A, ours(109_000))),
            Err(Refusal::Repeated)
        );
        assert_eq!(
            take(&mut g, at(200), advert(A, ours(110_000))),
            Ok(Checked::Fresh)
        );
    }

    #[test]
    fn another_lane_is_judged_by_itself() {
        let mut g = ReplayGuard::default();
        for ms in 100..110 {
            take(&mut g, at(ms), advert(A, ours(ms * 1000))).unwrap();
        }
        // A restarted node (new lane) with its clock an hour back, and a
        // UCARP node counting by 1 from a lower counter: not refused.
        let restarted = (1_000u64 << 16) | 0x0777;
        assert_eq!(
            take(&mut g, at(300), advert(B, restarted)),
            Ok(Checked::Fresh)
        );
        for c in ours(105_000) + 1..ours(105_000) + 5 {
            assert_eq!(take(&mut g, at(301), advert(B, c)), Ok(Checked::Fresh));
            assert!(!g.lane_runs(c));
        }
    }

    #[test]
    fn random_counters_never_make_a_lane_run() {
        let mut g = ReplayGuard::default();
        let mut x = 0x1234_5678_9abc_def0u64;
        for _ in 0..100_000 {
            // xorshift: random 64-bit counters, as a lone UCARP master's.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            take(&mut g, at(0), advert(A, x)).unwrap();
            assert!(!g.lane_runs(x));
        }
    }

    #[test]
    fn the_dual_stack_copy_is_taken_once_within_a_second() {
        let mut g = ReplayGuard::default();
        let v6: IpAddr = "fe80::1".parse().unwrap();
        assert_eq!(take(&mut g, at(0), advert(A, 5)), Ok(Checked::Fresh));
        assert_eq!(take(&mut g, at(1), advert(v6, 5)), Ok(Checked::Twin));
        assert_eq!(take(&mut g, at(2), advert(v6, 5)), Err(Refusal::Repeated));
        assert_eq!(take(&mut g, at(3), advert(A, 6)), Ok(Checked::Fresh));
        assert_eq!(
            take(&mut g, at(1_500), advert(v6, 6)),
            Err(Refusal::Repeated)
        );
    }

    #[test]
    fn a_leave_only_from_the_master_followed_and_newer_than_its_last() {
        let mut g = ReplayGuard::default();
        take(&mut g, at(0), advert(A, 1 << 30)).unwrap();
        let leave = |src, counter| Candidate {
            src,
            counter,
            leave: true,
        };
        let check = |g: &ReplayGuard, c| g.check(at(1), c, true, Some(A), None, None);
        assert_eq!(
            check(&g, leave(B, 5 << 30)),
            Err(Refusal::LeaveNotFromMaster)
        );
        assert_eq!(check(&g, leave(A, 1)), Err(Refusal::LeaveNotNewer));
        assert_eq!(check(&g, leave(A, 1 << 30)), Err(Refusal::Repeated));
        assert_eq!(check(&g, leave(A, 2 << 30)), Ok(Checked::Fresh));
        // A backup that has heard no master takes no leave.
        let fresh = ReplayGuard::default();
        assert_eq!(
            fresh.check(at(1), leave(A, 9), true, None, None, None),
            Err(Refusal::LeaveNotFromMaster)
        );
    }

    #[test]
    fn our_own_counter_and_strict_staleness() {
        let g = ReplayGuard::default();
        assert_eq!(
            g.check(at(0), advert(A, 77), true, None, Some(77), None),
            Err(Refusal::OwnCounter)
        );
        assert_eq!(
            g.check(at(0), advert(A, 76), true, None, Some(77), Some(100)),
            Err(Refusal::Stale)
        );
        assert_eq!(
            g.check(at(0), advert(A, 100), true, None, Some(77), Some(100)),
            Ok(Checked::Fresh)
        );
    }

    #[test]
    fn memory_is_bounded() {
        let mut g = ReplayGuard::default();
        for c in 0..(3 * WINDOW as u64) {
            let src = IpAddr::V4(Ipv4Addr::from(c as u32));
            take(
                &mut g,
                at(0),
                advert(src, c.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            )
            .unwrap();
        }
        assert_eq!(g.remembered(), WINDOW);
        assert!(g.sources.len() <= SOURCES);
    }
}
