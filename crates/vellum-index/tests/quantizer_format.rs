//! The quantizer parameter format (docs/format/quantizer.md): the golden fixtures decode to
//! the parameters and codes they were written with, every damaged byte is refused or
//! handled, and the fuzz corpus replays. `VELLUM_WRITE_GOLDEN=1` rewrites the fixtures and
//! `VELLUM_WRITE_CORPUS=1` the corpus seeds.

use std::path::{Path, PathBuf};

use vellum_index::{Metric, QUANTIZER_VERSION, QuantKind, Quantizer};

/// The sample every fixture was trained on: 3 dimensions, values chosen so the int8 range
/// and the binary means are round numbers.
fn sample() -> Vec<Vec<f32>> {
    vec![
        vec![0.0, -1.0, 10.0],
        vec![2.0, 1.0, 10.0],
        vec![4.0, 3.0, 10.0],
    ]
}

fn trained(kind: QuantKind, metric: Metric) -> Quantizer {
    let sample = sample();
    Quantizer::train_with_quantile(kind, metric, 3, sample.iter().map(|v| v.as_slice()), 1.0)
        .unwrap()
}

fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Each fixture, the quantizer it holds, and the code of `[1, 2, 10]` under it.
fn fixtures() -> Vec<(&'static str, Quantizer, Vec<u8>)> {
    vec![
        (
            "quantizer-v1-int8-l2.bin",
            trained(QuantKind::Int8, Metric::L2),
            // (1 - 0) / (4 / 255) = 63.75 -> 64; (2 + 1) / (4 / 255) = 191.25 -> 191;
            // a constant dimension codes 0.
            vec![64, 191, 0],
        ),
        (
            "quantizer-v1-f16-dot.bin",
            trained(QuantKind::F16, Metric::Dot),
            vec![0x00, 0x3c, 0x00, 0x40, 0x00, 0x49],
        ),
        (
            "quantizer-v1-binary-dot.bin",
            trained(QuantKind::Binary, Metric::Dot),
            // Means 2, 1, 10: only dimension 1 is above its mean.
            vec![0b010, 0, 0, 0, 0, 0, 0, 0],
        ),
    ]
}

#[test]
fn the_version_1_fixtures_decode_to_their_parameters_and_codes() {
    for (name, quantizer, code) in fixtures() {
        let path = fixture_path(name);
        if std::env::var_os("VELLUM_WRITE_GOLDEN").is_some() {
            std::fs::write(&path, quantizer.to_bytes()).unwrap();
        }
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(QUANTIZER_VERSION, 1, "a new version keeps the v1 fixtures");
        let decoded = Quantizer::from_bytes(&bytes).unwrap();
        assert_eq!(decoded, quantizer, "{name}");
        assert_eq!(
            decoded.encode_to_vec(&[1.0, 2.0, 10.0]).unwrap(),
            code,
            "{name}"
        );
        assert_eq!(decoded.to_bytes(), bytes, "{name} re-encodes byte for byte");
    }
}

#[test]
fn every_single_byte_change_of_the_fixtures_is_refused_or_handled() {
    let mut refused = 0;
    let mut checked = 0;
    for (name, _, _) in fixtures() {
        let bytes = std::fs::read(fixture_path(name)).unwrap();
        for offset in 0..bytes.len() {
            for value in [0x00, 0xFF, bytes[offset] ^ 0x01] {
                if value == bytes[offset] {
                    continue;
                }
                let mut damaged = bytes.clone();
                damaged[offset] = value;
                vellum_index::fuzzing::quantizer_params(&damaged);
                refused += usize::from(Quantizer::from_bytes(&damaged).is_err());
                checked += 1;
            }
        }
    }
    // The checksum covers every byte before it, and the checksum itself: all refused.
    assert_eq!(refused, checked, "a damaged byte decoded");
    println!("{checked} damaged fixtures refused");
}

fn seeds() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = fixtures().iter().map(|(_, q, _)| q.to_bytes()).collect();
    for kind in [QuantKind::Int8, QuantKind::F16, QuantKind::Binary] {
        for metric in [Metric::L2, Metric::Cosine, Metric::Dot] {
            seeds.push(trained(kind, metric).to_bytes());
        }
    }
    let mut cut = seeds[0].clone();
    cut.truncate(cut.len() - 3);
    seeds.push(cut);
    seeds
}

#[test]
fn the_quantizer_fuzz_corpus_replays_without_a_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/quantizer_params");
    if std::env::var_os("VELLUM_WRITE_CORPUS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for (i, seed) in seeds().iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:02}")), seed).unwrap();
        }
    }
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/corpus/quantizer_params exists") {
        let path = entry.unwrap().path();
        if path.is_file() {
            vellum_index::fuzzing::quantizer_params(&std::fs::read(&path).unwrap());
            count += 1;
        }
    }
    assert!(count >= seeds().len(), "the corpus lacks its seeds");
    println!("replayed {count} quantizer corpus inputs");
}
