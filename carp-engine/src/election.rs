//! Who should be master: the order between our advertisement and a peer's.
//!
//! Precedence, as OpenBSD and UCARP decide it:
//! 1. the lower demotion counter wins (OpenBSD; UCARP always sends 0, so
//!    this never changes a UCARP peer's outcome);
//! 2. the shorter interval (advbase, then advskew) wins;
//! 3. equal intervals: the tie-break on the two source addresses.

use std::cmp::Ordering;
use std::net::{IpAddr, Ipv4Addr};

use crate::time::Interval;

/// How two nodes with equal demotion and equal intervals decide who is
/// master. Both sides must order the pair the same way, or both stay master
/// (or both yield) for ever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TieBreak {
    /// UCARP 1.5.2 compares `in_addr.s_addr` as a native integer: on a
    /// little-endian host (x86, ARM) that orders addresses by their last
    /// octet first. The lower value wins. This is the default so that mixed
    /// clusters with UCARP on such hosts agree on every pair.
    #[default]
    UcarpLittleEndian,
    /// Plain numeric order, lower address wins: what UCARP does on a
    /// big-endian host. Use only when no little-endian UCARP is in the
    /// cluster.
    Numeric,
}

impl TieBreak {
    /// The key whose lower value wins the tie. IPv4 addresses as described
    /// above; IPv6 addresses (UCARP has none) in numeric order of their 16
    /// bytes in both modes, and after every IPv4 address, so that any pair
    /// is ordered the same way on both sides.
    pub fn key(self, addr: IpAddr) -> (u8, u128) {
        match addr {
            IpAddr::V4(v4) => (0, u128::from(self.key_v4(v4))),
            IpAddr::V6(v6) => (1, u128::from(v6)),
        }
    }

    fn key_v4(self, addr: Ipv4Addr) -> u32 {
        match self {
            TieBreak::UcarpLittleEndian => u32::from_le_bytes(addr.octets()),
            TieBreak::Numeric => u32::from(addr),
        }
    }
}

/// What an advertisement claims, as far as the election cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    /// Demotion counter: lower is better.
    pub demote: u8,
    /// Advertisement interval: shorter is better.
    pub interval: Interval,
    /// Sender's real address, for the tie-break.
    pub addr: IpAddr,
}

impl Claim {
    /// How `self` ranks against `other`: `Greater` means `self` should be
    /// master. Only `Equal` for the same address with the same claim.
    pub fn rank(&self, other: &Claim, tie_break: TieBreak) -> Ordering {
        other
            .demote
            .cmp(&self.demote)
            .then(other.interval.cmp(&self.interval))
            .then(tie_break.key(other.addr).cmp(&tie_break.key(self.addr)))
    }
}

/// What a virtual host does on hearing an advert, by OpenBSD's
/// `carp_proto_input_c` rules (notes §10) plus UCARP's, in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Master: the advert ranks above us; go backup.
    Yield,
    /// Master: a weaker master; stay, and re-announce the address.
    StayMaster,
    /// Backup: the master advertises a higher demotion than ours; take
    /// over at once, whatever `preempt` says.
    TakeOverDemoted,
    /// Backup with preempt: the master is slower and not less demoted.
    TakeOverPreempt,
    /// Backup: a leave advertisement (advbase 255, advskew 255).
    TakeOverLeft,
    /// Backup: the master's interval is longer than our master-down time.
    TakeOverWillTimeOut,
    /// Backup: a master we follow; re-arm the master-down timer.
    Follow,
}

/// The rule, as a function of the two claims and our settings:
/// - master: yield when theirs ranks above ours ([`Claim::rank`]: lower
///   demote, then shorter interval, then the tie-break). That is
///   OpenBSD's "their interval ≤ ours and their demote ≤ ours, or their
///   demote < ours", with UCARP's address rule instead of yielding on an
///   exact tie;
/// - backup: take over at once from a master with a higher demote; with
///   preempt from a slower master whose demote is not lower than ours;
///   on a leave advert; or when the master's interval exceeds
///   `will_time_out` (UCARP's rule); otherwise follow it.
pub fn verdict(
    master: bool,
    ours: &Claim,
    theirs: &Claim,
    tie_break: TieBreak,
    preempt: bool,
    will_time_out: std::time::Duration,
) -> Verdict {
    if master {
        return if theirs.rank(ours, tie_break).is_gt() {
            Verdict::Yield
        } else {
            Verdict::StayMaster
        };
    }
    let leave = Interval::new(255, 255);
    if theirs.demote > ours.demote {
        Verdict::TakeOverDemoted
    } else if preempt && theirs.demote == ours.demote && ours.interval < theirs.interval {
        Verdict::TakeOverPreempt
    } else if theirs.interval == leave {
        Verdict::TakeOverLeft
    } else if theirs.interval.as_duration() > will_time_out {
        Verdict::TakeOverWillTimeOut
    } else {
        Verdict::Follow
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(demote: u8, advbase: u8, advskew: u8, addr: [u8; 4]) -> Claim {
        Claim {
            demote,
            interval: Interval::new(advbase, advskew),
            addr: IpAddr::V4(Ipv4Addr::from(addr)),
        }
    }

    #[test]
    fn demote_then_interval_then_address() {
        let tb = TieBreak::UcarpLittleEndian;
        let a = claim(0, 1, 100, [10, 0, 0, 9]);
        let b = claim(1, 1, 0, [10, 0, 0, 1]);
        assert_eq!(a.rank(&b, tb), Ordering::Greater, "lower demote wins");
        let c = claim(0, 1, 0, [10, 0, 0, 9]);
        assert_eq!(c.rank(&a, tb), Ordering::Greater, "shorter interval wins");
        let d = claim(0, 1, 0, [10, 0, 0, 1]);
        assert_eq!(d.rank(&c, tb), Ordering::Greater, "lower address wins");
        assert_eq!(c.rank(&d, tb), Ordering::Less);
    }

    /// The pair from the notes: numeric order and UCARP's order disagree.
    #[test]
    fn ucarp_order_is_last_octet_first() {
        let x = claim(0, 1, 0, [10, 0, 2, 1]);
        let y = claim(0, 1, 0, [10, 0, 1, 2]);
        assert_eq!(x.rank(&y, TieBreak::UcarpLittleEndian), Ordering::Greater);
        assert_eq!(x.rank(&y, TieBreak::Numeric), Ordering::Less);
    }

    /// IPv6 sources order numerically, after IPv4 ones, in both modes.
    #[test]
    fn ipv6_sources_order_numerically_after_ipv4() {
        let v6 = |last: u16| Claim {
            demote: 0,
            interval: Interval::new(1, 0),
            addr: IpAddr::V6(std::net::Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, last)),
        };
        for tb in [TieBreak::UcarpLittleEndian, TieBreak::Numeric] {
            assert_eq!(v6(1).rank(&v6(2), tb), Ordering::Greater);
            assert_eq!(v6(2).rank(&v6(1), tb), Ordering::Less);
            let v4 = claim(0, 1, 0, [10, 0, 0, 9]);
            assert_eq!(v4.rank(&v6(1), tb), Ordering::Greater);
            assert_eq!(v6(1).rank(&v4, tb), Ordering::Less);
        }
    }

    /// Antisymmetry: whichever side evaluates it, the pair agrees.
    #[test]
    fn both_sides_agree_for_every_pair() {
        for tb in [TieBreak::UcarpLittleEndian, TieBreak::Numeric] {
            for a in 0..=20u8 {
                for b in 0..=20u8 {
                    let x = claim(0, 1, 0, [10, a % 4, a, b]);
                    let y = claim(0, 1, 0, [10, b % 4, b, a]);
                    assert_eq!(x.rank(&y, tb), y.rank(&x, tb).reverse());
                }
            }
        }
    }

    /// Every combination of demote (lower, equal, higher), interval
    /// (shorter, equal, longer), state and preempt, against the rules as
    /// notes §10 writes them (OpenBSD's `carp_proto_input_c`), with
    /// UCARP's address tie-break where OpenBSD would yield on a tie.
    #[test]
    fn truth_table_against_openbsd() {
        use std::cmp::Ordering::{self, *};
        let ours = claim(5, 1, 100, [10, 0, 0, 1]);
        let threshold = std::time::Duration::from_secs(4);
        let with = |demote: Ordering, interval: Ordering, addr: u8| Claim {
            demote: (5i16 + demote as i16) as u8,
            interval: Interval::new(1, (100i16 + 10 * interval as i16) as u8),
            addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, addr)),
        };
        for demote in [Less, Equal, Greater] {
            for interval in [Less, Equal, Greater] {
                // addr 0 ranks above us on a tie, addr 2 below.
                for addr in [0u8, 2] {
                    let theirs = with(demote, interval, addr);
                    let tb = TieBreak::Numeric;
                    // Master, by OpenBSD: (interval ≤ and demote ≤) or
                    // demote <; on an exact tie, the lower address wins.
                    let openbsd_yield =
                        (interval != Greater && demote != Greater) || demote == Less;
                    let exact_tie = demote == Equal && interval == Equal;
                    let expect_yield = if exact_tie { addr < 1 } else { openbsd_yield };
                    let got = verdict(true, &ours, &theirs, tb, false, threshold);
                    let expected = if expect_yield {
                        Verdict::Yield
                    } else {
                        Verdict::StayMaster
                    };
                    assert_eq!(
                        got, expected,
                        "master, demote {demote:?} interval {interval:?} addr {addr}"
                    );
                    for preempt in [false, true] {
                        let got = verdict(false, &ours, &theirs, tb, preempt, threshold);
                        let expected = if demote == Greater {
                            Verdict::TakeOverDemoted
                        } else if preempt && interval == Greater && demote == Equal {
                            Verdict::TakeOverPreempt
                        } else {
                            Verdict::Follow
                        };
                        assert_eq!(
                            got, expected,
                            "backup, preempt {preempt}, demote {demote:?} interval {interval:?}"
                        );
                    }
                }
            }
        }
        // The two backup rules that do not depend on the comparison.
        let leave = Claim {
            interval: Interval::new(255, 255),
            ..ours
        };
        assert_eq!(
            verdict(false, &ours, &leave, TieBreak::Numeric, false, threshold),
            Verdict::TakeOverLeft
        );
        let slow = Claim {
            interval: Interval::new(5, 0),
            ..ours
        };
        assert_eq!(
            verdict(false, &ours, &slow, TieBreak::Numeric, false, threshold),
            Verdict::TakeOverWillTimeOut
        );
    }
}
