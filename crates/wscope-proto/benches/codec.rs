//! Throughput of the hot paths of reading frames: unmasking (against a plain
//! memcpy of the same buffer, the ceiling) and header decoding, plus
//! permessage-deflate for scale. Figures go in BENCHMARKS.md.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use wscope_proto::deflate::{DeflateParams, PerMessageDeflate, Retain};
use wscope_proto::frame::encode_frame;
use wscope_proto::mask::{apply_mask, apply_mask_bytewise};
use wscope_proto::message::{DEFAULT_MAX_MESSAGE, MessageAssembler};
use wscope_proto::{Decoded, FrameHeader, OpCode, Role};

const SIZES: &[usize] = &[125, 4 * 1024, 64 * 1024, 1024 * 1024];
const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn masking(c: &mut Criterion) {
    let mut group = c.benchmark_group("mask");
    for &size in SIZES {
        let src: Vec<u8> = (0..size).map(|i| i as u8).collect();
        let mut buf = src.clone();
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("memcpy", size), &size, |b, _| {
            b.iter(|| buf.copy_from_slice(black_box(&src)))
        });
        group.bench_with_input(BenchmarkId::new("apply_mask", size), &size, |b, _| {
            b.iter(|| apply_mask(black_box(&mut buf), KEY, 0))
        });
        group.bench_with_input(BenchmarkId::new("bytewise", size), &size, |b, _| {
            b.iter(|| apply_mask_bytewise(black_box(&mut buf), KEY, 0))
        });
    }
    group.finish();
}

fn parsing(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    for &size in SIZES {
        // A masked client frame, as a server reads it.
        let payload = vec![b'a'; size];
        let mut wire = Vec::new();
        encode_frame(OpCode::Binary, true, false, Some(KEY), &payload, &mut wire);
        let mut scratch = wire.clone();
        // Decoding a header costs the same whatever the payload: count headers.
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(BenchmarkId::new("header", size), &size, |b, _| {
            b.iter(|| FrameHeader::decode(black_box(&wire)))
        });
        // Copy in, decode, unmask, assemble (UTF-8 is not checked: binary).
        group.throughput(Throughput::Bytes(wire.len() as u64));
        group.bench_with_input(BenchmarkId::new("frame_to_message", size), &size, |b, _| {
            let mut assembler = MessageAssembler::new(DEFAULT_MAX_MESSAGE, false);
            b.iter(|| {
                scratch.copy_from_slice(&wire);
                let Decoded::Complete { header, header_len } = FrameHeader::decode(&scratch) else {
                    unreachable!("a whole frame is in the buffer")
                };
                let body = &mut scratch[header_len..];
                apply_mask(body, header.mask.unwrap_or_default(), 0);
                black_box(assembler.push(&header, body, None).is_ok())
            })
        });
    }
    group.finish();
}

fn deflate(c: &mut Criterion) {
    let mut group = c.benchmark_group("deflate");
    let text: Vec<u8> = br#"{"type":"tick","symbol":"WSCP","price":101.25,"size":300}"#
        .iter()
        .copied()
        .cycle()
        .take(64 * 1024)
        .collect();
    group.throughput(Throughput::Bytes(text.len() as u64));
    let mut sender = PerMessageDeflate::new(Role::Server, DeflateParams::default());
    let mut compressed = Vec::new();
    group.bench_function("compress_64KiB_json", |b| {
        b.iter(|| {
            compressed.clear();
            sender
                .compress(black_box(&text), &mut compressed)
                .expect("compresses");
        })
    });
    // What keeping only the window costs per message (the compressor built
    // again and primed with up to 32 KiB) against keeping zlib's state.
    let small: Vec<u8> = text[..100].to_vec();
    for (name, retain) in [("window", Retain::Window), ("state", Retain::State)] {
        let mut sender =
            PerMessageDeflate::new(Role::Server, DeflateParams::default()).retaining(retain);
        for (size, message) in [("100B", &small), ("64KiB", &text)] {
            group.throughput(Throughput::Bytes(message.len() as u64));
            group.bench_function(format!("compress_{size}_json_keeping_{name}"), |b| {
                b.iter(|| {
                    compressed.clear();
                    sender
                        .compress(black_box(message), &mut compressed)
                        .expect("compresses");
                })
            });
        }
    }
    // The same for the decompressor: built again for each message and
    // primed with the received window (a copy, up to 32 KiB) against kept.
    // The second copy of a message, compressed with context takeover, is
    // back-references to the first, so inflating it again and again keeps
    // the window the same.
    for (name, retain) in [("window", Retain::Window), ("state", Retain::State)] {
        for (size, message) in [("100B", &small), ("64KiB", &text)] {
            let mut sender = PerMessageDeflate::new(Role::Server, DeflateParams::default());
            let mut receiver =
                PerMessageDeflate::new(Role::Client, DeflateParams::default()).retaining(retain);
            let mut wire = Vec::new();
            let mut out = Vec::new();
            sender.compress(message, &mut wire).expect("compresses");
            receiver
                .decompress(&wire, &mut out, 1 << 20)
                .expect("inflates");
            wire.clear();
            sender.compress(message, &mut wire).expect("compresses");
            group.throughput(Throughput::Bytes(message.len() as u64));
            group.bench_function(format!("decompress_{size}_json_keeping_{name}"), |b| {
                b.iter(|| {
                    out.clear();
                    receiver
                        .decompress(black_box(&wire), &mut out, 1 << 20)
                        .expect("inflates");
                })
            });
            assert_eq!(&out, message, "the window drifted");
        }
    }
    group.throughput(Throughput::Bytes(text.len() as u64));
    let mut fresh = PerMessageDeflate::new(
        Role::Server,
        DeflateParams {
            server_no_context_takeover: true,
            ..DeflateParams::default()
        },
    );
    let mut one = Vec::new();
    fresh.compress(&text, &mut one).expect("compresses");
    let mut receiver_fresh = PerMessageDeflate::new(
        Role::Client,
        DeflateParams {
            server_no_context_takeover: true,
            ..DeflateParams::default()
        },
    );
    let mut out = Vec::new();
    group.bench_function("decompress_64KiB_json", |b| {
        b.iter(|| {
            out.clear();
            receiver_fresh
                .decompress(black_box(&one), &mut out, 1 << 20)
                .expect("inflates");
        })
    });
    group.finish();
}

criterion_group!(benches, masking, parsing, deflate);
criterion_main!(benches);
