//! The whole unit a receiver gets (an IPv4 or IPv6 datagram, or the
//! Ethernet frame around it) and the same unit as it is sent.
//!
//! Parsing applies every structural check in UCARP's order: IP protocol,
//! TTL 255, IPv4 header checksum, CARP version and type, CARP checksum.
//! IPv6 has the same checks where they exist (no header checksum; the hop
//! limit stands for the TTL), and refuses any extension header.
//! Semantic checks that need configuration (our own source, vhid, group,
//! digest) are in [`crate::receive`].

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::carp::{self, AdvertRepr};
use crate::ethernet::{self, EthernetRepr, MacAddr};
use crate::ipv4::{self, Ipv4Repr};
use crate::ipv6::{self, Ipv6Repr};
use crate::{ParseError, CARP_TTL, IP_PROTOCOL_CARP};

/// Length of an advertisement datagram: IPv4 header plus CARP header.
pub const DATAGRAM_LEN: usize = ipv4::MIN_HEADER_LEN + carp::HEADER_LEN;
/// Length of an advertisement frame: Ethernet, IPv4 and CARP headers.
pub const FRAME_LEN: usize = ethernet::HEADER_LEN + DATAGRAM_LEN;

/// Length of an IPv6 advertisement datagram: IPv6 header plus CARP header.
pub const DATAGRAM6_LEN: usize = ipv6::HEADER_LEN + carp::HEADER_LEN;
/// Length of an IPv6 advertisement frame: Ethernet, IPv6 and CARP headers.
pub const FRAME6_LEN: usize = ethernet::HEADER_LEN + DATAGRAM6_LEN;

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

/// A CARP advertisement with the IPv6 addressing it arrived with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AdvertDatagram6 {
    /// The sender's real address (a link-local one, usually).
    pub src: Ipv6Addr,
    /// The group (ff02::12 unless configured otherwise).
    pub dst: Ipv6Addr,
    /// The advertisement.
    pub advert: AdvertRepr,
}

impl AdvertDatagram6 {
    /// Parses a whole IPv6 packet: protocol 112 directly after the fixed
    /// header (an extension header is refused), hop limit 255, then the
    /// CARP header. Bytes beyond the payload length are link padding.
    pub fn parse(bytes: &[u8]) -> Result<Self, ParseError> {
        let packet = ipv6::Packet::new_checked(bytes)?;
        let next = packet.next_header();
        if ipv6::is_extension_header(next) {
            return Err(ParseError::ExtensionHeader(next));
        }
        if next != IP_PROTOCOL_CARP {
            return Err(ParseError::NotCarp(next));
        }
        Self::parse_payload(
            packet.src_addr(),
            packet.dst_addr(),
            packet.hop_limit(),
            packet.payload(),
        )
    }

    /// The checks after the IPv6 header, for a receiver that got the header
    /// fields apart from the payload (a raw IPv6 socket hands over the
    /// payload, and the hop limit and destination as ancillary data).
    pub fn parse_payload(
        src: Ipv6Addr,
        dst: Ipv6Addr,
        hop_limit: u8,
        payload: &[u8],
    ) -> Result<Self, ParseError> {
        if hop_limit != CARP_TTL {
            return Err(ParseError::BadHopLimit(hop_limit));
        }
        let advert = AdvertRepr::parse(&carp::Packet::new_checked(payload)?)?;
        Ok(AdvertDatagram6 { src, dst, advert })
    }

    /// Writes the packet: hop limit 255, next header 112, traffic class and
    /// flow label 0, the CARP checksum. `buffer` must hold at least
    /// [`DATAGRAM6_LEN`] bytes.
    pub fn emit(&self, buffer: &mut [u8]) {
        Ipv6Repr {
            src: self.src,
            dst: self.dst,
            next_header: IP_PROTOCOL_CARP,
            hop_limit: CARP_TTL,
            payload_len: carp::HEADER_LEN,
        }
        .emit(buffer);
        let payload = &mut buffer[ipv6::HEADER_LEN..DATAGRAM6_LEN];
        self.advert.emit(&mut carp::Packet::new_unchecked(payload));
    }

    /// The packet as bytes.
    pub fn to_bytes(&self) -> [u8; DATAGRAM6_LEN] {
        let mut buffer = [0u8; DATAGRAM6_LEN];
        self.emit(&mut buffer);
        buffer
    }
}

/// An IPv6 advertisement with its Ethernet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AdvertFrame6 {
    /// Ethernet source: the interface's MAC.
    pub eth_src: MacAddr,
    /// Ethernet destination: the group's multicast MAC (33:33:…).
    pub eth_dst: MacAddr,
    /// The packet inside.
    pub datagram: AdvertDatagram6,
}

impl AdvertFrame6 {
    /// Parses a whole Ethernet frame.
    pub fn parse(frame: &[u8]) -> Result<Self, ParseError> {
        let (eth, payload) = EthernetRepr::parse(frame)?;
        if eth.ethertype != ethernet::ETHERTYPE_IPV6 {
            return Err(ParseError::NotIpv6Frame(eth.ethertype));
        }
        Ok(AdvertFrame6 {
            eth_src: eth.src,
            eth_dst: eth.dst,
            datagram: AdvertDatagram6::parse(payload)?,
        })
    }

    /// Writes the frame; `buffer` must hold at least [`FRAME6_LEN`] bytes.
    pub fn emit(&self, buffer: &mut [u8]) {
        EthernetRepr {
            dst: self.eth_dst,
            src: self.eth_src,
            ethertype: ethernet::ETHERTYPE_IPV6,
        }
        .emit(buffer);
        self.datagram
            .emit(&mut buffer[ethernet::HEADER_LEN..FRAME6_LEN]);
    }

    /// The frame as bytes.
    pub fn to_bytes(&self) -> [u8; FRAME6_LEN] {
        let mut buffer = [0u8; FRAME6_LEN];
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

    fn sample6() -> AdvertDatagram6 {
        AdvertDatagram6 {
            src: "fe80::1".parse().unwrap(),
            dst: ipv6::CARP_GROUP,
            advert: sample().advert,
        }
    }

    #[test]
    fn ipv6_round_trip() {
        let bytes = sample6().to_bytes();
        assert_eq!(bytes[0] >> 4, 6);
        assert_eq!((bytes[6], bytes[7]), (112, 255));
        assert_eq!(AdvertDatagram6::parse(&bytes), Ok(sample6()));
        let mut padded = bytes.to_vec();
        padded.extend_from_slice(&[0; 6]);
        assert_eq!(AdvertDatagram6::parse(&padded), Ok(sample6()));
        let frame = AdvertFrame6 {
            eth_src: MacAddr([2, 0, 0, 0, 0, 1]),
            eth_dst: MacAddr::ipv6_multicast(ipv6::CARP_GROUP),
            datagram: sample6(),
        };
        assert_eq!(AdvertFrame6::parse(&frame.to_bytes()), Ok(frame));
    }

    #[test]
    fn ipv6_hop_limit_extension_headers_and_truncation() {
        let mut bytes = sample6().to_bytes();
        bytes[7] = 64;
        assert_eq!(
            AdvertDatagram6::parse(&bytes),
            Err(ParseError::BadHopLimit(64))
        );
        let mut bytes = sample6().to_bytes();
        bytes[6] = 0; // hop-by-hop options
        assert_eq!(
            AdvertDatagram6::parse(&bytes),
            Err(ParseError::ExtensionHeader(0))
        );
        bytes[6] = 44; // fragment
        assert_eq!(
            AdvertDatagram6::parse(&bytes),
            Err(ParseError::ExtensionHeader(44))
        );
        bytes[6] = 17;
        assert_eq!(AdvertDatagram6::parse(&bytes), Err(ParseError::NotCarp(17)));
        let bytes = sample6().to_bytes();
        for len in 0..bytes.len() {
            assert!(
                AdvertDatagram6::parse(&bytes[..len]).is_err(),
                "{len} bytes"
            );
        }
        // A payload length that claims less than the CARP header.
        let mut short = sample6().to_bytes();
        short[4..6].copy_from_slice(&20u16.to_be_bytes());
        assert_eq!(
            AdvertDatagram6::parse(&short),
            Err(ParseError::Truncated {
                layer: "CARP",
                needed: 36,
                got: 20
            })
        );
    }

    #[test]
    fn an_ipv4_frame_is_not_an_ipv6_one() {
        let frame = AdvertFrame {
            eth_src: MacAddr::virtual_router(7),
            eth_dst: MacAddr::BROADCAST,
            datagram: sample(),
        }
        .to_bytes();
        assert_eq!(
            AdvertFrame6::parse(&frame),
            Err(ParseError::NotIpv6Frame(0x0800))
        );
    }
}
