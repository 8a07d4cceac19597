//! The Raft state file's format (docs/format/raft-state.md): the golden fixtures decode to
//! the documented values and encode back to the same bytes; every damaged byte and every
//! wrong length is refused with the file and the offset.

use std::path::Path;

use openraft::{CommittedLeaderId, Vote};
use vellum_raft::{LogId, RaftState, STATE_FILE_BYTES};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .unwrap()
}

fn id(term: u64, node: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term, node), index)
}

#[test]
fn golden_fixtures_decode_to_their_documented_values_and_encode_back_byte_for_byte() {
    let mut committed_vote = Vote::new(7, 1);
    committed_vote.committed = true;
    let cases = [
        ("raft-state-v1-empty.bin", RaftState::default()),
        (
            "raft-state-v1-vote.bin",
            RaftState {
                vote: Some(Vote::new(3, 2)),
                ..RaftState::default()
            },
        ),
        (
            "raft-state-v1-full.bin",
            RaftState {
                vote: Some(committed_vote),
                purged: Some(id(5, 1, 1200)),
                committed: Some(id(7, 1, 4096)),
            },
        ),
    ];
    for (name, want) in cases {
        let bytes = fixture(name);
        assert_eq!(bytes.len(), STATE_FILE_BYTES);
        let got = RaftState::decode(&bytes, Path::new(name)).unwrap();
        assert_eq!(got, want, "{name}");
        assert_eq!(got.encode().as_slice(), bytes.as_slice(), "{name}");
    }
}

#[test]
fn every_flipped_byte_and_every_wrong_length_is_refused_with_its_offset() {
    let bytes = fixture("raft-state-v1-full.bin");
    for at in 0..bytes.len() {
        let mut b = bytes.clone();
        b[at] ^= 0x40;
        let err = RaftState::decode(&b, Path::new("raft-state")).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("raft-state") && msg.contains("offset"),
            "byte {at}: {msg}"
        );
    }
    for len in [0, 1, 83, 85, 200] {
        let mut b = bytes.clone();
        b.resize(len, 0);
        assert!(
            RaftState::decode(&b, Path::new("raft-state")).is_err(),
            "length {len}"
        );
    }
}

#[test]
fn the_raft_state_fuzz_corpus_replays_without_a_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/raft_state");
    let mut seeds: Vec<Vec<u8>> = ["empty", "vote", "full"]
        .iter()
        .map(|n| fixture(&format!("raft-state-v1-{n}.bin")))
        .collect();
    seeds.push(vellum_raft::state_machine::sm_state_bytes_for_corpus(None));
    seeds.push(vellum_raft::state_machine::sm_state_bytes_for_corpus(Some(
        id(4, 2, 99),
    )));
    let mut cut = seeds[2].clone();
    cut.truncate(50);
    seeds.push(cut);
    if std::env::var_os("VELLUM_WRITE_CORPUS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for (i, seed) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:02}")), seed).unwrap();
        }
    }
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/corpus/raft_state exists") {
        let path = entry.unwrap().path();
        if path.is_file() {
            vellum_raft::fuzzing::raft_state(&std::fs::read(&path).unwrap());
            count += 1;
        }
    }
    assert!(count >= seeds.len(), "the corpus lacks its seeds");
    println!("replayed {count} raft state corpus inputs");
}
