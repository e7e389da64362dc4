//! Reading a classic pcap file (as tcpdump `-w` writes it, little-endian).

/// The captured frames, in order.
pub fn frames(pcap: &[u8]) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    // 24-byte global header, then 16-byte record headers.
    let mut at = 24;
    while at + 16 <= pcap.len() {
        let caplen = u32::from_le_bytes(pcap[at + 8..at + 12].try_into().unwrap()) as usize;
        let Some(frame) = pcap.get(at + 16..at + 16 + caplen) else {
            break;
        };
        frames.push(frame.to_vec());
        at += 16 + caplen;
    }
    frames
}
