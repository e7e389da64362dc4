//! The whole unit a receiver gets (an IPv4 datagram, or the Ethernet frame
//! around it) and the same unit as UCARP sends it.
//!
//! Parsing applies every structural check in UCARP's order: IP protocol,
//! TTL 255, IPv4 header checksum, CARP version and type, CARP checksum.
//! Semantic checks that need configuration (our own source, vhid, group,
//! digest) are in [`crate::receive`].

use std::net::Ipv4Addr;

use crate::carp::{self, AdvertRepr};
use crate::ethernet::{self, EthernetRepr, MacAddr};
use crate::ipv4::{self, Ipv4Repr};
use crate::{ParseError, CARP_TTL, IP_PROTOCOL_CARP};

/// Length of an advertisement datagram: IPv4 header plus CARP header.
pub const DATAGRAM_LEN: usize = ipv4::MIN_HEADER_LEN + carp::HEADER_LEN;
/// Length of an advertisement frame: Ethernet, IPv4 and CARP headers.
pub const FRAME_LEN: usize = ethernet::HEADER_LEN + DATAGRAM_LEN;

/// A CARP advertisement with the IPv4 addressing it arrived with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AdvertDatagram {
    /// The sender's real address.
    pub src: Ipv4Addr,
    /// The group (or, for unicast peers, our address).
    pub dst: Ipv4Addr,
    /// IP identification; UCARP sends a random one.
    pub ident: u16,
    /// The advertisement.
    pub advert: AdvertRepr,
}

impl AdvertDatagram {
    /// Parses an IPv4 datagram as a raw IPv4 socket returns it (header
    /// included). Bytes beyond the IP total length are ignored as link
    /// padding.
    pub fn parse(bytes: &[u8]) -> Result<Self, ParseError> {
        let packet = ipv4::Packet::new_checked(bytes)?;
        if packet.is_fragment() {
            return Err(ParseError::Fragmented);
        }
        if packet.protocol() != IP_PROTOCOL_CARP {
            return Err(ParseError::NotCarp(packet.protocol()));
        }
        if packet.ttl() != CARP_TTL {
            return Err(ParseError::BadTtl(packet.ttl()));
        }
        if !packet.verify_checksum() {
            return Err(ParseError::BadIpChecksum);
        }
        let advert = AdvertRepr::parse(&carp::Packet::new_checked(packet.payload())?)?;
        Ok(AdvertDatagram {
            src: packet.src_addr(),
            dst: packet.dst_addr(),
            ident: packet.ident(),
            advert,
        })
    }

    /// Bytes [`AdvertDatagram::emit`] writes.
    pub const fn buffer_len(&self) -> usize {
        DATAGRAM_LEN
    }

    /// Writes the datagram exactly as UCARP does: TOS 0x10, don't fragment,
    /// TTL 255, protocol 112, both checksums. `buffer` must hold at least
    /// [`DATAGRAM_LEN`] bytes.
    pub fn emit(&self, buffer: &mut [u8]) {
        let header = Ipv4Repr {
            src: self.src,
            dst: self.dst,
            protocol: IP_PROTOCOL_CARP,
            ttl: CARP_TTL,
            tos: ipv4::TOS_LOWDELAY,
            ident: self.ident,
            dont_frag: true,
            payload_len: carp::HEADER_LEN,
        };
        header.emit(buffer);
        let payload = &mut buffer[ipv4::MIN_HEADER_LEN..DATAGRAM_LEN];
        self.advert.emit(&mut carp::Packet::new_unchecked(payload));
    }

    /// The datagram as bytes.
    pub fn to_bytes(&self) -> [u8; DATAGRAM_LEN] {
        let mut buffer = [0u8; DATAGRAM_LEN];
        self.emit(&mut buffer);
        buffer
    }
}

/// An advertisement with its Ethernet header, as a packet socket sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AdvertFrame {
    /// Ethernet source (UCARP: 00:00:5e:00:00:<vhid>).
    pub eth_src: MacAddr,
    /// Ethernet destination: the group's multicast MAC, or broadcast.
    pub eth_dst: MacAddr,
    /// The datagram inside.
    pub datagram: AdvertDatagram,
}

impl AdvertFrame {
    /// Parses a whole Ethernet frame.
    pub fn parse(frame: &[u8]) -> Result<Self, ParseError> {
        let (eth, payload) = EthernetRepr::parse(frame)?;
        if eth.ethertype != ethernet::ETHERTYPE_IPV4 {
            return Err(ParseError::NotIpv4Frame(eth.ethertype));
        }
        Ok(AdvertFrame {
            eth_src: eth.src,
            eth_dst: eth.dst,
            datagram: AdvertDatagram::parse(payload)?,
        })
    }

    /// Writes the frame; `buffer` must hold at least [`FRAME_LEN`] bytes.
    pub fn emit(&self, buffer: &mut [u8]) {
        let eth = EthernetRepr {
            dst: self.eth_dst,
            src: self.eth_src,
            ethertype: ethernet::ETHERTYPE_IPV4,
        };
        eth.emit(buffer);
        self.datagram
            .emit(&mut buffer[ethernet::HEADER_LEN..FRAME_LEN]);
    }

    /// The frame as bytes.
    pub fn to_bytes(&self) -> [u8; FRAME_LEN] {
        let mut buffer = [0u8; FRAME_LEN];
        self.emit(&mut buffer);
        buffer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> AdvertDatagram {
        AdvertDatagram {
            src: Ipv4Addr::new(10, 0, 0, 1),
            dst: crate::DEFAULT_GROUP,
            ident: 0x1234,
            advert: AdvertRepr {
                vhid: 7,
                advbase: 1,
                advskew: 10,
                demote: 0,
                counter: 99,
                digest: [0x5a; 20],
            },
        }
    }

    #[test]
    fn emit_parse_round_trip() {
        let mut buffer = [0xa5u8; DATAGRAM_LEN + 4];
        sample().emit(&mut buffer);
        assert_eq!(&buffer[DATAGRAM_LEN..], &[0xa5; 4], "wrote past the end");
        assert_eq!(AdvertDatagram::parse(&buffer[..DATAGRAM_LEN]), Ok(sample()));
        // Link padding after the total length is ignored.
        assert_eq!(AdvertDatagram::parse(&buffer), Ok(sample()));
    }

    #[test]
    fn fragment_rejected() {
        let mut bytes = sample().to_bytes();
        bytes[6] |= 0x20; // more fragments
        assert_eq!(AdvertDatagram::parse(&bytes), Err(ParseError::Fragmented));
    }

    #[test]
    fn other_protocol_rejected() {
        let mut bytes = sample().to_bytes();
        bytes[9] = 17;
        assert_eq!(AdvertDatagram::parse(&bytes), Err(ParseError::NotCarp(17)));
    }

    #[test]
    fn ip_options_are_skipped() {
        let plain = sample().to_bytes();
        let mut with_options = Vec::new();
        with_options.extend_from_slice(&plain[..20]);
        with_options.extend_from_slice(&[1, 1, 1, 0]); // NOP NOP NOP EOL
        with_options.extend_from_slice(&plain[20..]);
        with_options[0] = 0x46;
        with_options[2..4].copy_from_slice(&(60u16).to_be_bytes());
        with_options[10..12].copy_from_slice(&[0, 0]);
        let sum = crate::checksum::checksum(&with_options[..24]);
        with_options[10..12].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(AdvertDatagram::parse(&with_options), Ok(sample()));
    }

    #[test]
    fn bad_header_lengths() {
        let mut bytes = sample().to_bytes();
        bytes[0] = 0x44;
        assert_eq!(
            AdvertDatagram::parse(&bytes),
            Err(ParseError::BadIpHeaderLength(16))
        );
        let mut bytes = sample().to_bytes();
        bytes[2..4].copy_from_slice(&57u16.to_be_bytes());
        assert_eq!(
            AdvertDatagram::parse(&bytes),
            Err(ParseError::BadIpTotalLength {
                total: 57,
                header: 20,
                received: 56
            })
        );
        assert_eq!(
            AdvertDatagram::parse(&bytes[..19]),
            Err(ParseError::Truncated {
                layer: "IPv4",
                needed: 20,
                got: 19
            })
        );
    }

    #[test]
    fn non_ipv4_frame() {
        let mut frame = AdvertFrame {
            eth_src: MacAddr::virtual_router(7),
            eth_dst: MacAddr::BROADCAST,
            datagram: sample(),
        }
        .to_bytes();
        frame[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
        assert_eq!(
            AdvertFrame::parse(&frame),
            Err(ParseError::NotIpv4Frame(0x86dd))
        );
    }
}
