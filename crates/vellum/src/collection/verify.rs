//! `verify`: re-reads every checksum of a collection (vectors a page at a time, retained
//! generations, the log they need) and reports what is damaged.

use super::{CollectionInner, VERIFY_PAGE, VerifyReport, WAL_DIR};
use crate::error::Result;
use crate::record;

impl CollectionInner {
    pub(crate) fn verify(&self) -> Result<VerifyReport> {
        let mut report = VerifyReport {
            collection: self.name.clone(),
            tail_cut_at_open: self.tail_cut_at_open.clone(),
            ..VerifyReport::default()
        };
        // One consistent look at headers, ids and the index; then the slots a page at a
        // time, so writers wait for one page of checksums, never for the whole store.
        let ids = {
            let state = self.state.read();
            state.store.verify_headers()?;
            if let Some(index) = &state.index {
                // Every live slot is in the graph or in the pending tail, once; a slot an
                // indexer is inserting right now is in both.
                // The tail's lock first: an indexer finishes a slot (leaves the tail) only
                // under it, so no slot can move from the tail to the graph unseen while the
                // graph's ids are read (one entering the graph meanwhile is in flight).
                let pending = self.pending.lock();
                let indexed = index.ids()?;
                let mut covered: Vec<u64> = indexed
                    .iter()
                    .copied()
                    .filter(|&s| !pending.contains(s) || pending.is_in_flight(s))
                    .collect();
                let twice = indexed.len() - covered.len();
                let tail = pending.slots();
                drop(pending);
                covered.extend(tail.iter().filter(|&&s| indexed.binary_search(&s).is_err()));
                covered.sort_unstable();
                let mut stored: Vec<u64> = state.store.slots().collect();
                stored.sort_unstable();
                if twice > 0 || covered != stored {
                    report.problems.push(format!(
                        "the index holds {} vectors and {} wait to be indexed ({twice} in \
                         both), the store {}: they differ",
                        indexed.len(),
                        tail.len(),
                        stored.len()
                    ));
                }
            }
            let mut ids: Vec<u64> = state.store.ids().collect();
            ids.sort_unstable();
            (ids, state.payloads.for_check())
        };
        let (ids, payloads) = ids;
        let (records, problems) = payloads.problems();
        report.payload_records_checked = records;
        report.problems.extend(problems);
        for page in ids.chunks(VERIFY_PAGE) {
            let store = self.state.read().store.verify_ids(page)?;
            report.vectors_checked += store.checked;
            for fault in &store.damaged {
                report.problems.push(format!(
                    "vector of id {} in {} at offset {} does not match its checksum",
                    fault.id,
                    fault.path.display(),
                    fault.offset
                ));
            }
        }
        {
            // Every code against a fresh encoding of its vector (one pass under the read
            // lock: codes are a quarter of the vectors' bytes or less).
            let state = self.state.read();
            for fault in state.store.verify_codes()? {
                report.problems.push(format!(
                    "quantized code of id {} in {} at offset {}: {}",
                    fault.id,
                    fault.path.display(),
                    fault.offset,
                    fault.reason
                ));
            }
        }
        let cp = self.checkpointer.lock();
        for (generation, why) in cp.damaged_generations() {
            report.problems.push(format!(
                "checkpoint generation {generation}, which retention keeps for a fallback, \
                 cannot be read: {why}"
            ));
        }
        // The payload runs' whole-file checksums (open checks only their lengths).
        let names: Vec<String> = cp
            .current()
            .map(|m| m.files.iter().map(|f| f.name.clone()).collect())
            .unwrap_or_default();
        for name in names {
            if crate::payloads::run_seq_of(&name).is_some()
                && let Err(e) = cp.verify_file(&name)
            {
                report.problems.push(format!("payload run {name}: {e}"));
            }
        }
        for generation in cp.retained_generations() {
            match cp.load_generation(generation) {
                Ok(_) => report.generations_checked += 1,
                Err(e) => report
                    .problems
                    .push(format!("checkpoint generation {generation}: {e}")),
            }
        }
        // Every retained generation must be able to roll forward: the log has to hold
        // every record after the oldest one's LSN.
        let wal_first = self.wal.stats().first_lsn;
        let needed = cp.oldest_retained_wal_lsn().map_or(1, |l| l + 1);
        if wal_first > needed {
            report.problems.push(format!(
                "the log in {} starts at LSN {wal_first}, but checkpoint generation {} needs \
                 every record from LSN {needed}: the segments before it are missing",
                self.dir.join(WAL_DIR).display(),
                cp.oldest_retained_generation().unwrap_or(0),
            ));
        }
        let first = needed.max(wal_first);
        // The checkpointer lock stays held while the log is read: a checkpoint meanwhile
        // could remove the segments being checked and look like damage.
        let mut iter = self.wal.iter_from(first)?;
        while let Some(item) = iter.next_record() {
            match item {
                Ok((lsn, bytes)) => match record::decode(bytes, lsn, self.config.dim) {
                    Ok(_) => report.wal_records_checked += 1,
                    Err(e) => report.problems.push(e.to_string()),
                },
                Err(e) => {
                    report.problems.push(format!("log: {e}"));
                    break;
                }
            }
        }
        drop(cp);
        Ok(report)
    }
}
