//! Just enough IPv6 to check and build the header a CARP advertisement (and
//! a neighbour advertisement) travels in.
//!
//! ```text
//! +-------+---------------+---------------------------------------+
//! |Version| Traffic Class |              Flow Label               |
//! +-------+---------------+-------+---------------+---------------+
//! |         Payload Length        |  Next Header  |   Hop Limit   |
//! +-------------------------------+---------------+---------------+
//! |                    Source Address (16 bytes)                  |
//! |                 Destination Address (16 bytes)                |
//! +---------------------------------------------------------------+
//! ```
//!
//! No extension header is followed: a CARP advertisement is sent without
//! any, so a packet whose next header is one is rejected, not walked.

use std::net::Ipv6Addr;

use crate::ParseError;

mod field {
    use core::ops::Range;
    pub const VER_TC_FLOW: Range<usize> = 0..4;
    pub const PAYLOAD_LEN: Range<usize> = 4..6;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: Range<usize> = 8..24;
    pub const DST: Range<usize> = 24..40;
}

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = field::DST.end;

/// The multicast group of CARP advertisements over IPv6: ff02::12.
pub const CARP_GROUP: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
/// All nodes on the link: where unsolicited neighbour advertisements go.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// Next-header values that are IPv6 extension headers (RFC 8200 and the
/// IANA registry): hop-by-hop, routing, fragment, ESP, AH, destination
/// options, mobility, HIP, shim6 and the two experimental values.
pub fn is_extension_header(next_header: u8) -> bool {
    matches!(
        next_header,
        0 | 43 | 44 | 50 | 51 | 60 | 135 | 139 | 140 | 253 | 254
    )
}

/// Whether `addr` is link-local unicast (fe80::/10).
pub fn is_link_local(addr: &Ipv6Addr) -> bool {
    addr.segments()[0] & 0xffc0 == 0xfe80
}

/// A view over an IPv6 header. After [`Packet::new_checked`] succeeds every
/// accessor is in bounds, payload included.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checks; accessors may panic on a short one.
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps a buffer after checking the version and the payload length
    /// against the bytes present.
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// The checks of [`Packet::new_checked`].
    pub fn check_len(&self) -> Result<(), ParseError> {
        let received = self.buffer.as_ref().len();
        if received < HEADER_LEN {
            return Err(ParseError::Truncated {
                layer: "IPv6",
                needed: HEADER_LEN,
                got: received,
            });
        }
        if self.version() != 6 {
            return Err(ParseError::BadIpVersion(self.version()));
        }
        let payload = usize::from(self.payload_len());
        if HEADER_LEN + payload > received {
            return Err(ParseError::BadIpv6PayloadLength { payload, received });
        }
        Ok(())
    }

    fn bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    fn read_addr(&self, range: core::ops::Range<usize>) -> Ipv6Addr {
        let mut octets = [0u8; 16];
        octets.copy_from_slice(&self.bytes()[range]);
        Ipv6Addr::from(octets)
    }

    /// IP version nibble.
    pub fn version(&self) -> u8 {
        self.bytes()[field::VER_TC_FLOW.start] >> 4
    }

    /// Payload length (everything after the fixed header).
    pub fn payload_len(&self) -> u16 {
        let b = &self.bytes()[field::PAYLOAD_LEN];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Next header: the protocol of the payload, or an extension header.
    pub fn next_header(&self) -> u8 {
        self.bytes()[field::NEXT_HEADER]
    }

    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.bytes()[field::HOP_LIMIT]
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        self.read_addr(field::SRC)
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        self.read_addr(field::DST)
    }

    /// The payload, without link padding beyond the payload length.
    pub fn payload(&self) -> &[u8] {
        &self.bytes()[HEADER_LEN..HEADER_LEN + usize::from(self.payload_len())]
    }
}

/// An IPv6 header as a value (traffic class and flow label always 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Repr {
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
    /// The payload's protocol.
    pub next_header: u8,
    /// Hop limit.
    pub hop_limit: u8,
    /// Bytes of payload that follow.
    pub payload_len: usize,
}

impl Ipv6Repr {
    /// Reads a checked header.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Ipv6Repr {
        Ipv6Repr {
            src: packet.src_addr(),
            dst: packet.dst_addr(),
            next_header: packet.next_header(),
            hop_limit: packet.hop_limit(),
            payload_len: packet.payload().len(),
        }
    }

    /// Writes the header into the first [`HEADER_LEN`] bytes of `buffer`.
    pub fn emit(&self, buffer: &mut [u8]) {
        buffer[field::VER_TC_FLOW].copy_from_slice(&[0x60, 0, 0, 0]);
        buffer[field::PAYLOAD_LEN].copy_from_slice(&(self.payload_len as u16).to_be_bytes());
        buffer[field::NEXT_HEADER] = self.next_header;
        buffer[field::HOP_LIMIT] = self.hop_limit;
        buffer[field::SRC].copy_from_slice(&self.src.octets());
        buffer[field::DST].copy_from_slice(&self.dst.octets());
    }

    /// The ones'-complement sum of the pseudo-header upper-layer checksums
    /// cover (RFC 8200 §8.1): source, destination, length, next header.
    pub fn pseudo_header_sum(&self) -> u16 {
        let mut pseudo = [0u8; 40];
        pseudo[0..16].copy_from_slice(&self.src.octets());
        pseudo[16..32].copy_from_slice(&self.dst.octets());
        pseudo[32..36].copy_from_slice(&(self.payload_len as u32).to_be_bytes());
        pseudo[39] = self.next_header;
        crate::checksum::ones_complement_sum(&pseudo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Ipv6Repr {
        Ipv6Repr {
            src: "fe80::1".parse().unwrap(),
            dst: CARP_GROUP,
            next_header: 112,
            hop_limit: 255,
            payload_len: 4,
        }
    }

    #[test]
    fn round_trip_and_padding() {
        let mut buffer = [0xeeu8; HEADER_LEN + 6];
        sample().emit(&mut buffer);
        let packet = Packet::new_checked(&buffer[..]).unwrap();
        assert_eq!(Ipv6Repr::parse(&packet), sample());
        assert_eq!(packet.payload(), &[0xee; 4], "padding is not payload");
    }

    #[test]
    fn short_or_lying_packets_are_typed_errors() {
        let mut buffer = [0u8; HEADER_LEN + 4];
        sample().emit(&mut buffer);
        assert_eq!(
            Packet::new_checked(&buffer[..39]).unwrap_err(),
            ParseError::Truncated {
                layer: "IPv6",
                needed: 40,
                got: 39
            }
        );
        assert_eq!(
            Packet::new_checked(&buffer[..43]).unwrap_err(),
            ParseError::BadIpv6PayloadLength {
                payload: 4,
                received: 43
            }
        );
        buffer[0] = 0x45;
        assert_eq!(
            Packet::new_checked(&buffer[..]).unwrap_err(),
            ParseError::BadIpVersion(4)
        );
    }

    #[test]
    fn link_local_and_extension_headers() {
        assert!(is_link_local(&"fe80::1".parse().unwrap()));
        assert!(is_link_local(&"febf::1".parse().unwrap()));
        assert!(!is_link_local(&"fec0::1".parse().unwrap()));
        assert!(!is_link_local(&"2001:db8::1".parse().unwrap()));
        for header in [0, 43, 44, 60] {
            assert!(is_extension_header(header));
        }
        assert!(!is_extension_header(112));
        assert!(!is_extension_header(58));
    }
}
