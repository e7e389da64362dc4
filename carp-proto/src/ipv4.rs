//! Just enough IPv4 to check and build the header a CARP advertisement
//! travels in.
//!
//! ```text
//! +-------+-------+---------------+-------------------------------+
//! |Version|  IHL  |      TOS      |         Total Length          |
//! +-------+-------+---------------+-----+-------------------------+
//! |        Identification         |Flags|    Fragment Offset      |
//! +---------------+---------------+-----+-------------------------+
//! |      TTL      |   Protocol    |        Header Checksum        |
//! +---------------+---------------+-------------------------------+
//! |                        Source Address                         |
//! |                      Destination Address                      |
//! |                    Options (IHL > 5, rare)                    |
//! +---------------------------------------------------------------+
//! ```

use std::net::Ipv4Addr;

use crate::checksum;
use crate::ParseError;

mod field {
    use core::ops::Range;
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const TOTAL_LEN: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    pub const FLAGS_FRAG: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC: Range<usize> = 12..16;
    pub const DST: Range<usize> = 16..20;
}

/// Length of an IPv4 header without options.
pub const MIN_HEADER_LEN: usize = field::DST.end;
/// Type of service UCARP sends with (IPTOS_LOWDELAY).
pub const TOS_LOWDELAY: u8 = 0x10;

const FLAG_DONT_FRAGMENT: u16 = 0x4000;
const FLAG_MORE_FRAGMENTS: u16 = 0x2000;
const FRAGMENT_OFFSET_MASK: u16 = 0x1fff;

/// A view over an IPv4 header. After [`Packet::new_checked`] succeeds every
/// accessor is in bounds, options and payload included.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checks; accessors may panic on a short one.
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps a buffer after checking the version, the header length and the
    /// total length against the bytes present.
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// The checks of [`Packet::new_checked`].
    pub fn check_len(&self) -> Result<(), ParseError> {
        let received = self.buffer.as_ref().len();
        if received < MIN_HEADER_LEN {
            return Err(ParseError::Truncated {
                layer: "IPv4",
                needed: MIN_HEADER_LEN,
                got: received,
            });
        }
        if self.version() != 4 {
            return Err(ParseError::BadIpVersion(self.version()));
        }
        let header = self.header_len();
        if header < MIN_HEADER_LEN || header > received {
            return Err(ParseError::BadIpHeaderLength(header));
        }
        let total = usize::from(self.total_len());
        if total < header || total > received {
            return Err(ParseError::BadIpTotalLength {
                total,
                header,
                received,
            });
        }
        Ok(())
    }

    fn bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    fn read_u16(&self, range: core::ops::Range<usize>) -> u16 {
        let b = &self.bytes()[range];
        u16::from_be_bytes([b[0], b[1]])
    }

    fn read_addr(&self, range: core::ops::Range<usize>) -> Ipv4Addr {
        let b = &self.bytes()[range];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// IP version nibble.
    pub fn version(&self) -> u8 {
        self.bytes()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.bytes()[field::VER_IHL] & 0x0f) * 4
    }

    /// Type of service byte.
    pub fn tos(&self) -> u8 {
        self.bytes()[field::TOS]
    }

    /// Total length of header and payload.
    pub fn total_len(&self) -> u16 {
        self.read_u16(field::TOTAL_LEN)
    }

    /// Identification.
    pub fn ident(&self) -> u16 {
        self.read_u16(field::IDENT)
    }

    /// Don't-fragment flag.
    pub fn dont_frag(&self) -> bool {
        self.read_u16(field::FLAGS_FRAG) & FLAG_DONT_FRAGMENT != 0
    }

    /// Whether this is a fragment (more fragments, or a non-zero offset).
    pub fn is_fragment(&self) -> bool {
        let flags = self.read_u16(field::FLAGS_FRAG);
        flags & FLAG_MORE_FRAGMENTS != 0 || flags & FRAGMENT_OFFSET_MASK != 0
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.bytes()[field::TTL]
    }

    /// Payload protocol.
    pub fn protocol(&self) -> u8 {
        self.bytes()[field::PROTOCOL]
    }

    /// Header checksum as stored.
    pub fn checksum(&self) -> u16 {
        self.read_u16(field::CHECKSUM)
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        self.read_addr(field::SRC)
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        self.read_addr(field::DST)
    }

    /// Whether the header checksum (options included) verifies.
    pub fn verify_checksum(&self) -> bool {
        checksum::verifies(&self.bytes()[..self.header_len()])
    }

    /// The payload, up to the total length (link-layer padding excluded).
    pub fn payload(&self) -> &[u8] {
        &self.bytes()[self.header_len()..usize::from(self.total_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// The payload after a header without options, for emitting.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let header = self.header_len();
        let total = usize::from(self.total_len());
        &mut self.buffer.as_mut()[header..total]
    }
}

/// The IPv4 header of a CARP datagram as a value: no options, never
/// fragmented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Repr {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address (the CARP group).
    pub dst: Ipv4Addr,
    /// Payload protocol.
    pub protocol: u8,
    /// Time to live.
    pub ttl: u8,
    /// Type of service.
    pub tos: u8,
    /// Identification.
    pub ident: u16,
    /// Don't-fragment flag.
    pub dont_frag: bool,
    /// Payload length in bytes.
    pub payload_len: usize,
}

impl Ipv4Repr {
    /// Writes a 20-byte header with its checksum into `buffer`, which must be
    /// at least [`MIN_HEADER_LEN`] long. The total length must fit in 16 bits,
    /// which the CARP payload always does.
    pub fn emit(&self, buffer: &mut [u8]) {
        let header = &mut buffer[..MIN_HEADER_LEN];
        let total = (MIN_HEADER_LEN + self.payload_len) as u16;
        let flags = if self.dont_frag {
            FLAG_DONT_FRAGMENT
        } else {
            0
        };
        header[field::VER_IHL] = 0x45;
        header[field::TOS] = self.tos;
        header[field::TOTAL_LEN].copy_from_slice(&total.to_be_bytes());
        header[field::IDENT].copy_from_slice(&self.ident.to_be_bytes());
        header[field::FLAGS_FRAG].copy_from_slice(&flags.to_be_bytes());
        header[field::TTL] = self.ttl;
        header[field::PROTOCOL] = self.protocol;
        header[field::CHECKSUM].copy_from_slice(&[0, 0]);
        header[field::SRC].copy_from_slice(&self.src.octets());
        header[field::DST].copy_from_slice(&self.dst.octets());
        let sum = checksum::checksum(header);
        header[field::CHECKSUM].copy_from_slice(&sum.to_be_bytes());
    }
}
