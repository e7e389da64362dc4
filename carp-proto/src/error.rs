use thiserror::Error;

/// Why bytes received from the network are not a well-formed CARP
/// advertisement. One variant per cause, so that a receiver can count them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ParseError {
    /// Fewer bytes than the header being read needs.
    #[error("truncated: {layer} needs {needed} bytes, got {got}")]
    Truncated {
        /// Which header was being read.
        layer: &'static str,
        /// Bytes that header needs.
        needed: usize,
        /// Bytes that were there.
        got: usize,
    },
    /// An Ethernet frame that does not carry IPv4.
    #[error("not IPv4: ethertype {0:#06x}")]
    NotIpv4Frame(u16),
    /// An Ethernet frame that does not carry IPv6.
    #[error("not IPv6: ethertype {0:#06x}")]
    NotIpv6Frame(u16),
    /// The IP version nibble is not the one of the header being read.
    #[error("unexpected IP version {0}")]
    BadIpVersion(u8),
    /// The IPv6 payload length runs past the bytes received.
    #[error("bad IPv6 payload length {payload} (received {received} bytes with the header)")]
    BadIpv6PayloadLength {
        /// The payload length field.
        payload: usize,
        /// Bytes actually received, header included.
        received: usize,
    },
    /// An IPv6 extension header (or a fragment): CARP advertisements are
    /// sent without any.
    #[error("IPv6 extension header {0} (CARP adverts carry none)")]
    ExtensionHeader(u8),
    /// IPv6 hop limit other than 255: the packet was routed from elsewhere.
    #[error("hop limit {0}, expected 255")]
    BadHopLimit(u8),
    /// The IPv4 header length (IHL) is below 5 words or beyond the buffer.
    #[error("bad IPv4 header length {0} bytes")]
    BadIpHeaderLength(usize),
    /// The IPv4 total length is shorter than its header or longer than the
    /// bytes received.
    #[error("bad IPv4 total length {total} (header {header}, received {received})")]
    BadIpTotalLength {
        /// The total length field.
        total: usize,
        /// The header length.
        header: usize,
        /// Bytes actually received.
        received: usize,
    },
    /// A fragment: CARP advertisements are never fragmented.
    #[error("IPv4 fragment")]
    Fragmented,
    /// Not IP protocol 112.
    #[error("IP protocol {0}, expected 112 (CARP)")]
    NotCarp(u8),
    /// TTL other than 255: the packet was routed from elsewhere.
    #[error("TTL {0}, expected 255")]
    BadTtl(u8),
    /// IPv4 header checksum does not verify.
    #[error("bad IPv4 header checksum")]
    BadIpChecksum,
    /// The CARP payload is not exactly the 36-byte header.
    #[error("CARP payload of {0} bytes, expected 36")]
    BadCarpLength(usize),
    /// CARP version other than 2.
    #[error("CARP version {0}, expected 2")]
    BadVersion(u8),
    /// CARP message type other than 1 (advertisement).
    #[error("CARP type {0}, expected 1 (advertisement)")]
    BadType(u8),
    /// Authentication length other than 7 words.
    #[error("CARP authlen {0}, expected 7")]
    BadAuthLen(u8),
    /// CARP header checksum does not verify.
    #[error("bad CARP checksum")]
    BadCarpChecksum,
}

impl ParseError {
    /// A stable short name for counters and rate-limited logs.
    pub fn label(&self) -> &'static str {
        match self {
            ParseError::Truncated { .. } => "truncated",
            ParseError::NotIpv4Frame(_) => "not_ipv4",
            ParseError::NotIpv6Frame(_) => "not_ipv6",
            ParseError::BadIpVersion(_) => "bad_ip_version",
            ParseError::BadIpv6PayloadLength { .. } => "bad_ipv6_payload_length",
            ParseError::ExtensionHeader(_) => "extension_header",
            ParseError::BadHopLimit(_) => "bad_hop_limit",
            ParseError::BadIpHeaderLength(_) => "bad_ip_header_length",
            ParseError::BadIpTotalLength { .. } => "bad_ip_total_length",
            ParseError::Fragmented => "fragmented",
            ParseError::NotCarp(_) => "not_carp",
            ParseError::BadTtl(_) => "bad_ttl",
            ParseError::BadIpChecksum => "bad_ip_checksum",
            ParseError::BadCarpLength(_) => "bad_carp_length",
            ParseError::BadVersion(_) => "bad_version",
            ParseError::BadType(_) => "bad_type",
            ParseError::BadAuthLen(_) => "bad_authlen",
            ParseError::BadCarpChecksum => "bad_carp_checksum",
        }
    }
}
