//! The Internet checksum (RFC 1071), used by both the IPv4 and CARP headers.

/// Ones'-complement sum of `data` as big-endian 16-bit words, folded to 16
/// bits but not complemented. An odd trailing byte is padded with zero.
///
/// Adds 32-bit words into a 64-bit accumulator (RFC 1071 §2(B): the sum is
/// independent of word size) and folds once at the end.
pub fn ones_complement_sum(data: &[u8]) -> u16 {
    let mut words = data.chunks_exact(4);
    let mut sum: u64 = words
        .by_ref()
        .map(|w| u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]])))
        .sum();
    let rest = words.remainder();
    let mut pairs = rest.chunks_exact(2);
    sum += pairs
        .by_ref()
        .map(|p| u64::from(u16::from_be_bytes([p[0], p[1]])))
        .sum::<u64>();
    if let [last] = pairs.remainder() {
        sum += u64::from(*last) << 8;
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

    /// The word-size trick against the plain 16-bit definition.
    #[test]
    fn matches_sixteen_bit_definition() {
        let data: Vec<u8> = (0..=255u8).map(|i| i.wrapping_mul(97) ^ 0x5a).collect();
        for len in 0..data.len() {
            let slice = &data[..len];
            let mut plain: u32 = 0;
            for pair in slice.chunks(2) {
                let hi = u32::from(pair[0]) << 8;
                plain += hi | pair.get(1).map_or(0, |&b| u32::from(b));
            }
            while plain > 0xffff {
                plain = (plain & 0xffff) + (plain >> 16);
            }
            assert_eq!(ones_complement_sum(slice), plain as u16, "len {len}");
        }
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
