//! Cutting the power, and crash images: the disk states a power loss could leave behind.

use std::collections::BTreeMap;

use super::sim_fs::SimFs;
use super::state::{DirNode, FileNode, Ino, Inode, Pending, ROOT, State, apply_pending};
use crate::rng::SplitMix64;

/// Which unsynced file writes may survive a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriteSurvival {
    /// None: the disk holds exactly what was synced.
    DropAll,
    /// Any subset, in any combination (the disk reorders writeback freely).
    AnySubset,
    /// A prefix of each file's unsynced writes, in the order they were made (an ordered
    /// writeback; kinder than real disks, useful to tell reordering bugs from others).
    Prefix,
}

/// Which directory operations not covered by a directory sync may survive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DirSurvival {
    /// None of them.
    DropAll,
    /// Any subset (each rename whole or not at all).
    AnySubset,
}

/// The power-loss model used to build crash images.
///
/// In every model: what was durable (synced file bytes and lengths, synced directory
/// entries) survives whole; nothing appears that was never written; a file no durable
/// directory entry reaches is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrashModel {
    /// Which unsynced writes (including dirty pages of writable maps) may survive.
    pub writes: WriteSurvival,
    /// Tear each surviving write into sectors of this many bytes, each surviving on its own
    /// (`None`: a write survives whole or not at all). Sectors are aligned to file offsets.
    pub sector_bytes: Option<usize>,
    /// Which unsynced directory operations may survive.
    pub dir_ops: DirSurvival,
}

impl CrashModel {
    /// Everything unsynced is lost.
    pub fn drop_unsynced() -> Self {
        CrashModel {
            writes: WriteSurvival::DropAll,
            sector_bytes: None,
            dir_ops: DirSurvival::DropAll,
        }
    }

    /// The harshest model: any subset of unsynced writes torn at 512-byte sectors, any
    /// subset of unsynced directory operations.
    pub fn torn_512() -> Self {
        CrashModel {
            writes: WriteSurvival::AnySubset,
            sector_bytes: Some(512),
            dir_ops: DirSurvival::AnySubset,
        }
    }

    /// As [`CrashModel::torn_512`] with 4 KiB sectors (most SSDs and page-cache writeback).
    pub fn torn_4k() -> Self {
        CrashModel {
            sector_bytes: Some(4096),
            ..CrashModel::torn_512()
        }
    }

    /// Any subset of whole writes and directory operations, no tearing.
    pub fn any_subset() -> Self {
        CrashModel {
            sector_bytes: None,
            ..CrashModel::torn_512()
        }
    }
}

impl Default for CrashModel {
    fn default() -> Self {
        CrashModel::torn_512()
    }
}

/// One unsynced piece whose survival an image decides.
#[derive(Debug, Clone)]
enum Unit {
    Dir(usize),
    File { ino: Ino, pending: Pending },
}

/// The crash images of one moment, produced lazily. See [`SimFs::crash_images`].
#[derive(Debug)]
pub struct CrashImages {
    state_snapshot: Snapshot,
    units: Vec<Unit>,
    /// Indices into `units` grouped per file for the prefix model.
    model: CrashModel,
    plan: Plan,
    produced: usize,
    rng: SplitMix64,
}

#[derive(Debug)]
enum Plan {
    /// Every combination of `n` units: masks `0..total`.
    Exhaustive { total: u64 },
    /// A sample of `count` images.
    Sampled { count: usize },
}

/// The parts of the state an image needs (the state itself stays locked only while copying).
#[derive(Debug)]
struct Snapshot {
    state: State,
}

impl CrashImages {
    pub(crate) fn new(st: &State, model: &CrashModel, max_images: usize, seed: u64) -> Self {
        let mut units = Vec::new();
        if model.dir_ops == DirSurvival::AnySubset {
            units.extend((0..st.dir_ops.len()).map(Unit::Dir));
        }
        if model.writes != WriteSurvival::DropAll {
            for (ino, node) in &st.inodes {
                let Inode::File(f) = node else { continue };
                for p in &f.pending {
                    match (p, model.sector_bytes) {
                        (Pending::Write { offset, data }, Some(sector)) if sector > 0 => {
                            let mut pos = *offset;
                            let end = offset + data.len() as u64;
                            while pos < end {
                                let next = ((pos / sector as u64) + 1) * sector as u64;
                                let piece_end = next.min(end);
                                let a = (pos - offset) as usize;
                                let b = (piece_end - offset) as usize;
                                units.push(Unit::File {
                                    ino: *ino,
                                    pending: Pending::Write {
                                        offset: pos,
                                        data: data[a..b].to_vec(),
                                    },
                                });
                                pos = piece_end;
                            }
                        }
                        _ => units.push(Unit::File {
                            ino: *ino,
                            pending: p.clone(),
                        }),
                    }
                }
            }
        }
        let max_images = max_images.max(1);
        let plan = match model.writes {
            // Prefix: one image per prefix length of each file is too many to combine, so
            // sample (or enumerate when small) prefixes as masks below.
            _ if units.len() < 63 && (1u64 << units.len()) <= max_images as u64 => {
                Plan::Exhaustive {
                    total: 1u64 << units.len(),
                }
            }
            _ => Plan::Sampled { count: max_images },
        };
        CrashImages {
            state_snapshot: Snapshot {
                state: clone_state_for_images(st),
            },
            units,
            model: *model,
            plan,
            produced: 0,
            rng: SplitMix64::new(seed),
        }
    }

    /// How many images this iterator yields in all.
    pub fn total(&self) -> usize {
        match self.plan {
            Plan::Exhaustive { total } => total as usize,
            Plan::Sampled { count } => count,
        }
    }

    /// How many independent unsynced pieces (sectors, writes, directory operations) the
    /// moment had; an exhaustive enumeration has `2^pieces` images.
    pub fn pieces(&self) -> usize {
        self.units.len()
    }

    fn mask_keep(&mut self, i: usize) -> Vec<bool> {
        let n = self.units.len();
        match self.plan {
            Plan::Exhaustive { .. } => (0..n).map(|b| (i as u64 >> b) & 1 == 1).collect(),
            Plan::Sampled { .. } => match i {
                0 => vec![false; n],
                1 => vec![true; n],
                _ if i % 3 == 2 => {
                    // A prefix of everything unsynced, in the order it was made.
                    let cut = self.rng.below(n as u64 + 1) as usize;
                    (0..n).map(|b| b < cut).collect()
                }
                _ => (0..n).map(|_| self.rng.coin()).collect(),
            },
        }
    }

    fn build(&self, keep: &[bool]) -> SimFs {
        let st = &self.state_snapshot.state;
        let mut dir_kept = vec![false; st.dir_ops.len()];
        let mut file_kept: BTreeMap<Ino, Vec<Pending>> = BTreeMap::new();
        let mut prefix_broken: BTreeMap<Ino, bool> = BTreeMap::new();
        for (unit, kept) in self.units.iter().zip(keep) {
            match unit {
                Unit::Dir(i) => dir_kept[*i] = *kept,
                Unit::File { ino, pending } => {
                    let broken = prefix_broken.entry(*ino).or_insert(false);
                    let survive = match self.model.writes {
                        WriteSurvival::Prefix => {
                            if !*kept {
                                *broken = true;
                            }
                            !*broken
                        }
                        _ => *kept,
                    };
                    if survive {
                        file_kept.entry(*ino).or_default().push(pending.clone());
                    }
                }
            }
        }
        build_image(st, &dir_kept, &file_kept)
    }
}

impl Iterator for CrashImages {
    type Item = SimFs;

    fn next(&mut self) -> Option<SimFs> {
        if self.produced >= self.total() {
            return None;
        }
        let keep = self.mask_keep(self.produced);
        self.produced += 1;
        Some(self.build(&keep))
    }
}

/// Copies the parts of the state that images are built from.
fn clone_state_for_images(st: &State) -> State {
    let mut copy = State::new();
    copy.inodes.clear();
    for (ino, node) in &st.inodes {
        let node = match node {
            Inode::Dir(d) => Inode::Dir(d.clone()),
            Inode::File(f) => Inode::File(FileNode {
                live: Vec::new(),
                durable: f.durable.clone(),
                pending: f.pending.clone(),
                ..Default::default()
            }),
        };
        copy.inodes.insert(*ino, node);
    }
    copy.dir_ops = st.dir_ops.clone();
    copy.next_ino = st.next_ino;
    copy
}

impl SimFs {
    /// Cuts the power once `ops` operations have run: the next operation and every later one
    /// fail, and the state stays frozen for [`SimFs::crash_images`].
    pub fn cut_power_after(&self, ops: u64) {
        self.lock().power_cut_after = Some(ops);
    }

    /// Cuts the power now.
    pub fn cut_power(&self) {
        self.lock().powered_off = true;
    }

    /// Whether the power has been cut.
    pub fn is_powered_off(&self) -> bool {
        self.lock().powered_off
    }

    /// The disk states a power loss now could leave; see [`CrashModel`]. At most
    /// `max_images` images: every one when there are that few, else a deterministic sample
    /// from `seed` that always includes "nothing unsynced survived" and "everything did".
    pub fn crash_images(&self, model: &CrashModel, max_images: usize, seed: u64) -> CrashImages {
        let mut st = self.lock();
        let files: Vec<Ino> = st
            .inodes
            .iter()
            .filter(|(_, n)| matches!(n, Inode::File(_)))
            .map(|(i, _)| *i)
            .collect();
        for ino in files {
            st.absorb_maps(ino);
        }
        CrashImages::new(&st, model, max_images, seed)
    }

    /// One crash image: everything unsynced lost (the most common expectation to test).
    pub fn crash_drop_unsynced(&self) -> SimFs {
        self.crash_images(&CrashModel::drop_unsynced(), 1, 0)
            .next()
            .expect("a crash always leaves one image")
    }
}

/// Builds the post-crash state from chosen pending operations; used by [`CrashImages`].
fn build_image(
    st: &State,
    dir_ops_kept: &[bool],
    file_pending_kept: &BTreeMap<Ino, Vec<Pending>>,
) -> SimFs {
    let mut dirs: BTreeMap<Ino, DirNode> = st
        .inodes
        .iter()
        .filter_map(|(i, n)| match n {
            Inode::Dir(d) => Some((*i, d.clone())),
            Inode::File(_) => None,
        })
        .collect();
    for (op, kept) in st.dir_ops.iter().zip(dir_ops_kept) {
        if *kept {
            op.apply_durable(&mut dirs);
        }
    }
    let mut new = State::new();
    new.inodes.clear();
    // Walk from the root through durable entries: only reachable inodes survive.
    let mut stack = vec![ROOT];
    while let Some(ino) = stack.pop() {
        if new.inodes.contains_key(&ino) {
            continue;
        }
        match st.inodes.get(&ino) {
            Some(Inode::Dir(_)) => {
                let durable = dirs
                    .get(&ino)
                    .map(|d| d.durable.clone())
                    .unwrap_or_default();
                stack.extend(durable.values().copied());
                new.inodes.insert(
                    ino,
                    Inode::Dir(DirNode {
                        live: durable.clone(),
                        durable,
                    }),
                );
            }
            Some(Inode::File(f)) => {
                let mut bytes = f.durable.clone();
                if let Some(kept) = file_pending_kept.get(&ino) {
                    for p in kept {
                        apply_pending(&mut bytes, p);
                    }
                }
                new.inodes.insert(
                    ino,
                    Inode::File(FileNode {
                        live: bytes.clone(),
                        durable: bytes,
                        ..FileNode::default()
                    }),
                );
            }
            None => {}
        }
    }
    new.next_ino = st.next_ino;
    SimFs::from_state(new)
}
