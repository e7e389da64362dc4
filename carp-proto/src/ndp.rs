//! The unsolicited neighbour advertisement a new master sends for each IPv6
//! virtual address: IPv6's gratuitous ARP (RFC 4861 §7.2.6).
//!
//! To all nodes (ff02::1, Ethernet 33:33:00:00:00:01) from the interface's
//! link-local address, hop limit 255 (receivers drop any other), ICMPv6
//! type 136 with the override flag set (so neighbours replace the old
//! master's link-layer address at once), the solicited flag clear, the
//! router flag set when the host forwards IPv6 (a neighbour that sees it
//! clear stops using the address as a router, RFC 4861 §7.2.5), and a
//! target link-layer address option carrying the interface's MAC.

use std::net::Ipv6Addr;

use crate::ethernet::{self, EthernetRepr, MacAddr};
use crate::ipv6::{self, Ipv6Repr};

/// ICMPv6's next-header value.
pub const IP_PROTOCOL_ICMPV6: u8 = 58;
/// ICMPv6 type of a neighbour advertisement.
pub const TYPE_NEIGHBOR_ADVERTISEMENT: u8 = 136;
/// Override flag (first byte of the flags word).
pub const FLAG_OVERRIDE: u8 = 0x20;
/// Solicited flag.
pub const FLAG_SOLICITED: u8 = 0x40;
/// Router flag.
pub const FLAG_ROUTER: u8 = 0x80;
/// NDP option: target link-layer address.
const OPTION_TARGET_LINK_LAYER: u8 = 2;
/// ICMPv6 body: type, code, checksum, flags, target, one 8-byte option.
const BODY_LEN: usize = 4 + 4 + 16 + 8;
/// Hop limit of every neighbour discovery message.
const NDP_HOP_LIMIT: u8 = 255;

/// Length of the whole frame.
pub const FRAME_LEN: usize = ethernet::HEADER_LEN + ipv6::HEADER_LEN + BODY_LEN;

/// An unsolicited neighbour advertisement of `target` at `mac`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NeighborAdvert {
    /// The interface's own MAC: the link-layer address announced.
    pub mac: MacAddr,
    /// The IPv6 source: the interface's link-local address.
    pub src: Ipv6Addr,
    /// The virtual address being announced.
    pub target: Ipv6Addr,
    /// Whether we are a router (the interface forwards IPv6).
    pub router: bool,
}

impl NeighborAdvert {
    /// The whole Ethernet frame, checksum included.
    pub fn to_frame(&self) -> [u8; FRAME_LEN] {
        let mut frame = [0u8; FRAME_LEN];
        EthernetRepr {
            dst: MacAddr::ipv6_multicast(ipv6::ALL_NODES),
            src: self.mac,
            ethertype: ethernet::ETHERTYPE_IPV6,
        }
        .emit(&mut frame);
        let header = Ipv6Repr {
            src: self.src,
            dst: ipv6::ALL_NODES,
            next_header: IP_PROTOCOL_ICMPV6,
            hop_limit: NDP_HOP_LIMIT,
            payload_len: BODY_LEN,
        };
        header.emit(&mut frame[ethernet::HEADER_LEN..]);
        let body = &mut frame[ethernet::HEADER_LEN + ipv6::HEADER_LEN..];
        body[0] = TYPE_NEIGHBOR_ADVERTISEMENT;
        body[4] = FLAG_OVERRIDE | if self.router { FLAG_ROUTER } else { 0 };
        body[8..24].copy_from_slice(&self.target.octets());
        body[24] = OPTION_TARGET_LINK_LAYER;
        body[25] = 1; // in units of 8 bytes
        body[26..32].copy_from_slice(&self.mac.0);
        let sum = crate::checksum::ones_complement_sum(body);
        let checksum = !fold(u32::from(sum) + u32::from(header.pseudo_header_sum()));
        body[2..4].copy_from_slice(&checksum.to_be_bytes());
        frame
    }

    /// Reads an unsolicited neighbour advertisement back from a frame, for
    /// tests and captures: `None` unless it is one this module would send
    /// (hop limit 255, to all nodes, override set, solicited clear, valid
    /// checksum, target link-layer option).
    pub fn from_frame(frame: &[u8]) -> Option<Self> {
        let (eth, payload) = EthernetRepr::parse(frame).ok()?;
        if eth.ethertype != ethernet::ETHERTYPE_IPV6 {
            return None;
        }
        let packet = ipv6::Packet::new_checked(payload).ok()?;
        let header = Ipv6Repr::parse(&packet);
        let body = packet.payload();
        let valid = header.next_header == IP_PROTOCOL_ICMPV6
            && header.hop_limit == NDP_HOP_LIMIT
            && header.dst == ipv6::ALL_NODES
            && eth.dst == MacAddr::ipv6_multicast(ipv6::ALL_NODES)
            && body.len() == BODY_LEN
            && body[0] == TYPE_NEIGHBOR_ADVERTISEMENT
            && body[1] == 0
            && body[4] & (FLAG_OVERRIDE | FLAG_SOLICITED) == FLAG_OVERRIDE
            && body[24..26] == [OPTION_TARGET_LINK_LAYER, 1]
            && body[26..32] == eth.src.0
            && fold(
                u32::from(crate::checksum::ones_complement_sum(body))
                    + u32::from(header.pseudo_header_sum()),
            ) == 0xffff;
        if !valid {
            return None;
        }
        let mut target = [0u8; 16];
        target.copy_from_slice(&body[8..24]);
        Some(NeighborAdvert {
            mac: eth.src,
            src: header.src,
            target: Ipv6Addr::from(target),
            router: body[4] & FLAG_ROUTER != 0,
        })
    }
}

/// Folds a sum of two 16-bit ones'-complement sums back to 16 bits.
fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> NeighborAdvert {
        NeighborAdvert {
            mac: MacAddr([0x02, 0x11, 0x22, 0x33, 0x44, 0x55]),
            src: "fe80::11:22ff:fe33:4455".parse().unwrap(),
            target: "2001:db8::25".parse().unwrap(),
            router: false,
        }
    }

    #[test]
    fn frame_round_trips() {
        let frame = sample().to_frame();
        assert_eq!(frame[58], FLAG_OVERRIDE);
        assert_eq!(NeighborAdvert::from_frame(&frame), Some(sample()));
        let router = NeighborAdvert {
            router: true,
            ..sample()
        };
        let frame = router.to_frame();
        assert_eq!(frame[58], FLAG_OVERRIDE | FLAG_ROUTER);
        assert_eq!(NeighborAdvert::from_frame(&frame), Some(router));
    }

    /// The checksum, computed here by hand from RFC 8200's pseudo-header
    /// rather than through the module's helper.
    #[test]
    fn checksum_is_over_the_pseudo_header() {
        let frame = sample().to_frame();
        let ip = &frame[14..54];
        let body = &frame[54..];
        let mut all = Vec::new();
        all.extend_from_slice(&ip[8..40]); // source and destination
        all.extend_from_slice(&(body.len() as u32).to_be_bytes());
        all.extend_from_slice(&[0, 0, 0, 58]);
        all.extend_from_slice(body);
        assert!(crate::checksum::verifies(&all));
    }

    #[test]
    fn anything_else_is_refused() {
        let good = sample().to_frame();
        for (at, value) in [(21, 64u8), (54, 135), (58, 0x60), (59 + 20, 0), (12, 0x08)] {
            let mut frame = good;
            frame[at] = value;
            assert_eq!(NeighborAdvert::from_frame(&frame), None, "byte {at}");
        }
        assert_eq!(NeighborAdvert::from_frame(&good[..good.len() - 1]), None);
    }
}
