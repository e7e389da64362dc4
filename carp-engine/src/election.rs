//! Who should be master: the order between our advertisement and a peer's.
//!
//! Precedence, as OpenBSD and UCARP decide it:
//! 1. the lower demotion counter wins (OpenBSD; UCARP always sends 0, so
//!    this never changes a UCARP peer's outcome);
//! 2. the shorter interval (advbase, then advskew) wins;
//! 3. equal intervals: the tie-break on the two source addresses.

use std::cmp::Ordering;
use std::net::Ipv4Addr;

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
    /// The key whose lower value wins the tie.
    pub fn key(self, addr: Ipv4Addr) -> u32 {
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
    pub addr: Ipv4Addr,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(demote: u8, advbase: u8, advskew: u8, addr: [u8; 4]) -> Claim {
        Claim {
            demote,
            interval: Interval::new(advbase, advskew),
            addr: Ipv4Addr::from(addr),
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
}
