//! The gratuitous ARP frame a new master broadcasts so that switches and
//! neighbours learn where the virtual address now lives.
//!
//! As UCARP sends it: Ethernet broadcast from the NIC's own MAC, an ARP
//! request (op 1) whose sender and target are both (NIC MAC, virtual IP).

use std::net::Ipv4Addr;

use crate::ethernet::{self, EthernetRepr, MacAddr};

/// Length of the frame: Ethernet header plus the 28-byte ARP body (the NIC
/// pads it to the 60-byte minimum).
pub const FRAME_LEN: usize = ethernet::HEADER_LEN + 28;

const HTYPE_ETHERNET: u16 = 1;
const OPER_REQUEST: u16 = 1;

/// A gratuitous ARP announcement of `ip` at `mac`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GratuitousArp {
    /// The interface's own MAC.
    pub mac: MacAddr,
    /// The virtual address being announced.
    pub ip: Ipv4Addr,
}

impl GratuitousArp {
    /// The whole Ethernet frame.
    pub fn to_frame(&self) -> [u8; FRAME_LEN] {
        let mut frame = [0u8; FRAME_LEN];
        EthernetRepr {
            dst: MacAddr::BROADCAST,
            src: self.mac,
            ethertype: ethernet::ETHERTYPE_ARP,
        }
        .emit(&mut frame);
        let body = &mut frame[ethernet::HEADER_LEN..];
        body[0..2].copy_from_slice(&HTYPE_ETHERNET.to_be_bytes());
        body[2..4].copy_from_slice(&ethernet::ETHERTYPE_IPV4.to_be_bytes());
        body[4] = 6;
        body[5] = 4;
        body[6..8].copy_from_slice(&OPER_REQUEST.to_be_bytes());
        body[8..14].copy_from_slice(&self.mac.0);
        body[14..18].copy_from_slice(&self.ip.octets());
        body[18..24].copy_from_slice(&self.mac.0);
        body[24..28].copy_from_slice(&self.ip.octets());
        frame
    }

    /// Reads a gratuitous ARP back from a frame, for tests and captures.
    /// Returns `None` for anything that is not one.
    pub fn from_frame(frame: &[u8]) -> Option<Self> {
        let (eth, body) = EthernetRepr::parse(frame).ok()?;
        if eth.ethertype != ethernet::ETHERTYPE_ARP || body.len() < 28 {
            return None;
        }
        let fixed = [0, 1, 8, 0, 6, 4, 0, 1];
        if body[0..8] != fixed || body[8..18] != body[18..28] {
            return None;
        }
        let mac = MacAddr(body[8..14].try_into().ok()?);
        let ip = Ipv4Addr::new(body[14], body[15], body[16], body[17]);
        (eth.src == mac).then_some(GratuitousArp { mac, ip })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_layout() {
        let arp = GratuitousArp {
            mac: MacAddr([0x02, 0x11, 0x22, 0x33, 0x44, 0x55]),
            ip: Ipv4Addr::new(10, 1, 1, 252),
        };
        let expected: [u8; 42] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x11, 0x22, 0x33, 0x44, 0x55, 0x08, 0x06,
            0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x11, 0x22, 0x33, 0x44, 0x55, 10,
            1, 1, 252, 0x02, 0x11, 0x22, 0x33, 0x44, 0x55, 10, 1, 1, 252,
        ];
        assert_eq!(arp.to_frame(), expected);
        assert_eq!(GratuitousArp::from_frame(&expected), Some(arp));
        assert_eq!(GratuitousArp::from_frame(&expected[..41]), None);
    }
}
