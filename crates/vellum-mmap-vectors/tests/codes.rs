//! The code plane: codes follow every write, replace, delete and compaction move; attaching
//! encodes again exactly the codes that do not match their vectors; a new generation
//! replaces the files; `verify_codes` finds damage; and after any crash (every operation,
//! torn writes, any map write-back) attaching gives a code for every live vector that
//! equals a fresh encoding of it under the checkpoint's generation. On SimFs and, for the
//! scenarios without a crash, on the real file system.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use vellum_fs::{CrashHarness, CrashModel, CrashPoints, CrashReport, DynFs, RealFs, SimFs};
use vellum_mmap_vectors::{
    CodeEncoder, CodeSpec, StoreConfig, VectorStore, code_file_name, parse_code_file_name,
};

/// Code bytes per vector: one a value plus one more, an odd length.
const CODE_LEN: u32 = DIM + 1;

/// The code of `v` under `generation`: each value times the generation, truncated to a
/// byte, then the generation's low byte (so two generations' codes differ).
fn code_of(v: &[f32], generation: u64) -> Vec<u8> {
    let mut out: Vec<u8> = v
        .iter()
        .map(|x| (*x as i64 * generation as i64) as u8)
        .collect();
    out.push(generation as u8);
    out
}

fn encoder(generation: u64) -> Arc<CodeEncoder> {
    Arc::new(move |v: &[f32], out: &mut [u8]| out.copy_from_slice(&code_of(v, generation)))
}

fn spec(generation: u64) -> CodeSpec {
    CodeSpec {
        generation,
        code_len: CODE_LEN,
    }
}

/// Every live vector's code is a fresh encoding of it, and `verify_codes` agrees.
fn codes_match(store: &VectorStore, generation: u64) -> Result<(), String> {
    for id in store.ids() {
        let slot = store.slot_of(id).expect("a live id has a slot");
        let vector = store.get(id).map_err(|e| e.to_string())?.expect("live");
        let code = store
            .code_at(slot)
            .ok_or_else(|| format!("id {id}: no code"))?;
        let want = code_of(vector, generation);
        if code != want.as_slice() {
            return Err(format!("id {id}: code {code:?}, want {want:?}"));
        }
    }
    let faults = store.verify_codes().map_err(|e| e.to_string())?;
    if !faults.is_empty() {
        return Err(format!("verify_codes: {faults:?}"));
    }
    Ok(())
}

fn code_files(fs: &dyn vellum_fs::Fs, dir: &Path) -> Vec<(u64, u32)> {
    let mut files: Vec<(u64, u32)> = fs
        .list_dir(dir)
        .unwrap()
        .iter()
        .filter_map(|name| parse_code_file_name(name))
        .collect();
    files.sort_unstable();
    files
}

/// Writes, replaces, deletes, compaction moves and checkpoints with a plane attached,
/// checking the codes after each step; then reopens and reattaches.
fn codes_follow_the_vectors(fs: DynFs, dir: &Path) {
    let ck = dir.join("checkpoints");
    let vectors = dir.join("vectors");
    let (mut cp, loaded) =
        vellum_checkpoint::Checkpointer::open(fs.clone(), &ck, ck_config()).unwrap();
    let mut store =
        VectorStore::open_from(fs.clone(), &vectors, store_config(), &cp, loaded.as_ref()).unwrap();
    let report = store.attach_codes(spec(1), encoder(1)).unwrap();
    assert_eq!((report.checked, report.reencoded), (0, 0));
    for id in 0..20 {
        store.upsert(id, &vector(id, 1)).unwrap();
    }
    codes_match(&store, 1).unwrap();
    store.checkpoint(&mut cp, 1, b"").unwrap();
    for id in 0..6 {
        store.upsert(id, &vector(id, 2)).unwrap();
    }
    for id in 10..18 {
        store.delete(id).unwrap();
    }
    codes_match(&store, 1).unwrap();
    store.checkpoint(&mut cp, 2, b"").unwrap();
    store.checkpoint(&mut cp, 3, b"").unwrap();
    let moves = store.compaction_moves();
    assert!(!moves.is_empty(), "the deletes left room below");
    for id in moves {
        store.relocate(id).unwrap();
    }
    codes_match(&store, 1).unwrap();
    store.checkpoint(&mut cp, 4, b"").unwrap();
    store.checkpoint(&mut cp, 5, b"").unwrap();
    let segments = store.segment_files().len() as u32;
    assert_eq!(
        code_files(fs.as_ref(), &vectors),
        (0..segments).map(|i| (1, i)).collect::<Vec<_>>(),
        "one code file per segment, reclaimed with them"
    );
    assert!(store.code_bytes() > 0);
    drop((store, cp));

    // Reopened: every code still matches, none is encoded again.
    let (cp, loaded) = vellum_checkpoint::Checkpointer::open(fs.clone(), &ck, ck_config()).unwrap();
    let mut store =
        VectorStore::open_from(fs.clone(), &vectors, store_config(), &cp, loaded.as_ref()).unwrap();
    let report = store.attach_codes(spec(1), encoder(1)).unwrap();
    assert_eq!(report.checked, store.len() as u64);
    assert_eq!(report.reencoded, 0, "{report:?}");
    codes_match(&store, 1).unwrap();

    // A new generation: all encoded again, the old files gone.
    let report = store.attach_codes(spec(2), encoder(2)).unwrap();
    assert_eq!(report.reencoded, store.len() as u64);
    codes_match(&store, 2).unwrap();
    assert!(
        code_files(fs.as_ref(), &vectors)
            .iter()
            .all(|(g, _)| *g == 2)
    );
    store.detach_codes().unwrap();
    assert!(code_files(fs.as_ref(), &vectors).is_empty());
    assert_eq!(store.code_at(store.slot_of(0).unwrap()), None);
}

#[test]
fn codes_follow_every_write_replace_delete_and_move_on_sim() {
    codes_follow_the_vectors(SimFs::new().shared(), Path::new("/db"));
}

#[test]
fn codes_follow_every_write_replace_delete_and_move_on_the_real_file_system() {
    let dir = tempfile::tempdir().unwrap();
    codes_follow_the_vectors(RealFs::shared(), dir.path());
}

#[test]
fn a_damaged_code_is_reported_by_verify_and_encoded_again_at_attach() {
    let fs = SimFs::new();
    let (mut cp, mut store, _) = open(&fs).unwrap();
    store.attach_codes(spec(3), encoder(3)).unwrap();
    for id in 0..10 {
        store.upsert(id, &vector(id, 1)).unwrap();
    }
    store.checkpoint(&mut cp, 1, b"").unwrap();
    drop((cp, store));
    // Slot 5 is the sixth vector's (slots are handed out lowest first, four per segment).
    let path = Path::new(STORE_DIR).join(code_file_name(3, 1));
    // Code slots are 16 bytes: 5 code bytes and the binding, rounded up to 8.
    fs.tamper(&path, |bytes| bytes[4096 + 16 + 2] ^= 0x10)
        .unwrap();
    let (_, mut store, _) = open(&fs).unwrap();
    store
        .attach_codes(spec(3), encoder(3))
        .map(|r| assert_eq!(r.reencoded, 1))
        .unwrap();
    codes_match(&store, 3).unwrap();
    // Damage after attach is invisible to the binding check at attach, but not to verify.
    drop(store);
    let (_, mut store, _) = open(&fs).unwrap();
    store.attach_codes(spec(3), encoder(3)).unwrap();
    let slot = store.slot_of(5).unwrap();
    assert_eq!(slot, 5);
    // A different encoder under the same generation: verify compares with fresh codes.
    store
        .attach_codes(spec(3), encoder(4))
        .map(|r| assert_eq!(r.reencoded, 0))
        .unwrap();
    let faults = store.verify_codes().unwrap();
    assert_eq!(faults.len(), 10, "{faults:?}");
    assert!(
        faults[0].reason.contains("fresh encoding"),
        "{:?}",
        faults[0]
    );
    assert_eq!(
        faults[0].path,
        Path::new(STORE_DIR).join(code_file_name(3, 0))
    );
}

#[test]
fn a_staged_plane_gets_every_write_made_while_it_is_encoded_and_replaces_the_old_one() {
    let fs = SimFs::new();
    let (_, mut store, _) = open(&fs).unwrap();
    store.attach_codes(spec(1), encoder(1)).unwrap();
    for id in 0..30 {
        store.upsert(id, &vector(id, 1)).unwrap();
    }
    store.stage_codes(spec(2), encoder(2)).unwrap();
    assert!(
        store.stage_codes(spec(1), encoder(1)).is_err(),
        "the attached generation"
    );
    store.stage_codes(spec(2), encoder(2)).unwrap();
    let mut chunks = 0;
    while !store.encode_staged(4).unwrap() {
        chunks += 1;
        // Writes between chunks: below and above the cursor, a replace and a delete.
        store
            .upsert(100 + chunks, &vector(100 + chunks, 1))
            .unwrap();
        store.upsert(chunks, &vector(chunks, 9)).unwrap();
        store.delete(29 - chunks).unwrap();
        // The old plane is still the one read, and stays right.
        codes_match(&store, 1).unwrap();
        if chunks == 2 {
            let err = store.commit_staged().unwrap_err();
            assert!(err.to_string().contains("not encoded yet"), "{err}");
        }
    }
    assert!(chunks >= 5, "{chunks} chunks");
    assert_eq!(store.commit_staged().unwrap(), Some(spec(2)));
    codes_match(&store, 2).unwrap();
    assert!(
        code_files(&fs, Path::new(STORE_DIR))
            .iter()
            .all(|(g, _)| *g == 2)
    );
    // An abandoned conversion leaves the attached plane and removes its own files.
    store.stage_codes(spec(3), encoder(3)).unwrap();
    store.encode_staged(4).unwrap();
    store.abandon_staged().unwrap();
    assert!(
        code_files(&fs, Path::new(STORE_DIR))
            .iter()
            .all(|(g, _)| *g == 2)
    );
    codes_match(&store, 2).unwrap();
    assert_eq!(store.commit_staged().unwrap(), None);
}

#[test]
fn a_code_length_that_cannot_fit_is_refused() {
    let fs = SimFs::new();
    let (_, mut store, _) = open(&fs).unwrap();
    for code_len in [0, u32::MAX, u32::MAX - 3] {
        let err = store
            .attach_codes(
                CodeSpec {
                    generation: 1,
                    code_len,
                },
                encoder(1),
            )
            .unwrap_err();
        assert!(err.to_string().contains("code"), "{code_len}: {err}");
    }
    let err = VectorStore::open(
        fs.shared(),
        Path::new("/other"),
        StoreConfig {
            element: vellum_mmap_vectors::ElementType::Code,
            ..StoreConfig::new(4)
        },
        None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("f32"), "{err}");
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Upsert(u64, u64),
    Delete(u64),
    Checkpoint,
    Compact,
    /// A new generation of codes (a retrained quantizer).
    Retrain,
    /// A new generation staged and encoded three slots at a time, with a write between
    /// chunks, then swapped in.
    Convert(u64),
}

/// `states[g]` = (model, code generation) committed as generation `g`.
#[derive(Debug, Default)]
struct Outcome {
    states: Vec<(Model, u64)>,
    inflight: Option<(Model, u64)>,
}

fn run(fs: &SimFs, ops: &[Op]) -> Outcome {
    let mut out = Outcome {
        states: vec![(Model::new(), 1)],
        inflight: None,
    };
    let Ok((mut cp, mut store, _)) = open(fs) else {
        return out;
    };
    let mut generation = 1;
    if store
        .attach_codes(spec(generation), encoder(generation))
        .is_err()
    {
        return out;
    }
    let mut model = Model::new();
    for (lsn, op) in ops.iter().enumerate() {
        let ok = match *op {
            Op::Upsert(id, version) => {
                model.insert(id, vector(id, version));
                store.upsert(id, &vector(id, version)).is_ok()
            }
            Op::Delete(id) => {
                model.remove(&id);
                store.delete(id).is_ok()
            }
            Op::Checkpoint => {
                out.inflight = Some((model.clone(), generation));
                let ok = store.checkpoint(&mut cp, lsn as u64, b"").is_ok();
                if ok {
                    out.states.push(out.inflight.take().expect("set above"));
                }
                ok
            }
            Op::Compact => store
                .compaction_moves()
                .into_iter()
                .all(|id| store.relocate(id).is_ok()),
            Op::Retrain => {
                generation += 1;
                store
                    .attach_codes(spec(generation), encoder(generation))
                    .is_ok()
            }
            Op::Convert(id) => {
                let next = generation + 1;
                if store.stage_codes(spec(next), encoder(next)).is_err() {
                    return out;
                }
                let mut written = false;
                loop {
                    match store.encode_staged(3) {
                        Ok(true) => break,
                        Ok(false) => {}
                        Err(_) => return out,
                    }
                    if !written {
                        written = true;
                        model.insert(id, vector(id, 5));
                        if store.upsert(id, &vector(id, 5)).is_err() {
                            return out;
                        }
                    }
                }
                generation = next;
                store.commit_staged().is_ok()
            }
        };
        if !ok {
            return out;
        }
    }
    out
}

fn check(image: &SimFs, out: &Outcome) -> Result<(), String> {
    let (_, mut store, loaded) = open(image)?;
    let generation = loaded.as_ref().map_or(0, |l| l.generation()) as usize;
    let (model, code_generation) = if generation < out.states.len() {
        &out.states[generation]
    } else {
        out.inflight
            .as_ref()
            .ok_or_else(|| format!("generation {generation} was never started"))?
    };
    same_as(&store, model)?;
    store
        .attach_codes(spec(*code_generation), encoder(*code_generation))
        .map_err(|e| format!("attach: {e}"))?;
    codes_match(&store, *code_generation)?;
    // And the plane keeps working.
    store
        .upsert(500, &vector(500, 1))
        .map_err(|e| e.to_string())?;
    codes_match(&store, *code_generation)
}

fn crash_ops() -> Vec<Op> {
    let mut ops: Vec<Op> = (0..9).map(|id| Op::Upsert(id, 1)).collect();
    ops.push(Op::Checkpoint);
    ops.extend((0..4).map(|id| Op::Upsert(id, 2)));
    ops.extend([Op::Delete(6), Op::Delete(7), Op::Checkpoint, Op::Checkpoint]);
    ops.extend([Op::Compact, Op::Upsert(20, 1), Op::Checkpoint]);
    // Retrained with a checkpoint in between and none after: both generations must
    // reattach from the state each checkpoint names.
    ops.extend([Op::Retrain, Op::Upsert(21, 1), Op::Checkpoint]);
    ops.extend([
        Op::Upsert(1, 3),
        Op::Retrain,
        Op::Upsert(22, 1),
        Op::Checkpoint,
    ]);
    // A staged conversion, checkpointed, then one left without a checkpoint.
    ops.extend([
        Op::Convert(23),
        Op::Checkpoint,
        Op::Convert(24),
        Op::Upsert(25, 1),
    ]);
    ops
}

#[test]
fn any_crash_reattaches_to_codes_that_match_the_checkpointed_vectors() {
    let ops = crash_ops();
    let mut total = CrashReport::default();
    for (model, images) in [
        (CrashModel::torn_512(), 48),
        (CrashModel::torn_4k(), 16),
        (CrashModel::drop_unsynced(), 1),
    ] {
        let report = CrashHarness {
            model,
            images_per_point: images,
            points: CrashPoints::EveryOp,
            seed: 0xC0DE5,
        }
        .run(|fs| run(fs, &ops), check);
        println!("code plane crash sweep ({model:?}): {report}");
        total.add(report);
    }
    println!("code plane crash images checked in all: {}", total.images);
    assert!(total.images > 2_000, "{}", total.images);
}
