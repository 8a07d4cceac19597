//! Payload indexes of a collection: creating one (built from the payloads without the
//! state lock, then made durable by a checkpoint), dropping one, listing them, and the ids a
//! typed filter admits as the indexes answer it (`planned_ids`).

use super::{CollectionInner, State};
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::payloads::{MAX_FIELD_BYTES, PayloadIndexInfo, PayloadIndexKind};

impl CollectionInner {
    /// Creates an index on `field`; returns once it is durable (a checkpoint holds it).
    /// Writes go on meanwhile: from the moment it is registered each write records its keys,
    /// and the payloads before that moment are read without the state lock. The checkpointer
    /// lock is held throughout (lock order: checkpointer, then state).
    pub(crate) fn create_payload_index(&self, field: &str, kind: PayloadIndexKind) -> Result<()> {
        self.check_usable()?;
        self.check_writable("creating a payload index")?;
        check_field(field)?;
        let mut cp = self.checkpointer.lock();
        self.check_usable()?;
        let (no, source) = self.state.write().payloads.begin_index(field, kind)?;
        match source.build() {
            Ok(file) => self.state.write().payloads.install_index(no, file),
            Err(e) => {
                self.state.write().payloads.abandon_index(no);
                return Err(e);
            }
        }
        let result = self.checkpoint_locked(&mut cp);
        if let Err(e) = &result {
            self.stop(e);
        }
        result.map(drop)
    }

    /// Drops the index on `field`; returns whether there was one, once the generation
    /// without it is durable.
    pub(crate) fn drop_payload_index(&self, field: &str) -> Result<bool> {
        self.check_usable()?;
        self.check_writable("dropping a payload index")?;
        let mut cp = self.checkpointer.lock();
        self.check_usable()?;
        if !self.state.write().payloads.drop_index(field) {
            return Ok(false);
        }
        let result = self.checkpoint_locked(&mut cp);
        if let Err(e) = &result {
            self.stop(e);
        }
        result.map(|_| true)
    }

    pub(crate) fn payload_indexes(&self) -> Vec<PayloadIndexInfo> {
        self.state.read().payloads.index_infos()
    }
}

/// The ids `filter` admits as the payload indexes answer it, ascending: `None` if no index
/// narrows it. A plan that is a superset is narrowed here by reading the candidates'
/// payloads (only theirs). With `live_only`, ids without a live point are left out (a
/// search need not: it meets only live points, and only ids named by `has_id` can be dead,
/// since a point's payload goes with it).
pub(crate) fn planned_ids(
    state: &State,
    filter: &Filter,
    live_only: bool,
) -> Result<Option<Vec<u64>>> {
    let Some((ids, exact)) = state.payloads.plan(filter) else {
        return Ok(None);
    };
    if exact && !live_only {
        return Ok(Some(ids));
    }
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if !state.store.contains(id) {
            continue;
        }
        if exact || filter.matches(id, state.payloads.get(id)?) {
            out.push(id);
        }
    }
    Ok(Some(out))
}

fn check_field(field: &str) -> Result<()> {
    if field.is_empty() || field.len() > MAX_FIELD_BYTES || field.split('.').any(str::is_empty) {
        return Err(Error::InvalidArgument(format!(
            "a payload index field is a dotted path of non-empty names, at most \
             {MAX_FIELD_BYTES} bytes: {field:?} is not"
        )));
    }
    Ok(())
}
