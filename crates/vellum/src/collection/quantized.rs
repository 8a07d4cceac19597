//! The quantized copy of a collection: training the quantizer, attaching the store's code
//! plane, the quantizer file of each checkpoint, and the code source searches read.
//!
//! The catalog holds the wanted setting ([`Quantization`]); the checkpoint holds the
//! trained quantizer (file `quantizer`, docs/format/database.md) with the generation of
//! its codes; the store holds the codes (its code plane, bound to the vectors so a crash
//! costs re-encoding, never a wrong code). A quantizer is trained once the collection
//! holds [`crate::QUANTIZER_TRAIN_MIN_POINTS`] and again each time it has grown eightfold:
//! O(log n) trainings over a collection's life, each encoding every vector once. A running
//! collection (a checkpoint, `set_quantization`) trains under the read lock and encodes a
//! chunk per hold of the write lock, so readers never wait for a whole encoding; only an
//! open, before anyone can read, encodes all at once.

use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use vellum_index::{CodeSource, QuantKind, Quantizer};
use vellum_mmap_vectors::{CodeEncoder, CodeSpec, VectorStore};

use super::{CollectionInner, State};
use crate::error::{Error, Result};
use crate::options::{CollectionConfig, Quantization};

/// Name of the quantizer file inside a checkpoint generation.
pub(crate) const QUANTIZER_FILE: &str = "quantizer";

const QUANTIZER_MAGIC: &[u8; 8] = b"VCOLQNT\x01";
/// Magic, code generation, points trained on; then the quantizer's own bytes.
const QUANTIZER_HEADER_BYTES: usize = 8 + 8 + 8;

/// Vectors sampled at most to train a quantizer (strided over the live slots).
pub(crate) const TRAIN_SAMPLE_POINTS: usize = 20_000;

/// A collection grown past this many times the points its quantizer was trained on is
/// trained again at its next checkpoint.
pub(crate) const RETRAIN_GROWTH: u64 = 8;

/// A trained quantizer and the generation of the codes it encoded.
#[derive(Debug, Clone)]
pub(crate) struct QuantState {
    pub(crate) quantizer: Arc<Quantizer>,
    pub(crate) generation: u64,
    /// Points the collection held when it was trained.
    pub(crate) trained_points: u64,
}

impl QuantState {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(QUANTIZER_HEADER_BYTES + 64);
        out.extend_from_slice(QUANTIZER_MAGIC);
        out.extend_from_slice(&self.generation.to_le_bytes());
        out.extend_from_slice(&self.trained_points.to_le_bytes());
        out.extend_from_slice(&self.quantizer.to_bytes());
        out
    }

    /// The file's contents checked: magic, and the quantizer's own checks (its checksum
    /// covers its bytes; the header's two numbers only choose files and when to retrain).
    pub(crate) fn decode(bytes: &[u8], path: &Path) -> Result<QuantState> {
        let bad = |reason: String| Error::BadDatabaseFile {
            path: path.to_path_buf(),
            reason,
        };
        if bytes.len() < QUANTIZER_HEADER_BYTES || &bytes[..8] != QUANTIZER_MAGIC {
            return Err(bad("not a Vellum quantizer file".into()));
        }
        let generation = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
        let trained_points = u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"));
        let quantizer = Quantizer::from_bytes(&bytes[QUANTIZER_HEADER_BYTES..])
            .map_err(|e| bad(format!("at offset {QUANTIZER_HEADER_BYTES} and on: {e}")))?;
        Ok(QuantState {
            quantizer: Arc::new(quantizer),
            generation,
            trained_points,
        })
    }

    fn spec(&self) -> CodeSpec {
        CodeSpec {
            generation: self.generation,
            code_len: self.quantizer.code_len() as u32,
        }
    }

    fn encoder(&self) -> Arc<CodeEncoder> {
        let quantizer = Arc::clone(&self.quantizer);
        Arc::new(move |vector: &[f32], out: &mut [u8]| {
            // Lengths are the store's dimension and the plane's code length: always right.
            let _ = quantizer.encode(vector, out);
        })
    }
}

/// Slots encoded per hold of the state write lock while a collection converts to new
/// codes (a few milliseconds at 784 dimensions): searches and writes wait at most that.
pub(crate) const CONVERT_CHUNK_SLOTS: u64 = 4096;

impl CollectionInner {
    /// Changes the quantization (the catalog names the new setting already). `None` drops
    /// the codes; the same kind keeps them (new rescoring settings apply at once); another
    /// kind, when the collection holds enough points, trains a quantizer from a sample
    /// under the read lock, stages its code plane and encodes it
    /// [`CONVERT_CHUNK_SLOTS`] at a time, releasing the write lock between chunks: searches
    /// go on with the old codes (or the originals) and writes get codes in both planes,
    /// until the new plane is swapped in. With too few points, it trains at a later
    /// checkpoint.
    pub(crate) fn set_quantization(&self, wanted: Option<Quantization>) -> Result<()> {
        self.check_usable()?;
        self.check_writable("changing the quantization")?;
        // Keeps checkpoints (which may train) out until the new plane is in: lock order
        // checkpointer -> state.
        let _checkpoints = self.checkpointer.lock();
        let kind = {
            let mut state = self.state.write();
            state.quant.wanted = wanted;
            let Some(wanted) = wanted else {
                state.quant.trained = None;
                state.store.detach_codes()?;
                return Ok(());
            };
            if state
                .quant
                .trained
                .as_ref()
                .is_some_and(|t| t.quantizer.kind() == wanted.kind)
            {
                return Ok(());
            }
            if (state.store.len() as u64) < self.options.quantizer_train_min_points.max(1) as u64 {
                state.quant.trained = None;
                state.store.detach_codes()?;
                return Ok(());
            }
            wanted.kind
        };
        self.convert(kind, true)
    }

    /// Trains the wanted quantizer when it is due (see [`due`]) and converts to it as
    /// [`CollectionInner::set_quantization`] does, the write lock held a chunk at a time,
    /// never for the whole encoding. The caller holds the checkpointer lock (a checkpoint
    /// runs this before its handover).
    pub(crate) fn train_quantizer_if_due(&self) -> Result<()> {
        let kind = {
            let state = self.state.read();
            due(&state, self.options.quantizer_train_min_points)
        };
        match kind {
            Some(kind) => self.convert(kind, false),
            None => Ok(()),
        }
    }

    /// Trains a quantizer of `kind` under the read lock, stages its code plane and encodes
    /// it [`CONVERT_CHUNK_SLOTS`] per hold of the write lock, then swaps it in. The caller
    /// holds the checkpointer lock. `hooked`: calls the options' quantization hook before
    /// each chunk (conversions asked for by `set_quantization`, which tests pause).
    fn convert(&self, kind: QuantKind, hooked: bool) -> Result<()> {
        let started = std::time::Instant::now();
        let (quantizer, points) = {
            let state = self.state.read();
            (
                train(&state.store, kind, &self.config)?,
                state.store.len() as u64,
            )
        };
        let trained = {
            let mut state = self.state.write();
            let trained = QuantState {
                quantizer: Arc::new(quantizer),
                generation: state.quant.last_generation + 1,
                trained_points: points,
            };
            state.quant.last_generation = trained.generation;
            state.store.stage_codes(trained.spec(), trained.encoder())?;
            trained
        };
        let result = (|| -> Result<()> {
            loop {
                if let Some(hook) = self.options.quantization_hook.as_ref().filter(|_| hooked) {
                    hook();
                }
                let mut state = self.state.write();
                if state.store.encode_staged(CONVERT_CHUNK_SLOTS)? {
                    state.store.commit_staged()?;
                    state.quant.trained = Some(trained.clone());
                    return Ok(());
                }
            }
        })();
        if result.is_err() {
            let _ = self.state.write().store.abandon_staged();
        }
        tracing::info!(
            collection = self.name,
            kind = kind.name(),
            points,
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            ok = result.is_ok(),
            "quantizer trained and every vector encoded"
        );
        result
    }
}

/// Quantization state of a collection (inside `State`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Quant {
    /// What the catalog asks for.
    pub(crate) wanted: Option<Quantization>,
    /// The trained quantizer whose codes the store holds, if any.
    pub(crate) trained: Option<QuantState>,
    /// The generation of the last quantizer (kept when the setting is turned off, so a new
    /// one never reuses a generation a leftover file might carry).
    pub(crate) last_generation: u64,
}

impl Quant {
    /// The codes searches use, with the wanted settings: while a collection converts to
    /// another kind, the old codes serve until the new ones are swapped in.
    pub(crate) fn active(&self) -> Option<(&QuantState, Quantization)> {
        let wanted = self.wanted?;
        let trained = self.trained.as_ref()?;
        Some((trained, wanted))
    }
}

/// Brings the store's code plane in line with `state.quant`, at open: the saved quantizer
/// attached if it is of the wanted kind (codes that do not match are encoded again), else
/// trained anew when there are enough points, else no plane.
pub(crate) fn attach_at_open(
    state: &mut State,
    config: &CollectionConfig,
    saved: Option<QuantState>,
    min_points: usize,
) -> Result<()> {
    state.quant.last_generation = saved.as_ref().map_or(0, |s| s.generation);
    state.quant.wanted = config.quantization;
    match (config.quantization, saved) {
        (Some(wanted), Some(saved)) if saved.quantizer.kind() == wanted.kind => {
            let report = state.store.attach_codes(saved.spec(), saved.encoder())?;
            tracing::debug!(
                checked = report.checked,
                reencoded = report.reencoded,
                kind = wanted.kind.name(),
                "quantized codes attached"
            );
            state.quant.trained = Some(saved);
            Ok(())
        }
        (Some(_), _) => {
            state.quant.trained = None;
            train_if_due(state, config, min_points)?;
            if state.quant.trained.is_none() {
                state.store.detach_codes()?;
            }
            Ok(())
        }
        (None, _) => {
            state.quant.trained = None;
            state.store.detach_codes()?;
            Ok(())
        }
    }
}

/// The kind to train now, if a quantizer is due: none of the wanted kind yet and at least
/// `min_points` points (the option, by default [`crate::QUANTIZER_TRAIN_MIN_POINTS`]), or
/// the collection grew [`RETRAIN_GROWTH`]-fold since the last training.
fn due(state: &State, min_points: usize) -> Option<QuantKind> {
    let wanted = state.quant.wanted?;
    let points = state.store.len() as u64;
    let due = match &state.quant.trained {
        Some(t) if t.quantizer.kind() == wanted.kind => {
            points >= t.trained_points.saturating_mul(RETRAIN_GROWTH)
        }
        _ => points >= min_points.max(1) as u64,
    };
    due.then_some(wanted.kind)
}

/// At open (no reader or writer yet, so all at once under `&mut`): trains the wanted
/// quantizer when it is [`due`] and encodes every vector under it (a new code generation).
pub(crate) fn train_if_due(
    state: &mut State,
    config: &CollectionConfig,
    min_points: usize,
) -> Result<()> {
    let Some(kind) = due(state, min_points) else {
        return Ok(());
    };
    let points = state.store.len() as u64;
    let trained = QuantState {
        quantizer: Arc::new(train(&state.store, kind, config)?),
        generation: state.quant.last_generation + 1,
        trained_points: points,
    };
    state
        .store
        .attach_codes(trained.spec(), trained.encoder())?;
    state.quant.last_generation = trained.generation;
    state.quant.trained = Some(trained);
    Ok(())
}

/// A quantizer of `kind` trained on up to [`TRAIN_SAMPLE_POINTS`] live vectors.
fn train(store: &VectorStore, kind: QuantKind, config: &CollectionConfig) -> Result<Quantizer> {
    let mut slots: Vec<u64> = store.slots().collect();
    slots.sort_unstable();
    let stride = slots.len().div_ceil(TRAIN_SAMPLE_POINTS).max(1);
    let mut sample = Vec::with_capacity(slots.len().min(TRAIN_SAMPLE_POINTS));
    for &slot in slots.iter().step_by(stride) {
        if let Some(v) = store.vector_at(slot)? {
            sample.push(v);
        }
    }
    Ok(Quantizer::train(kind, config.metric, config.dim, sample)?)
}

/// The codes of the store's plane, by slot, for the index; a slot without a code (a bug)
/// is recorded and scored as zeros, as `StoreSource` does for vectors.
pub(crate) struct StoreCodes<'a> {
    store: &'a VectorStore,
    quantizer: &'a Quantizer,
    zeros: Vec<u8>,
    failure: Mutex<Option<Error>>,
}

impl<'a> StoreCodes<'a> {
    pub(crate) fn new(store: &'a VectorStore, quantizer: &'a Quantizer) -> StoreCodes<'a> {
        StoreCodes {
            store,
            quantizer,
            zeros: vec![0; quantizer.code_len()],
            failure: Mutex::new(None),
        }
    }

    pub(crate) fn into_result(self) -> Result<()> {
        match self.failure.into_inner() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl CodeSource for StoreCodes<'_> {
    fn quantizer(&self) -> &Quantizer {
        self.quantizer
    }

    #[inline]
    fn code(&self, slot: u64) -> &[u8] {
        match self.store.code_at(slot) {
            Some(code) => code,
            None => {
                self.failure
                    .lock()
                    .get_or_insert_with(|| Error::Inconsistent {
                        reason: format!("the index names slot {slot}, which holds no code"),
                    });
                &self.zeros
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quantizer_file_round_trips_and_refuses_damage() {
        let sample: Vec<Vec<f32>> = (0..10).map(|i| vec![i as f32, 1.0, -2.0]).collect();
        let quantizer = Quantizer::train(
            QuantKind::Int8,
            vellum_index::Metric::L2,
            3,
            sample.iter().map(|v| v.as_slice()),
        )
        .unwrap();
        let state = QuantState {
            quantizer: Arc::new(quantizer),
            generation: 7,
            trained_points: 1234,
        };
        let bytes = state.encode();
        let path = Path::new("/c/quantizer");
        let back = QuantState::decode(&bytes, path).unwrap();
        assert_eq!((back.generation, back.trained_points), (7, 1234));
        assert_eq!(back.quantizer, state.quantizer);
        for at in (0..8).chain(QUANTIZER_HEADER_BYTES..bytes.len()) {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x20;
            let err = QuantState::decode(&damaged, path).unwrap_err();
            assert!(err.to_string().contains("/c/quantizer"), "byte {at}: {err}");
        }
        assert!(QuantState::decode(&bytes[..20], path).is_err());
    }
}
