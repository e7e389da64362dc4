//! Replay protection: which authenticated adverts are old news.
//!
//! CARP's 64-bit counter is covered by the digest, but UCARP never checks
//! it, and a UCARP master that has never heard a peer draws a fresh random
//! counter for every advert (notes §2), so "the counter must grow" would
//! refuse UCARP masters. The rules, per virtual host (see
//! docs/PROTOCOL.md#replay-protection):
//!
//! 1. **Repeated**: a counter accepted before (any source, the last
//!    [`WINDOW`] accepted) is refused. Any implementation's adverts are
//!    distinct (ours count up, UCARP draws or counts), so only a replay
//!    repeats one. The one exception is a dual-stack sender's copy of the
//!    same advert on its other address family, accepted once within
//!    [`TWIN_WINDOW`].
//! 2. **Old**: once the adverts accepted count up (two steps in a row of at
//!    most [`STEP`]: ours, and UCARP continuing from a peer's counter), a
//!    counter not above the highest of that run is refused. That covers
//!    every earlier advert of the run, with no memory per advert, whatever
//!    source address a replayer writes on it.
//! 3. **Leave**: a leave advertisement is accepted only from the master a
//!    backup follows, with a counter above the last one accepted from it.
//! 4. **Loop**: a counter equal to the last one we sent (OpenBSD's check).
//! 5. **Stale** (`strict` mode only, for clusters of ucarp-rs nodes): our
//!    counters start from the wall clock (milliseconds × 2^16) and never
//!    fall behind it, so a counter from before this node started (minus
//!    [`STRICT_SLACK`] for clock differences) is a replay captured earlier.
//!    UCARP's random counters fail that test about once in 160 adverts,
//!    so it is not on by default.
//!
//! Counters of ours: `max(last + 1, start counter + elapsed ms × 2^16)`,
//! and never below a counter accepted from a peer (UCARP continues from a
//! peer's counter too). So they grow across restarts, and a node whose
//! counters a peer refuses as old (its clock went back) catches up as soon
//! as it hears that peer: see `Engine` and the simulator's replay tests.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::Duration;

use crate::time::Time;

/// Accepted counters remembered for rule 1.
pub const WINDOW: usize = 1024;
/// Largest step between two accepted counters that still counts as
/// counting up (rule 2): about 4.6 hours of our millisecond-based growth;
/// a random 64-bit counter lands in it once in 16 million.
pub const STEP: u64 = 1 << 40;
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
    /// Its counter is not above the counting-up run accepted so far.
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
            Refusal::Old => "a replay (its counter is older than the adverts accepted since)",
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
    /// The last accepted counter, and how many steps in a row counted up.
    last: Option<u64>,
    run: u8,
    /// The highest counter of the current counting-up run.
    high: u64,
    sources: VecDeque<(IpAddr, u64)>,
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
        if self.counting_up() && advert.counter <= self.high {
            return Err(Refusal::Old);
        }
        if stale_below.is_some_and(|bound| advert.counter < bound) {
            return Err(Refusal::Stale);
        }
        if advert.leave && backup {
            if following != Some(advert.src) {
                return Err(Refusal::LeaveNotFromMaster);
            }
            match self.last_from(advert.src) {
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
        let step = self.last.map(|last| advert.counter.wrapping_sub(last));
        if step.is_some_and(|s| s > 0 && s <= STEP) {
            self.run = self.run.saturating_add(1).min(2);
            self.high = self.high.max(advert.counter);
        } else {
            // A jump (a random counter, a restart, a takeover by a node
            // whose counter was far ahead): a new run starts here.
            self.run = 0;
            self.high = advert.counter;
        }
        self.last = Some(advert.counter);
        self.sources.retain(|(src, _)| *src != advert.src);
        if self.sources.len() == SOURCES {
            self.sources.pop_front();
        }
        self.sources.push_back((advert.src, advert.counter));
    }

    /// Whether the accepted adverts count up (rule 2 applies).
    pub fn counting_up(&self) -> bool {
        self.run >= 2
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
        }
        assert!(!g.counting_up());
        assert_eq!(take(&mut g, at(5), advert(A, 17)), Err(Refusal::Repeated));
        assert_eq!(take(&mut g, at(5), advert(B, 17)), Err(Refusal::Repeated));
    }

    #[test]
    fn once_counting_up_anything_older_is_refused_whatever_its_source() {
        let mut g = ReplayGuard::default();
        for c in 100..110 {
            take(&mut g, at(c), advert(A, c << 20)).unwrap();
        }
        assert!(g.counting_up());
        // Older than the window's reach, from a forged source: still old.
        assert_eq!(
            take(&mut g, at(200), advert(B, 50 << 20)),
            Err(Refusal::Old)
        );
        assert_eq!(
            take(&mut g, at(200), advert(A, 109 << 20)),
            Err(Refusal::Repeated)
        );
        assert_eq!(
            take(&mut g, at(200), advert(A, 110 << 20)),
            Ok(Checked::Fresh)
        );
    }

    #[test]
    fn random_counters_never_make_a_run_and_a_jump_ends_one() {
        let mut g = ReplayGuard::default();
        let mut x = 0x1234_5678_9abc_def0u64;
        for _ in 0..1000 {
            // xorshift: random 64-bit counters, as a lone UCARP master's.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            take(&mut g, at(0), advert(A, x)).unwrap();
            assert!(!g.counting_up());
        }
        for c in [500u64, 501, 502] {
            take(&mut g, at(1), advert(A, c)).unwrap();
        }
        assert!(g.counting_up());
        assert_eq!(take(&mut g, at(1), advert(A, 400)), Err(Refusal::Old));
        // A jump far ahead (a counter adopted from a random one) starts a
        // new run: the next small steps are judged from there.
        take(&mut g, at(2), advert(A, u64::MAX - 10)).unwrap();
        assert!(!g.counting_up());
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
