//! Replays the committed fuzz corpus (fuzz/corpus/receive) through the same
//! body the fuzz target runs, so plain `cargo test` on stable catches a
//! regression on any input the fuzzer once found interesting.

use std::path::Path;

#[test]
fn replay_receive_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/receive");
    let mut inputs = 0;
    let mut accepted_frames = 0;
    let mut ipv6_frames = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz corpus directory") {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        carp_proto::fuzzing::receive(&data);
        if carp_proto::datagram::AdvertFrame::parse(&data).is_ok() {
            accepted_frames += 1;
        }
        if carp_proto::datagram::AdvertFrame6::parse(&data).is_ok() {
            ipv6_frames += 1;
        }
        inputs += 1;
    }
    // The seeds alone are 13 captured frames and their 13 datagrams.
    assert!(inputs >= 26, "corpus has only {inputs} inputs");
    assert!(
        accepted_frames >= 13,
        "seed frames no longer parse: {accepted_frames}"
    );
    // The IPv6 seeds (fuzz/corpus/receive/ipv6-*): two valid frames.
    assert!(ipv6_frames >= 2, "IPv6 seed frames no longer parse");
}

/// The IPv6 seeds were written by a script from the byte layout in
/// docs/PROTOCOL.md; they must be what the codec accepts and signs.
#[test]
fn ipv6_seeds_verify_and_the_bad_ones_are_refused() {
    use carp_proto::ParseError;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/receive");
    let read = |name: &str| std::fs::read(dir.join(name)).expect(name);
    let frame = read("ipv6-v7-frame");
    let src = "fe80::1".parse().unwrap();
    assert_eq!(
        frame,
        carp_proto::fuzzing::ipv6_seed(3, src, 0x0102_0304_0506_0708)
    );
    // The link-local seed carries the digest over its link-local virtual
    // address (OpenBSD's second digest), which we accept but do not send.
    let linklocal = carp_proto::datagram::AdvertFrame6::parse(&read("ipv6-v9-linklocal-frame"))
        .expect("link-local seed parses");
    let ours = carp_proto::fuzzing::ipv6_seed(4, "fe80::2".parse().unwrap(), 5);
    let ours = carp_proto::datagram::AdvertFrame6::parse(&ours).unwrap();
    assert_ne!(
        linklocal.datagram.advert.digest,
        ours.datagram.advert.digest
    );
    let auth = carp_proto::VirtualHostAuth::new(
        &carp_proto::Password::new(b"secret").unwrap(),
        9,
        &["fe80::9".parse().unwrap()],
    )
    .unwrap();
    assert_eq!(auth.verify(&linklocal.datagram.advert), Ok(()));
    let parse = |name: &str| carp_proto::datagram::AdvertFrame6::parse(&read(name));
    assert_eq!(
        parse("ipv6-v7-hoplimit64"),
        Err(ParseError::BadHopLimit(64))
    );
    assert_eq!(
        parse("ipv6-v7-hop-by-hop"),
        Err(ParseError::ExtensionHeader(0))
    );
    assert!(matches!(
        parse("ipv6-v7-truncated"),
        Err(ParseError::BadIpv6PayloadLength { .. })
    ));
    assert!(carp_proto::ndp::NeighborAdvert::from_frame(&read("ipv6-neighbor-advert")).is_some());
}
