//! The Internet checksum (RFC 1071), used by both the IPv4 and CARP headers.

/// Ones'-complement sum of `data` as big-endian 16-bit words, folded to 16
/// bits but not complemented. An odd trailing byte is padded with zero.
pub fn ones_complement_sum(data: &[u8]) -> u16 {
    let mut words = data.chunks_exact(2);
    let mut sum: u32 = words
        .by_ref()
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    if let [last] = words.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The checksum to store in a header whose checksum field is zero.
pub fn checksum(data: &[u8]) -> u16 {
    !ones_complement_sum(data)
}

/// Whether `data`, checksum field included, verifies: the folded sum of a
/// correct header is all ones.
pub fn verifies(data: &[u8]) -> bool {
    ones_complement_sum(data) == 0xffff
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: sum of 0001 f203 f4f5 f6f7 is ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(ones_complement_sum(&data), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(ones_complement_sum(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
    }

    #[test]
    fn filled_checksum_verifies() {
        let mut data = [0x45, 0x00, 0x00, 0x1c, 0xab, 0xcd, 0, 0, 0x12, 0x34];
        let c = checksum(&data);
        data[6..8].copy_from_slice(&c.to_be_bytes());
        assert!(verifies(&data));
        data[0] ^= 1;
        assert!(!verifies(&data));
    }
}
