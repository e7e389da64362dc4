//! Property tests: emit→parse round trips over all field values, and no
//! input makes the parsers panic.

use std::net::{IpAddr, Ipv4Addr};

use carp_proto::auth::{Password, VirtualHostAuth};
use carp_proto::datagram::{AdvertDatagram, AdvertFrame};
use carp_proto::ethernet::MacAddr;
use carp_proto::{AdvertRepr, ReceiveFilter};
use proptest::prelude::*;

fn advert() -> impl Strategy<Value = AdvertRepr> {
    (
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
        any::<u64>(),
        any::<[u8; 20]>(),
    )
        .prop_map(
            |(vhid, advbase, advskew, demote, counter, digest)| AdvertRepr {
                vhid,
                advbase,
                advskew,
                demote,
                counter,
                digest,
            },
        )
}

fn ipv4() -> impl Strategy<Value = Ipv4Addr> {
    any::<u32>().prop_map(Ipv4Addr::from)
}

/// Every value of every one-byte field, exhaustively.
#[test]
fn every_byte_field_value_round_trips() {
    for value in 0..=255u8 {
        let base = AdvertRepr {
            vhid: 1,
            advbase: 1,
            advskew: 0,
            demote: 0,
            counter: u64::from(value) << 56 | u64::from(value),
            digest: [value; 20],
        };
        for repr in [
            AdvertRepr {
                vhid: value,
                ..base
            },
            AdvertRepr {
                advbase: value,
                ..base
            },
            AdvertRepr {
                advskew: value,
                ..base
            },
            AdvertRepr {
                demote: value,
                ..base
            },
        ] {
            assert_eq!(AdvertRepr::parse_bytes(&repr.to_bytes()), Ok(repr));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn advert_round_trips(repr in advert()) {
        prop_assert_eq!(AdvertRepr::parse_bytes(&repr.to_bytes()), Ok(repr));
    }

    #[test]
    fn frame_round_trips(repr in advert(), src in ipv4(), dst in ipv4(), ident in any::<u16>(),
                         eth_src in any::<[u8; 6]>(), eth_dst in any::<[u8; 6]>()) {
        let frame = AdvertFrame {
            eth_src: MacAddr(eth_src),
            eth_dst: MacAddr(eth_dst),
            datagram: AdvertDatagram { src, dst, ident, advert: repr },
        };
        prop_assert_eq!(AdvertFrame::parse(&frame.to_bytes()), Ok(frame));
    }

    #[test]
    fn signed_adverts_verify_and_others_do_not(vhid in 1..=255u8, counter in any::<u64>(),
                                                vip in ipv4(), password in "[ -~]{1,19}",
                                                other in any::<u64>()) {
        let auth = VirtualHostAuth::new(&Password::new(password.as_bytes()).unwrap(), vhid,
                                        &[IpAddr::V4(vip)]).unwrap();
        let advert = AdvertRepr { vhid, advbase: 1, advskew: 0, demote: 0, counter,
                                  digest: auth.sign(counter) };
        prop_assert_eq!(auth.verify(&advert), Ok(()));
        prop_assume!(other != counter);
        let replayed = AdvertRepr { counter: other, ..advert };
        prop_assert!(auth.verify(&replayed).is_err());
    }

    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
        let filter = ReceiveFilter {
            own_addrs: vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))],
            groups: vec![IpAddr::V4(carp_proto::DEFAULT_GROUP)],
            peers: Vec::new(),
            auth: VirtualHostAuth::new(&Password::new(b"pw").unwrap(), 1,
                                       &[IpAddr::V4(Ipv4Addr::new(10, 0, 0, 100))]).unwrap(),
        };
        let _ = filter.accept_frame(&bytes);
        let _ = filter.accept_datagram(&bytes);
        let _ = AdvertRepr::parse_bytes(&bytes);
        carp_proto::fuzzing::receive(&bytes);
    }

    /// Arbitrary bytes behind a valid IPv4 header still never panic, and
    /// reach the CARP checks.
    #[test]
    fn carp_payload_never_panics(payload in proptest::collection::vec(any::<u8>(), 0..64),
                                 ttl in prop_oneof![Just(255u8), any::<u8>()]) {
        let mut datagram = vec![0x45, 0x10, 0, 0, 0, 0, 0x40, 0, ttl, 112, 0, 0,
                                10, 0, 0, 2, 224, 0, 0, 18];
        let total = (20 + payload.len()) as u16;
        datagram[2..4].copy_from_slice(&total.to_be_bytes());
        let sum = carp_proto::checksum::checksum(&datagram);
        datagram[10..12].copy_from_slice(&sum.to_be_bytes());
        datagram.extend_from_slice(&payload);
        carp_proto::fuzzing::receive(&datagram);
    }
}
