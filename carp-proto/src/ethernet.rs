//! The Ethernet II header, for receive paths that yield whole frames and for
//! building the frames CARP and gratuitous ARP send.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::ParseError;

/// Length of an Ethernet II header (no VLAN tag: the kernel strips it).
pub const HEADER_LEN: usize = 14;
/// Ethertype of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// Ethertype of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// Ethertype of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;

/// A 48-bit MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);

    /// The multicast MAC of an IPv4 group: 01:00:5e plus the low 23 bits.
    pub fn ipv4_multicast(group: Ipv4Addr) -> MacAddr {
        let o = group.octets();
        MacAddr([0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]])
    }

    /// The multicast MAC of an IPv6 group: 33:33 plus its last four bytes
    /// (RFC 2464 §7).
    pub fn ipv6_multicast(group: Ipv6Addr) -> MacAddr {
        let o = group.octets();
        MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
    }

    /// The virtual-router MAC UCARP sends its advertisements from:
    /// 00:00:5e:00:00:<vhid>.
    pub fn virtual_router(vhid: u8) -> MacAddr {
        MacAddr([0x00, 0x00, 0x5e, 0x00, 0x00, vhid])
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// An Ethernet header as a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EthernetRepr {
    /// Destination MAC.
    pub dst: MacAddr,
    /// Source MAC.
    pub src: MacAddr,
    /// Ethertype.
    pub ethertype: u16,
}

impl EthernetRepr {
    /// Splits a frame into its header and payload.
    pub fn parse(frame: &[u8]) -> Result<(Self, &[u8]), ParseError> {
        if frame.len() < HEADER_LEN {
            return Err(ParseError::Truncated {
                layer: "Ethernet",
                needed: HEADER_LEN,
                got: frame.len(),
            });
        }
        let mut dst = [0u8; 6];
        let mut src = [0u8; 6];
        dst.copy_from_slice(&frame[0..6]);
        src.copy_from_slice(&frame[6..12]);
        let repr = EthernetRepr {
            dst: MacAddr(dst),
            src: MacAddr(src),
            ethertype: u16::from_be_bytes([frame[12], frame[13]]),
        };
        Ok((repr, &frame[HEADER_LEN..]))
    }

    /// Writes the header into the first [`HEADER_LEN`] bytes of `buffer`.
    pub fn emit(&self, buffer: &mut [u8]) {
        buffer[0..6].copy_from_slice(&self.dst.0);
        buffer[6..12].copy_from_slice(&self.src.0);
        buffer[12..14].copy_from_slice(&self.ethertype.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multicast_mac_of_carp_group() {
        assert_eq!(
            MacAddr::ipv4_multicast(Ipv4Addr::new(224, 0, 0, 18)).to_string(),
            "01:00:5e:00:00:12"
        );
        // The 24th bit is dropped.
        assert_eq!(
            MacAddr::ipv4_multicast(Ipv4Addr::new(239, 129, 2, 3)),
            MacAddr([1, 0, 0x5e, 1, 2, 3])
        );
    }

    #[test]
    fn multicast_mac_of_ipv6_groups() {
        assert_eq!(
            MacAddr::ipv6_multicast(crate::ipv6::CARP_GROUP).to_string(),
            "33:33:00:00:00:12"
        );
        assert_eq!(
            MacAddr::ipv6_multicast("ff02::1:ff12:3456".parse().unwrap()).to_string(),
            "33:33:ff:12:34:56"
        );
    }

    #[test]
    fn short_frame() {
        assert_eq!(
            EthernetRepr::parse(&[0; 13]),
            Err(ParseError::Truncated {
                layer: "Ethernet",
                needed: 14,
                got: 13
            })
        );
    }
}
