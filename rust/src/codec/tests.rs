//! Unit tests of the codec room: levels, round trips, limits, bad input,
//! context reuse, and the committed fuzz seeds.

use super::*;

const ALL_LEVELS: [Codec; 8] = [
    Codec::None,
    Codec::Deflate { level: 0 },
    Codec::Deflate { level: 1 },
    Codec::Deflate { level: 9 },
    Codec::Zstd { level: -5 },
    Codec::Zstd { level: 1 },
    Codec::Zstd { level: 3 },
    Codec::Zstd { level: 19 },
];

/// rrweb-like events: repetitive JSON with some varying numbers.
fn events(count: usize) -> Vec<u8> {
    let mut out = b"[".to_vec();
    for i in 0..count {
        if i > 0 {
            out.push(b',');
        }
        out.extend(
            format!(
                "{{\"type\":3,\"data\":{{\"source\":1,\"positions\":[{{\"x\":{},\"y\":{},\
                 \"id\":{},\"timeOffset\":-{}}}]}},\"timestamp\":{}}}",
                (i * 37) % 1440,
                (i * 91) % 900,
                i % 400,
                (i % 5) * 16,
                1_700_000_000_000u64 + i as u64 * 17
            )
            .bytes(),
        );
    }
    out.push(b']');
    out
}

#[test]
fn names_and_default_levels() {
    assert_eq!(Codec::new("none", None), Ok(Codec::None));
    assert_eq!(Codec::new("deflate", None), Ok(Codec::Deflate { level: 6 }));
    assert_eq!(Codec::new("zstd", None), Ok(Codec::Zstd { level: 3 }));
    assert_eq!(Codec::default(), Codec::Zstd { level: 3 });
    for name in Codec::NAMES {
        let codec = Codec::new(name, None).unwrap();
        assert_eq!(codec.name(), name);
    }
    assert_eq!(Codec::Zstd { level: 3 }.to_string(), "zstd:3");
    assert_eq!(Codec::None.to_string(), "none");
    assert_eq!(
        Codec::new("gzip", None),
        Err(Error::UnknownCodec("gzip".to_owned()))
    );
    // Names are exact.
    assert!(Codec::new("ZSTD", None).is_err());
    assert!(Codec::new("zstd ", None).is_err());
}

#[test]
fn level_bounds() {
    let ok = [
        ("none", 0, Codec::None),
        ("deflate", 0, Codec::Deflate { level: 0 }),
        ("deflate", 9, Codec::Deflate { level: 9 }),
        ("zstd", 1, Codec::Zstd { level: 1 }),
        ("zstd", 19, Codec::Zstd { level: 19 }),
        ("zstd", -1, Codec::Zstd { level: -1 }),
        ("zstd", -131_072, Codec::Zstd { level: -131_072 }),
        // zstd reads 0 as its default.
        ("zstd", 0, Codec::Zstd { level: 3 }),
    ];
    for (name, level, codec) in ok {
        assert_eq!(Codec::new(name, Some(level)), Ok(codec), "{name} {level}");
    }
    let bad = [
        ("none", 1, 0, 0),
        ("deflate", -1, 0, 9),
        ("deflate", 10, 0, 9),
        ("deflate", i64::MAX, 0, 9),
        ("zstd", 20, -131_072, 19),
        ("zstd", 22, -131_072, 19),
        ("zstd", -131_073, -131_072, 19),
        ("zstd", i64::MIN, -131_072, 19),
    ];
    for (name, level, min, max) in bad {
        let e = Codec::new(name, Some(level)).unwrap_err();
        assert_eq!(e.codec_code(), None);
        assert_eq!(
            e,
            Error::LevelOutOfRange {
                codec: name,
                level,
                min,
                max
            }
        );
    }
    assert_eq!(
        zstandard::MIN_LEVEL,
        zstd::zstd_safe::min_c_level(),
        "zstd's fastest level moved"
    );
}

#[test]
fn every_codec_round_trips() {
    for data in [
        Vec::new(),
        b"x".to_vec(),
        events(1),
        events(50),
        events(5000),
    ] {
        for codec in ALL_LEVELS {
            let packed = compress(codec, &data).unwrap();
            let unpacked = decompress(codec, &packed, data.len(), None).unwrap();
            assert_eq!(unpacked, data, "{codec} on {} bytes", data.len());
            // The level of the decoding side does not matter.
            let other = Codec::new(codec.name(), None).unwrap();
            assert_eq!(decompress(other, &packed, data.len(), None).unwrap(), data);
        }
    }
}

#[test]
fn events_compress_well() {
    let data = events(50);
    for codec in [Codec::Deflate { level: 6 }, Codec::Zstd { level: 3 }] {
        let packed = compress(codec, &data).unwrap();
        assert!(
            packed.len() * 5 < data.len(),
            "{codec}: {} -> {}",
            data.len(),
            packed.len()
        );
    }
}

#[test]
fn the_limit_is_exact() {
    let data = events(200);
    for codec in ALL_LEVELS {
        let packed = compress(codec, &data).unwrap();
        assert!(decompress(codec, &packed, data.len(), None).is_ok());
        let e = decompress(codec, &packed, data.len() - 1, None).unwrap_err();
        assert_eq!(e.codec_code(), Some("payload_too_large"), "{codec}: {e}");
        let e = decompress(codec, &packed, 0, None).unwrap_err();
        assert_eq!(e.codec_code(), Some("payload_too_large"), "{codec}: {e}");
    }
    // An empty output fits a limit of 0.
    for codec in ALL_LEVELS {
        let packed = compress(codec, b"").unwrap();
        assert_eq!(decompress(codec, &packed, 0, None).unwrap(), b"");
    }
}

#[test]
fn a_bomb_is_refused_without_inflating_it() {
    let zeros = vec![0u8; 16 << 20];
    for codec in [Codec::Deflate { level: 9 }, Codec::Zstd { level: 1 }] {
        let bomb = compress(codec, &zeros).unwrap();
        assert!(bomb.len() < 20_000, "{codec}: {}", bomb.len());
        let e = decompress(codec, &bomb, 1 << 20, None).unwrap_err();
        let expected_size = match codec {
            // zstd frames declare their size: refused from the header.
            Codec::Zstd { .. } => Some(16 << 20),
            _ => None,
        };
        assert_eq!(
            e,
            Error::TooLarge {
                codec: codec.name(),
                max_size: 1 << 20,
                size: expected_size
            }
        );
        assert_eq!(e.codec_code(), Some("payload_too_large"));
    }
}

#[test]
fn garbage_and_empty_input_are_invalid() {
    let garbage: &[&[u8]] = &[
        b"",
        b"\x00",
        b"not compressed at all",
        b"\x28\xb5\x2f\xfd",             // zstd magic alone
        b"\x28\xb5\x2f\xfd\x00\x00\x00", // and a bad header
        &[0xff; 64],
    ];
    for codec in [Codec::Deflate { level: 6 }, Codec::Zstd { level: 3 }] {
        for data in garbage {
            let e = decompress(codec, data, 1 << 20, None).unwrap_err();
            assert_eq!(
                e.codec_code(),
                Some("invalid_compression"),
                "{codec} {data:?}: {e}"
            );
            assert!(e
                .to_string()
                .starts_with(&format!("invalid {}", codec.name())));
        }
    }
    // `none` takes anything.
    assert_eq!(decompress(Codec::None, b"", 0, None).unwrap(), b"");
}

#[test]
fn truncated_and_extended_frames_are_invalid() {
    let data = events(40);
    for codec in [Codec::Deflate { level: 6 }, Codec::Zstd { level: 3 }] {
        let packed = compress(codec, &data).unwrap();
        for cut in [0, 1, packed.len() / 2, packed.len() - 1] {
            let e = decompress(codec, &packed[..cut], 1 << 20, None).unwrap_err();
            assert_eq!(
                e.codec_code(),
                Some("invalid_compression"),
                "{codec} cut {cut}: {e}"
            );
        }
        let mut extended = packed.clone();
        extended.extend_from_slice(b"junk");
        let e = decompress(codec, &extended, 1 << 20, None).unwrap_err();
        assert_eq!(e.codec_code(), Some("invalid_compression"), "{codec}: {e}");
    }
}

#[test]
fn a_kept_context_gives_what_a_fresh_one_gives() {
    let inputs: Vec<Vec<u8>> = [0, 1, 3, 50, 2000, 7, 0, 1200, 10]
        .iter()
        .map(|&n| events(n))
        .collect();
    for codec in ALL_LEVELS {
        let mut kept = Compressor::new(codec).unwrap();
        for input in &inputs {
            let fresh = compress(codec, input).unwrap();
            assert_eq!(kept.compress(input).unwrap(), fresh, "{codec}");
        }
        assert_eq!(kept.codec(), codec);
    }
}

#[test]
fn a_large_scratch_buffer_is_not_kept() {
    let mut compressor = Compressor::new(Codec::None).unwrap();
    compressor.compress(&vec![1; 3 << 20]).unwrap();
    assert!(compressor.scratch.capacity() >= 3 << 20);
    compressor.compress(b"small").unwrap();
    assert!(compressor.scratch.capacity() <= RETAINED_SCRATCH_BYTES);
}

#[test]
fn dictionaries_are_for_zstd_only() {
    for codec in [Codec::None, Codec::Deflate { level: 6 }] {
        let e = Compressor::with_dictionary(codec, b"dict").unwrap_err();
        assert_eq!(e.codec_code(), None);
        assert_eq!(
            e.to_string(),
            format!("{} takes no dictionary", codec.name())
        );
        let e = decompress(codec, b"", 10, Some(b"dict")).unwrap_err();
        assert_eq!(e.codec_code(), None);
    }
}

#[test]
fn a_trained_dictionary_helps_small_inputs() {
    let samples: Vec<Vec<u8>> = (0..500).map(|i| events(3 + i % 5)).collect();
    let dictionary = train_dictionary(&samples, 4096).unwrap();
    assert!(dictionary.len() <= 4096);
    let codec = Codec::Zstd { level: 3 };
    let mut with = Compressor::with_dictionary(codec, &dictionary).unwrap();
    let mut without = Compressor::new(codec).unwrap();
    assert!(with.dictionary_id().is_some());
    assert_eq!(without.dictionary_id(), None);
    let input = events(4);
    let small = with.compress(&input).unwrap().to_vec();
    assert!(small.len() < without.compress(&input).unwrap().len());
    assert_eq!(
        decompress(codec, &small, input.len(), Some(&dictionary)).unwrap(),
        input
    );
    // Raw bytes work as a content dictionary; they carry no id.
    let raw = events(20);
    let mut content = Compressor::with_dictionary(codec, &raw).unwrap();
    assert_eq!(content.dictionary_id(), None);
    let packed = content.compress(&input).unwrap().to_vec();
    assert_eq!(
        decompress(codec, &packed, input.len(), Some(&raw)).unwrap(),
        input
    );
}
