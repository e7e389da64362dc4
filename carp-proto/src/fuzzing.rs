//! The fuzz body, shared by the cargo-fuzz target and the stable test that
//! replays the committed corpus, so both exercise the same code.
//!
//! Besides "never panics", it checks two properties on every input: whatever
//! parses re-emits to the same CARP bytes, and nothing but a correctly signed
//! advertisement authenticates.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::auth::{Password, VirtualHostAuth};
use crate::carp::{self, AdvertRepr};
use crate::datagram::{AdvertDatagram, AdvertDatagram6, AdvertFrame, AdvertFrame6};
use crate::ethernet;
use crate::receive::ReceiveFilter;

/// The virtual hosts of the committed test vectors and IPv6 seeds:
/// (vhid, password, vip).
const VECTOR_HOSTS: [(u8, &str, IpAddr); 5] = [
    (1, "a", IpAddr::V4(Ipv4Addr::new(192, 168, 50, 10))),
    (
        255,
        "nineteen-chars-pass",
        IpAddr::V4(Ipv4Addr::new(172, 31, 255, 254)),
    ),
    (42, "love", IpAddr::V4(Ipv4Addr::new(10, 1, 1, 252))),
    (
        7,
        "love",
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x25)),
    ),
    (
        9,
        "secret",
        IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 9)),
    ),
];

/// An IPv6 seed for the corpus: a signed advertisement from `src` for the
/// vector host `index`, as a whole frame.
pub fn ipv6_seed(index: usize, src: Ipv6Addr, counter: u64) -> Vec<u8> {
    let (vhid, password, vip) = VECTOR_HOSTS[index];
    let auth = VirtualHostAuth::new(
        &Password::new(password.as_bytes()).expect("vector password"),
        vhid,
        &[vip],
    )
    .expect("vector host");
    AdvertFrame6 {
        eth_src: ethernet::MacAddr([2, 0, 0, 0, 0, vhid]),
        eth_dst: ethernet::MacAddr::ipv6_multicast(crate::DEFAULT_GROUP6),
        datagram: AdvertDatagram6 {
            src,
            dst: crate::DEFAULT_GROUP6,
            advert: AdvertRepr {
                vhid,
                advbase: 1,
                advskew: 0,
                demote: 0,
                counter,
                digest: auth.sign(counter),
            },
        },
    }
    .to_bytes()
    .to_vec()
}

/// Built once: preparing three keyed HMAC states per input would cost more
/// than the receive path being fuzzed.
fn filters() -> &'static [ReceiveFilter] {
    static FILTERS: std::sync::OnceLock<Vec<ReceiveFilter>> = std::sync::OnceLock::new();
    FILTERS.get_or_init(|| {
        VECTOR_HOSTS
            .iter()
            .map(|&(vhid, password, vip)| ReceiveFilter {
                own_addrs: Vec::new(),
                groups: vec![crate::DEFAULT_GROUP.into(), crate::DEFAULT_GROUP6.into()],
                peers: Vec::new(),
                auth: VirtualHostAuth::new(
                    &Password::new(password.as_bytes()).expect("vector password"),
                    vhid,
                    &[vip],
                )
                .expect("vector host"),
            })
            .collect()
    })
}

/// Runs the whole receive path on `data`, as a frame and as a datagram of
/// either family, and the neighbour advertisement reader. Panics only if a
/// property is broken.
pub fn receive(data: &[u8]) {
    let filters = filters();
    if let Ok(frame) = AdvertFrame::parse(data) {
        let emitted = frame.to_bytes();
        let carp_at = ethernet::HEADER_LEN + crate::ipv4::MIN_HEADER_LEN;
        assert_eq!(
            &emitted[..ethernet::HEADER_LEN],
            &data[..ethernet::HEADER_LEN]
        );
        check_carp_round_trip(&frame.datagram.advert);
        assert_eq!(
            AdvertRepr::parse_bytes(&emitted[carp_at..]),
            Ok(frame.datagram.advert)
        );
    }
    if let Ok(datagram) = AdvertDatagram::parse(data) {
        check_carp_round_trip(&datagram.advert);
        let emitted = datagram.to_bytes();
        assert_eq!(AdvertDatagram::parse(&emitted), Ok(datagram));
    }
    if let Ok(frame) = AdvertFrame6::parse(data) {
        check_carp_round_trip(&frame.datagram.advert);
        assert_eq!(AdvertFrame6::parse(&frame.to_bytes()), Ok(frame));
    }
    if let Ok(datagram) = AdvertDatagram6::parse(data) {
        check_carp_round_trip(&datagram.advert);
        assert_eq!(AdvertDatagram6::parse(&datagram.to_bytes()), Ok(datagram));
    }
    if let Some(advert) = crate::ndp::NeighborAdvert::from_frame(data) {
        assert_eq!(
            crate::ndp::NeighborAdvert::from_frame(&advert.to_frame()),
            Some(advert)
        );
    }
    for filter in filters {
        let results = [
            filter.accept_frame(data),
            filter.accept_datagram(data),
            filter.accept_frame6(data),
            filter.accept_datagram6(data),
        ];
        for accepted in results.into_iter().flatten() {
            // Whatever authenticates must be exactly what we would sign
            // (or, with link-local addresses, OpenBSD's other digest).
            let advert = accepted.advert;
            assert_eq!(advert.vhid, filter.auth.vhid());
            let ours = filter.auth.sign(advert.counter);
            let other = filter.auth.sign_with_link_local(advert.counter);
            assert!(ours == advert.digest || other == Some(advert.digest));
        }
    }
}

fn check_carp_round_trip(advert: &AdvertRepr) {
    let bytes = advert.to_bytes();
    let reparsed = AdvertRepr::parse(&carp::Packet::new_checked(&bytes[..]).expect("36 bytes"));
    assert_eq!(reparsed, Ok(*advert));
}
