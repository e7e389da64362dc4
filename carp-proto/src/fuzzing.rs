//! The fuzz body, shared by the cargo-fuzz target and the stable test that
//! replays the committed corpus, so both exercise the same code.
//!
//! Besides "never panics", it checks two properties on every input: whatever
//! parses re-emits to the same CARP bytes, and nothing but a correctly signed
//! advertisement authenticates.

use std::net::{IpAddr, Ipv4Addr};

use crate::auth::{Password, VirtualHostAuth};
use crate::carp::{self, AdvertRepr};
use crate::datagram::{AdvertDatagram, AdvertFrame};
use crate::ethernet;
use crate::receive::ReceiveFilter;

/// The virtual hosts of the committed test vectors: (vhid, password, vip).
const VECTOR_HOSTS: [(u8, &str, Ipv4Addr); 3] = [
    (1, "a", Ipv4Addr::new(192, 168, 50, 10)),
    (255, "nineteen-chars-pass", Ipv4Addr::new(172, 31, 255, 254)),
    (42, "love", Ipv4Addr::new(10, 1, 1, 252)),
];

/// Built once: preparing three keyed HMAC states per input would cost more
/// than the receive path being fuzzed.
fn filters() -> &'static [ReceiveFilter] {
    static FILTERS: std::sync::OnceLock<Vec<ReceiveFilter>> = std::sync::OnceLock::new();
    FILTERS.get_or_init(|| {
        VECTOR_HOSTS
            .iter()
            .map(|&(vhid, password, vip)| ReceiveFilter {
                own_addr: Ipv4Addr::UNSPECIFIED,
                group: crate::DEFAULT_GROUP,
                auth: VirtualHostAuth::new(
                    &Password::new(password.as_bytes()).expect("vector password"),
                    vhid,
                    &[IpAddr::V4(vip)],
                )
                .expect("vector host"),
            })
            .collect()
    })
}

/// Runs the whole receive path on `data`, as a frame and as a datagram.
/// Panics only if a property is broken.
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
    for filter in filters {
        for accepted in [filter.accept_frame(data), filter.accept_datagram(data)]
            .into_iter()
            .flatten()
        {
            // Whatever authenticates must be exactly what we would sign.
            let advert = accepted.advert;
            assert_eq!(advert.vhid, filter.auth.vhid());
            assert_eq!(filter.auth.sign(advert.counter), advert.digest);
        }
    }
}

fn check_carp_round_trip(advert: &AdvertRepr) {
    let bytes = advert.to_bytes();
    let reparsed = AdvertRepr::parse(&carp::Packet::new_checked(&bytes[..]).expect("36 bytes"));
    assert_eq!(reparsed, Ok(*advert));
}
