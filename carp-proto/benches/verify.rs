//! Parse + verify of one advertisement against its floor: the two SHA-1 block
//! compressions HMAC-SHA1 needs for this message once the keyed state is
//! prepared. Run with `cargo bench -p carp-proto --bench verify`.
//!
//! A benchmark, not a test: it prints medians and the ratio; nothing asserts.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use carp_proto::auth::{Password, VirtualHostAuth};
use carp_proto::ReceiveFilter;

/// First frame of the vhid 42 capture (tests/data/ucarp-v42-love.hex).
const FRAME: &str = "01005e00001200005e00002a080045100038b24a4000ff70dde60a010101e0000012212a00070001a2cf2b7c0b535c34f41d639616c6818cc919288828e245e341898b028c00";

const SHA1_IV: [u32; 5] = [
    0x6745_2301,
    0xefcd_ab89,
    0x98ba_dcfe,
    0x1032_5476,
    0xc3d2_e1f0,
];
/// `cargo bench` passes `--bench`; `cargo test --all-targets` runs this
/// binary without it, and then one short round is enough to check it works.
fn measuring() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Median nanoseconds per call of `f` over 21 rounds of 200,000 calls.
fn median_ns(mut f: impl FnMut()) -> f64 {
    let (rounds, iterations) = if measuring() {
        (21, 200_000u32)
    } else {
        (1, 1_000)
    };
    let mut samples: Vec<f64> = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iterations {
                f();
            }
            start.elapsed().as_nanos() as f64 / f64::from(iterations)
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[rounds / 2]
}

fn main() {
    let frame: Vec<u8> = (0..FRAME.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&FRAME[i..i + 2], 16).unwrap())
        .collect();
    let filter = ReceiveFilter {
        own_addrs: vec![IpAddr::V4(Ipv4Addr::new(10, 1, 1, 2))],
        groups: vec![IpAddr::V4(carp_proto::DEFAULT_GROUP)],
        peers: Vec::new(),
        auth: VirtualHostAuth::new(
            &Password::new(b"love").unwrap(),
            42,
            &[IpAddr::V4(Ipv4Addr::new(10, 1, 1, 252))],
        )
        .unwrap(),
    };
    assert!(filter.accept_frame(&frame).is_ok(), "vector must verify");

    // The floor: HMAC's two remaining compressions, the second hashing the
    // first's output as the outer hash does (so they cannot overlap).
    let floor = median_ns(|| {
        let mut inner = black_box(SHA1_IV);
        let mut outer = black_box(SHA1_IV);
        sha1::block_api::compress(&mut inner, &[black_box([0x36u8; 64])]);
        let mut block = black_box([0x5cu8; 64]);
        for (chunk, word) in block.chunks_exact_mut(4).zip(inner) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        sha1::block_api::compress(&mut outer, &[block]);
        black_box(outer);
    });
    let receive = median_ns(|| {
        black_box(filter.accept_frame(black_box(&frame))).ok();
    });
    let datagram = median_ns(|| {
        black_box(filter.accept_datagram(black_box(&frame[14..]))).ok();
    });
    let verify_only = {
        let advert = filter.accept_frame(&frame).unwrap().advert;
        median_ns(|| {
            black_box(filter.auth.verify(black_box(&advert))).ok();
        })
    };
    println!("two chained SHA-1 compressions (floor): {floor:.1} ns");
    println!(
        "verify only:                    {verify_only:.1} ns ({:.2}x floor)",
        verify_only / floor
    );
    println!(
        "parse + verify (IPv4 datagram):  {datagram:.1} ns ({:.2}x floor)",
        datagram / floor
    );
    println!(
        "parse + verify (whole frame):   {receive:.1} ns ({:.2}x floor)",
        receive / floor
    );
}
