//! The CARP v2 advertisement header.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version| Type  |     VHID      |    AdvSkew    |    AuthLen    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |    Demote     |    AdvBase    |           Checksum            |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                     Counter (64 bits)                         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                 HMAC-SHA1 digest (160 bits)                   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! [`Packet`] is a view over a byte buffer; once [`Packet::new_checked`] has
//! succeeded no accessor can panic. [`AdvertRepr`] is the plain value the rest
//! of the project works with.

use crate::checksum;
use crate::ParseError;

/// Byte ranges of the header fields.
mod field {
    use core::ops::Range;
    pub const VERSION_TYPE: usize = 0;
    pub const VHID: usize = 1;
    pub const ADVSKEW: usize = 2;
    pub const AUTHLEN: usize = 3;
    pub const DEMOTE: usize = 4;
    pub const ADVBASE: usize = 5;
    pub const CHECKSUM: Range<usize> = 6..8;
    pub const COUNTER: Range<usize> = 8..16;
    pub const DIGEST: Range<usize> = 16..36;
}

/// Length of a CARP advertisement; nothing follows it on the wire.
pub const HEADER_LEN: usize = field::DIGEST.end;
/// The only CARP version.
pub const VERSION: u8 = 2;
/// The only CARP message type: advertisement.
pub const TYPE_ADVERTISEMENT: u8 = 1;
/// Counter plus digest, in 32-bit words.
pub const AUTH_LEN: u8 = 7;

/// An HMAC-SHA1 digest as carried in an advertisement.
pub type Digest = [u8; 20];

/// A read (and, for mutable buffers, write) view over a CARP header.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking its length: accessors may panic on a
    /// short buffer. Use [`Packet::new_checked`] on untrusted input.
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps a buffer that must be exactly one header long; after this no
    /// accessor can panic.
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the buffer holds one header and nothing more.
    pub fn check_len(&self) -> Result<(), ParseError> {
        match self.buffer.as_ref().len() {
            len if len < HEADER_LEN => Err(ParseError::Truncated {
                layer: "CARP",
                needed: HEADER_LEN,
                got: len,
            }),
            HEADER_LEN => Ok(()),
            len => Err(ParseError::BadCarpLength(len)),
        }
    }

    /// Consumes the view, returning the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Protocol version (high nibble of the first byte).
    pub fn version(&self) -> u8 {
        self.bytes()[field::VERSION_TYPE] >> 4
    }

    /// Message type (low nibble of the first byte).
    pub fn msg_type(&self) -> u8 {
        self.bytes()[field::VERSION_TYPE] & 0x0f
    }

    /// Virtual host identifier.
    pub fn vhid(&self) -> u8 {
        self.bytes()[field::VHID]
    }

    /// Skew added to the advertisement interval, in 1/256 s.
    pub fn advskew(&self) -> u8 {
        self.bytes()[field::ADVSKEW]
    }

    /// Authentication data length in 32-bit words.
    pub fn auth_len(&self) -> u8 {
        self.bytes()[field::AUTHLEN]
    }

    /// OpenBSD's demotion counter (UCARP's "pad", always 0 there).
    pub fn demote(&self) -> u8 {
        self.bytes()[field::DEMOTE]
    }

    /// Whole seconds of the advertisement interval.
    pub fn advbase(&self) -> u8 {
        self.bytes()[field::ADVBASE]
    }

    /// The checksum field as stored.
    pub fn checksum(&self) -> u16 {
        let b = &self.bytes()[field::CHECKSUM];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// The 64-bit replay counter, network byte order on the wire.
    pub fn counter(&self) -> u64 {
        let mut raw = [0u8; 8];
        raw.copy_from_slice(&self.bytes()[field::COUNTER]);
        u64::from_be_bytes(raw)
    }

    /// The HMAC-SHA1 digest.
    pub fn digest(&self) -> Digest {
        let mut digest = [0u8; 20];
        digest.copy_from_slice(&self.bytes()[field::DIGEST]);
        digest
    }

    /// Whether the checksum over the whole header verifies.
    pub fn verify_checksum(&self) -> bool {
        checksum::verifies(&self.bytes()[..HEADER_LEN])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn bytes_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    /// Sets version and type.
    pub fn set_version_type(&mut self, version: u8, msg_type: u8) {
        self.bytes_mut()[field::VERSION_TYPE] = (version << 4) | (msg_type & 0x0f);
    }

    /// Sets the virtual host identifier.
    pub fn set_vhid(&mut self, value: u8) {
        self.bytes_mut()[field::VHID] = value;
    }

    /// Sets the skew.
    pub fn set_advskew(&mut self, value: u8) {
        self.bytes_mut()[field::ADVSKEW] = value;
    }

    /// Sets the authentication length.
    pub fn set_auth_len(&mut self, value: u8) {
        self.bytes_mut()[field::AUTHLEN] = value;
    }

    /// Sets the demotion counter.
    pub fn set_demote(&mut self, value: u8) {
        self.bytes_mut()[field::DEMOTE] = value;
    }

    /// Sets the whole seconds of the interval.
    pub fn set_advbase(&mut self, value: u8) {
        self.bytes_mut()[field::ADVBASE] = value;
    }

    /// Sets the checksum field as given.
    pub fn set_checksum(&mut self, value: u16) {
        self.bytes_mut()[field::CHECKSUM].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the counter.
    pub fn set_counter(&mut self, value: u64) {
        self.bytes_mut()[field::COUNTER].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the digest.
    pub fn set_digest(&mut self, value: &Digest) {
        self.bytes_mut()[field::DIGEST].copy_from_slice(value);
    }

    /// Computes and stores the checksum over the header.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let value = checksum::checksum(&self.bytes_mut()[..HEADER_LEN]);
        self.set_checksum(value);
    }
}

/// A CARP advertisement as a plain value: every field that carries meaning.
///
/// Version, type and authlen are constants of the protocol; [`AdvertRepr::parse`]
/// rejects any other value, [`AdvertRepr::emit`] writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AdvertRepr {
    /// Virtual host identifier, 1..=255 in practice.
    pub vhid: u8,
    /// Whole seconds of the sender's advertisement interval.
    pub advbase: u8,
    /// Sender's skew, 1/256 s added to the interval.
    pub advskew: u8,
    /// OpenBSD demotion counter; 0 from UCARP.
    pub demote: u8,
    /// Replay counter covered by the digest.
    pub counter: u64,
    /// HMAC-SHA1 over the virtual host's identity and the counter.
    pub digest: Digest,
}

impl AdvertRepr {
    /// Parses a checked view, validating version, type, authlen and checksum
    /// (in that order: UCARP looks at the version before the checksum).
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Self, ParseError> {
        packet.check_len()?;
        if packet.version() != VERSION {
            return Err(ParseError::BadVersion(packet.version()));
        }
        if packet.msg_type() != TYPE_ADVERTISEMENT {
            return Err(ParseError::BadType(packet.msg_type()));
        }
        if packet.auth_len() != AUTH_LEN {
            return Err(ParseError::BadAuthLen(packet.auth_len()));
        }
        if !packet.verify_checksum() {
            return Err(ParseError::BadCarpChecksum);
        }
        Ok(AdvertRepr {
            vhid: packet.vhid(),
            advbase: packet.advbase(),
            advskew: packet.advskew(),
            demote: packet.demote(),
            counter: packet.counter(),
            digest: packet.digest(),
        })
    }

    /// Parses an advertisement from exactly [`HEADER_LEN`] bytes.
    pub fn parse_bytes(bytes: &[u8]) -> Result<Self, ParseError> {
        Self::parse(&Packet::new_checked(bytes)?)
    }

    /// Bytes [`AdvertRepr::emit`] writes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header, checksum included, into a view whose buffer is at
    /// least [`HEADER_LEN`] long.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_version_type(VERSION, TYPE_ADVERTISEMENT);
        packet.set_vhid(self.vhid);
        packet.set_advskew(self.advskew);
        packet.set_auth_len(AUTH_LEN);
        packet.set_demote(self.demote);
        packet.set_advbase(self.advbase);
        packet.set_counter(self.counter);
        packet.set_digest(&self.digest);
        packet.fill_checksum();
    }

    /// The header as bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut buffer = [0u8; HEADER_LEN];
        self.emit(&mut Packet::new_unchecked(&mut buffer[..]));
        buffer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CARP part of the first frame of the vhid 42 capture.
    const PACKET: [u8; 36] = [
        0x21, 0x2a, 0x00, 0x07, 0x00, 0x01, 0xa2, 0xcf, 0x2b, 0x7c, 0x0b, 0x53, 0x5c, 0x34, 0xf4,
        0x1d, 0x63, 0x96, 0x16, 0xc6, 0x81, 0x8c, 0xc9, 0x19, 0x28, 0x88, 0x28, 0xe2, 0x45, 0xe3,
        0x41, 0x89, 0x8b, 0x02, 0x8c, 0x00,
    ];

    fn repr() -> AdvertRepr {
        AdvertRepr {
            vhid: 42,
            advbase: 1,
            advskew: 0,
            demote: 0,
            counter: 0x2b7c_0b53_5c34_f41d,
            digest: PACKET[16..36].try_into().unwrap(),
        }
    }

    #[test]
    fn deconstruct() {
        let packet = Packet::new_checked(&PACKET[..]).unwrap();
        assert_eq!(packet.version(), 2);
        assert_eq!(packet.msg_type(), 1);
        assert_eq!(packet.vhid(), 42);
        assert_eq!(packet.advskew(), 0);
        assert_eq!(packet.auth_len(), 7);
        assert_eq!(packet.demote(), 0);
        assert_eq!(packet.advbase(), 1);
        assert_eq!(packet.checksum(), 0xa2cf);
        assert_eq!(packet.counter(), 0x2b7c_0b53_5c34_f41d);
        assert!(packet.verify_checksum());
    }

    #[test]
    fn construct() {
        let mut bytes = [0xa5u8; 36];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_version_type(2, 1);
        packet.set_vhid(42);
        packet.set_advskew(0);
        packet.set_auth_len(7);
        packet.set_demote(0);
        packet.set_advbase(1);
        packet.set_counter(0x2b7c_0b53_5c34_f41d);
        packet.set_digest(&PACKET[16..36].try_into().unwrap());
        packet.fill_checksum();
        assert_eq!(bytes, PACKET);
    }

    #[test]
    fn parse() {
        assert_eq!(AdvertRepr::parse_bytes(&PACKET), Ok(repr()));
    }

    #[test]
    fn emit() {
        let mut bytes = [0xa5u8; 36];
        repr().emit(&mut Packet::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes, PACKET);
        assert_eq!(repr().to_bytes(), PACKET);
    }

    #[test]
    fn truncated() {
        assert_eq!(
            AdvertRepr::parse_bytes(&PACKET[..35]),
            Err(ParseError::Truncated {
                layer: "CARP",
                needed: 36,
                got: 35
            })
        );
    }

    #[test]
    fn trailing_bytes() {
        let mut long = PACKET.to_vec();
        long.push(0);
        assert_eq!(
            AdvertRepr::parse_bytes(&long),
            Err(ParseError::BadCarpLength(37))
        );
    }

    #[test]
    fn bad_version() {
        let mut bytes = PACKET;
        bytes[0] = 0x31;
        assert_eq!(
            AdvertRepr::parse_bytes(&bytes),
            Err(ParseError::BadVersion(3))
        );
    }

    #[test]
    fn bad_type() {
        let mut bytes = PACKET;
        bytes[0] = 0x22;
        assert_eq!(AdvertRepr::parse_bytes(&bytes), Err(ParseError::BadType(2)));
    }

    #[test]
    fn bad_authlen() {
        let mut bytes = PACKET;
        bytes[3] = 6;
        assert_eq!(
            AdvertRepr::parse_bytes(&bytes),
            Err(ParseError::BadAuthLen(6))
        );
    }

    #[test]
    fn bad_checksum() {
        let mut bytes = PACKET;
        bytes[20] ^= 0x40;
        assert_eq!(
            AdvertRepr::parse_bytes(&bytes),
            Err(ParseError::BadCarpChecksum)
        );
    }
}
