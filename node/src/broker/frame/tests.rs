//! Tests of broker framing (stage-spec §10.2): fixed cases per framing, then seeded random
//! streams.

use bytes::{Bytes, BytesMut};
use rand::{rngs::StdRng, Rng, SeedableRng};

use super::{encode, packet_field, Decoder, FrameError, HEADER, MIN_BSON};
use crate::broker::framing::Framing;

const FRAMED: [Framing; 3] = [Framing::Packet, Framing::Bson, Framing::Text];

/// Feeds `chunks` in order; the messages, or the first error.
fn decode(framing: Framing, cap: usize, chunks: &[&[u8]]) -> Result<Vec<Bytes>, FrameError> {
    let mut decoder = Decoder::new(framing, cap);
    let mut out = Vec::new();
    for chunk in chunks {
        decoder.feed(chunk, &mut out)?;
    }
    Ok(out)
}

fn framed(framing: Framing, payload: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode(framing, payload, &mut out).expect("small payloads frame");
    out.to_vec()
}

/// A real BSON document of exactly `len` bytes (`len` ≥ 13): `{"v": "<len-13 x's>"}`.
fn bson_doc(len: usize) -> Vec<u8> {
    let doc = bson::doc! { "v": "x".repeat(len - 13) };
    let bytes = bson::to_vec(&doc).expect("a string document serialises");
    assert_eq!(bytes.len(), len);
    bytes
}

/// A message of `framing` with a body of `n` varied bytes, as `decode` returns it.
fn message(framing: Framing, n: usize) -> Vec<u8> {
    match framing {
        Framing::Bson => bson_doc(13 + n),
        Framing::Text => (0..n)
            .map(|i| b'a' + (i % 26) as u8)
            .chain([b'\n'])
            .collect(),
        _ => (0..n).map(|i| (i * 7) as u8).collect(),
    }
}

fn error_of(framing: Framing, cap: usize, chunks: &[&[u8]]) -> String {
    match decode(framing, cap, chunks) {
        Ok(out) => panic!("{framing:?} accepted {chunks:?} as {out:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn split_at_every_pair_of_boundaries_gives_the_same_messages() {
    for framing in FRAMED {
        let messages = [
            message(framing, 5),
            message(framing, 0),
            message(framing, 9),
        ];
        let stream: Vec<u8> = messages.iter().flat_map(|m| framed(framing, m)).collect();
        for i in 0..=stream.len() {
            for j in i..=stream.len() {
                let chunks = [&stream[..i], &stream[i..j], &stream[j..]];
                let out = decode(framing, 64, &chunks).expect("valid stream");
                assert_eq!(out, messages, "{framing:?} split at {i} and {j}");
            }
        }
    }
}

#[test]
fn many_messages_in_one_read_all_come_from_that_read_and_nothing_is_held() {
    for framing in FRAMED {
        let messages: Vec<Vec<u8>> = (0..100).map(|n| message(framing, n % 17)).collect();
        let stream: Vec<u8> = messages.iter().flat_map(|m| framed(framing, m)).collect();
        let mut decoder = Decoder::new(framing, 64);
        let mut out = Vec::new();
        decoder.feed(&stream, &mut out).expect("valid stream");
        assert_eq!(out, messages, "{framing:?}");
        assert_eq!(decoder.buffered(), 0);
        assert_eq!(decoder.partial.capacity(), 0, "{framing:?} allocated");
    }
}

#[test]
fn a_message_completed_across_reads_leaves_no_allocation_behind() {
    for framing in FRAMED {
        let stream = framed(framing, &message(framing, 3000));
        let mut decoder = Decoder::new(framing, 8192);
        let mut out = Vec::new();
        for chunk in stream.chunks(1000) {
            decoder.feed(chunk, &mut out).expect("valid stream");
        }
        assert_eq!(out.len(), 1, "{framing:?}");
        assert_eq!(decoder.partial.capacity(), 0, "{framing:?} kept its buffer");
    }
    // An idle connection's whole decoder: the framing, the limit and an empty BytesMut.
    assert!(std::mem::size_of::<Decoder>() <= 48);
}

#[test]
fn a_held_frame_is_allocated_once_at_its_announced_size() {
    let stream = framed(Framing::Packet, &[9; 996]);
    // The header arriving with part of the body, or alone in pieces.
    for first in [&[10][..], &[2, 8]] {
        let mut decoder = Decoder::new(Framing::Packet, 8192);
        let mut out = Vec::new();
        let mut at = 0;
        for n in first {
            decoder.feed(&stream[at..at + n], &mut out).expect("start");
            at += n;
        }
        assert_eq!(decoder.partial.capacity(), 1000, "after {first:?}");
        for chunk in stream[at..].chunks(300) {
            decoder.feed(chunk, &mut out).expect("rest");
            assert_eq!(decoder.partial.capacity() % 1000, 0, "regrown");
        }
        assert_eq!(out, [vec![9; 996]]);
    }
}

#[test]
fn a_partial_header_is_held_until_the_rest_arrives() {
    let stream = framed(Framing::Packet, b"hello");
    let mut decoder = Decoder::new(Framing::Packet, 64);
    let mut out = Vec::new();
    decoder.feed(&stream[..1], &mut out).expect("1 header byte");
    decoder.feed(&stream[1..3], &mut out).expect("2 more");
    assert_eq!((decoder.buffered(), out.len()), (3, 0));
    decoder.feed(&stream[3..], &mut out).expect("rest");
    assert_eq!(out, [&b"hello"[..]]);
    assert_eq!(decoder.buffered(), 0);
}

#[test]
fn a_frame_of_exactly_the_limit_is_accepted_and_one_more_byte_is_refused_at_once() {
    let cap = 100;
    let packet = framed(Framing::Packet, &[1; 96]);
    assert_eq!(
        decode(Framing::Packet, cap, &[&packet]).expect("cap").len(),
        1
    );
    let doc = bson_doc(cap);
    assert_eq!(decode(Framing::Bson, cap, &[&doc]).expect("cap").len(), 1);

    // Only the header of a frame one byte too long: refused before any body arrives.
    for framing in [Framing::Packet, Framing::Bson] {
        let header = 101u32.to_le_bytes();
        for split in 0..HEADER {
            let e = error_of(framing, cap, &[&header[..split], &header[split..]]);
            assert!(e.starts_with("frame of 101 bytes is over the input limit of 100"));
        }
    }
}

#[test]
fn the_error_names_the_filter_to_raise() {
    let header = 70000u32.to_le_bytes();
    assert_eq!(
        error_of(Framing::Bson, 8192, &[&header]),
        "frame of 70000 bytes is over the input limit of 8192 (?bson=IN,OUT)"
    );
    assert_eq!(
        error_of(Framing::Packet, 8192, &[&header]),
        "frame of 70000 bytes is over the input limit of 8192 (?packet=IN,OUT)"
    );
}

#[test]
fn a_length_field_below_the_minimum_is_refused() {
    assert!(error_of(Framing::Packet, 64, &[&3u32.to_le_bytes()]).contains("below the minimum"));
    let empty = decode(Framing::Packet, 64, &[&4u32.to_le_bytes()]).expect("empty packet");
    assert_eq!(empty, [Bytes::new()]);

    assert!(error_of(Framing::Bson, 64, &[&4u32.to_le_bytes()]).contains("below the minimum"));
    let empty_doc = [5, 0, 0, 0, 0];
    assert_eq!(
        decode(Framing::Bson, 64, &[&empty_doc]).expect("{}"),
        [&empty_doc[..]]
    );
}

#[test]
fn encrypted_frames_are_refused() {
    for framing in [Framing::Packet, Framing::Bson] {
        let header = (0x8000_0000u32 | 16).to_le_bytes();
        let e = error_of(framing, 64, &[&header[..3], &header[3..]]);
        assert!(e.contains("encrypted frame"), "{e}");
    }
}

#[test]
fn a_bson_frame_must_end_with_0() {
    let mut doc = bson_doc(20);
    *doc.last_mut().expect("not empty") = 7;
    for split in 0..doc.len() {
        let e = error_of(Framing::Bson, 64, &[&doc[..split], &doc[split..]]);
        assert_eq!(
            e,
            "frame of 20 bytes is not a BSON document: it ends with 0x07, not 0 (?bson)"
        );
    }
}

#[test]
fn a_text_line_over_the_limit_is_refused_as_soon_as_it_cannot_fit() {
    let cap = 8;
    let line = b"1234567\n";
    assert_eq!(
        decode(Framing::Text, cap, &[line]).expect("cap"),
        [&line[..]]
    );
    assert_eq!(
        decode(Framing::Text, cap, &[b"\n\n"])
            .expect("empty lines")
            .len(),
        2
    );

    let e = error_of(Framing::Text, cap, &[b"12345678\n"]);
    assert_eq!(
        e,
        "line longer than the input limit of 8 bytes (?text=IN,OUT)"
    );

    // 7 bytes without `\n` may still become a line of 8; the 8th byte decides.
    let mut decoder = Decoder::new(Framing::Text, cap);
    let mut out = Vec::new();
    decoder.feed(b"1234", &mut out).expect("4 held");
    decoder.feed(b"567", &mut out).expect("7 held");
    assert_eq!(decoder.buffered(), 7);
    assert!(decoder.feed(b"8", &mut out).is_err());
}

#[test]
fn raw_bytes_come_out_at_once_in_pieces_of_at_most_the_limit() {
    let mut decoder = Decoder::new(Framing::Raw, 3);
    let mut out = Vec::new();
    decoder.feed(b"0123456789", &mut out).expect("raw");
    decoder.feed(b"", &mut out).expect("nothing");
    assert_eq!(out, [&b"012"[..], b"345", b"678", b"9"]);
    assert_eq!(decoder.buffered(), 0);

    // A limit of 0 still makes progress.
    let out = decode(Framing::Raw, 0, &[b"ab"]).expect("raw");
    assert_eq!(out, [&b"a"[..], b"b"]);
}

#[test]
fn encode_frames_packets_and_passes_other_payloads_through() {
    assert_eq!(framed(Framing::Packet, b"hi"), [6, 0, 0, 0, b'h', b'i']);
    assert_eq!(framed(Framing::Packet, b""), [4, 0, 0, 0]);
    for framing in [Framing::Bson, Framing::Text, Framing::Raw] {
        assert_eq!(framed(framing, b"as is\n"), b"as is\n");
    }
    // Bit 31 would read as an encrypted frame, so the field stops below it.
    assert_eq!(packet_field(0x7fff_fffb), Ok(0x7fff_ffff));
    for too_big in [0x7fff_fffc, usize::MAX - 1] {
        let e = packet_field(too_big).expect_err("too big");
        assert!(e.to_string().contains("does not fit"), "{e}");
    }
}

/// Splits `stream` into chunks of random sizes (1 to 3 × `scale`).
fn random_chunks<'a>(rng: &mut StdRng, stream: &'a [u8], scale: usize) -> Vec<&'a [u8]> {
    let mut chunks = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(rng.gen_range(1..=3 * scale).min(rest.len()));
        chunks.push(chunk);
        rest = tail;
    }
    chunks
}

fn random_framing(rng: &mut StdRng) -> Framing {
    [Framing::Raw, Framing::Text, Framing::Packet, Framing::Bson][rng.gen_range(0..4)]
}

/// A stream of mostly valid frames with now and then a plausible header before a random body,
/// or plain noise, so that random input also reaches past the first frame.
fn hostile_stream(rng: &mut StdRng, framing: Framing, cap: usize) -> Vec<u8> {
    let mut stream = Vec::new();
    for _ in 0..rng.gen_range(0..30) {
        match rng.gen_range(0..20) {
            0..=16 => stream.extend(valid_frame(rng, framing, cap)),
            17 => {
                let len = rng.gen_range(0..cap as u32 + 8);
                stream.extend_from_slice(&len.to_le_bytes());
                stream.extend((0..rng.gen_range(0..cap)).map(|_| rng.gen::<u8>()));
            }
            18 => stream.extend((0..rng.gen_range(0..cap)).map(|_| rng.gen_range(0..3u8))),
            _ => stream.extend((0..rng.gen_range(0..2 * cap)).map(|_| rng.gen::<u8>())),
        }
    }
    stream
}

/// A frame of random length that `framing` accepts under `cap` when it can (a framed length
/// can be above a tiny cap).
fn valid_frame(rng: &mut StdRng, framing: Framing, cap: usize) -> Vec<u8> {
    let len = rng.gen_range(0..=cap);
    let body = (0..len).map(|_| rng.gen::<u8>());
    match framing {
        Framing::Packet => framed(framing, &body.skip(HEADER).collect::<Vec<u8>>()),
        Framing::Bson => {
            let len = len.max(MIN_BSON);
            let middle = body.take(len - MIN_BSON);
            (len as u32)
                .to_le_bytes()
                .into_iter()
                .chain(middle)
                .chain([0])
                .collect()
        }
        _ => body
            .skip(1)
            .filter(|&b| b != b'\n')
            .chain([b'\n'])
            .collect(),
    }
}

#[test]
fn random_streams_never_panic_nor_hold_more_than_a_frame() {
    let mut rng = StdRng::seed_from_u64(0xf4a3e);
    for _ in 0..200 {
        let framing = random_framing(&mut rng);
        let cap = rng.gen_range(1..200);
        let stream = hostile_stream(&mut rng, framing, cap);
        let mut decoder = Decoder::new(framing, cap);
        let mut out = Vec::new();
        for chunk in random_chunks(&mut rng, &stream, 40) {
            if decoder.feed(chunk, &mut out).is_err() {
                break;
            }
            let bound = match framing {
                Framing::Text => cap - 1,
                _ => cap,
            };
            assert!(decoder.buffered() <= bound, "{framing:?} cap {cap}");
            assert!(decoder.partial.capacity() <= cap.max(HEADER));
        }
        assert!(out.iter().all(|m| m.len() <= cap), "{framing:?} cap {cap}");
    }
}

/// A random message that `framing` carries unchanged, of at most `cap` bytes framed.
fn random_message(rng: &mut StdRng, framing: Framing, cap: usize) -> Vec<u8> {
    match framing {
        Framing::Packet => (0..rng.gen_range(0..=cap - HEADER))
            .map(|_| rng.gen())
            .collect(),
        Framing::Bson => bson_doc(rng.gen_range(13..=cap)),
        _ => {
            let mut line: Vec<u8> = (0..rng.gen_range(0..cap))
                .map(|_| rng.gen_range(0..=255u8))
                .filter(|&b| b != b'\n')
                .collect();
            line.push(b'\n');
            line
        }
    }
}

#[test]
fn encoded_messages_in_random_chunks_decode_to_the_same_messages() {
    let mut rng = StdRng::seed_from_u64(0xdec0de);
    for _ in 0..200 {
        let framing = FRAMED[rng.gen_range(0..FRAMED.len())];
        let cap = rng.gen_range(13..300);
        let messages: Vec<Vec<u8>> = (0..rng.gen_range(0..30))
            .map(|_| random_message(&mut rng, framing, cap))
            .collect();
        let mut stream = BytesMut::new();
        for m in &messages {
            encode(framing, m, &mut stream).expect("small payload");
        }
        let chunks = random_chunks(&mut rng, &stream, cap / 2);
        let out = decode(framing, cap, &chunks).expect("valid stream");
        assert_eq!(out, messages, "{framing:?} cap {cap}");
    }
}

#[test]
fn raw_streams_in_random_chunks_come_out_whole_and_within_the_limit() {
    let mut rng = StdRng::seed_from_u64(0x4a3);
    for _ in 0..200 {
        let cap = rng.gen_range(1..100);
        let stream: Vec<u8> = (0..rng.gen_range(0..1000)).map(|_| rng.gen()).collect();
        let out = decode(Framing::Raw, cap, &random_chunks(&mut rng, &stream, 50)).expect("raw");
        assert!(out.iter().all(|m| !m.is_empty() && m.len() <= cap));
        assert_eq!(out.concat(), stream);
    }
}
