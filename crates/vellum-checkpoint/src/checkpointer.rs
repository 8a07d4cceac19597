//! The [`Checkpointer`]: opening a checkpoint directory (load the current generation, or
//! fall back to an older retained one, and remove orphans), loading a retained generation,
//! committing the next one, and retention.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use vellum_fs::{DynFs, FailStop, atomic_replace, create_dir_all_durable};

use crate::codec::{self, ZSTD_MAX_LEVEL};
use crate::error::{Error, Result};
use crate::generation::{CheckpointStats, CommitInfo, FileStats, LoadedGeneration, Retained};
use crate::manifest::{self, Codec, FileEntry, Manifest, ManifestError};
use crate::names::{
    CURRENT_NAME, MANIFEST_PREFIX, data_file_name, generation_of, manifest_file_name,
};

/// How checkpoints are written and retained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointConfig {
    /// How many generations to keep (at least 1; the current one counts).
    pub retain_generations: u32,
    /// The zstd level used by [`Codec::ZSTD`]-style requests that ask for the default
    /// (see [`CheckpointConfig::zstd`]).
    pub zstd_level: i32,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        CheckpointConfig {
            retain_generations: 2,
            zstd_level: 3,
        }
    }
}

impl CheckpointConfig {
    /// zstd at this configuration's level.
    pub fn zstd(&self) -> Codec {
        Codec::Zstd {
            level: self.zstd_level,
        }
    }

    fn validate(&self) -> Result<()> {
        if self.retain_generations == 0 {
            return Err(Error::InvalidConfig {
                reason: "retain_generations must be at least 1".into(),
            });
        }
        check_codec(self.zstd())
    }
}

fn check_codec(codec: Codec) -> Result<()> {
    match codec {
        Codec::Zstd { level } if !(1..=ZSTD_MAX_LEVEL).contains(&level) => {
            Err(Error::InvalidConfig {
                reason: format!("zstd level {level} is outside 1..={ZSTD_MAX_LEVEL}"),
            })
        }
        Codec::Gzip { level } if level > 9 => Err(Error::InvalidConfig {
            reason: format!("gzip level {level} is outside 0..=9"),
        }),
        _ => Ok(()),
    }
}

/// Options for loading at open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// If the current generation is damaged, load the newest intact retained generation
    /// instead of failing. Nothing is deleted in that case; the next commit gets a number
    /// above every generation found, and its retention pass removes the damaged one.
    pub fallback_to_previous: bool,
}

/// One file to commit.
#[derive(Debug, Clone, Copy)]
pub struct FileSpec<'a> {
    /// Its name within the generation (`[A-Za-z0-9._-]`, at most 128 bytes, no leading dot).
    pub name: &'a str,
    /// Its contents.
    pub bytes: &'a [u8],
    /// How to store it.
    pub codec: Codec,
}

/// Commits and loads checkpoint generations in one directory. One writer per directory.
#[derive(Debug)]
pub struct Checkpointer {
    pub(crate) fs: DynFs,
    pub(crate) dir: PathBuf,
    config: CheckpointConfig,
    pub(crate) current: Option<Manifest>,
    /// Retained generations, oldest first; the last is the current one.
    retained: Vec<Retained>,
    /// Older generations the retention window expected but open could not read (their files
    /// are kept for inspection until retention moves past them), as (generation, why).
    damaged: Vec<(u64, String)>,
    next_generation: u64,
    failstop: FailStop,
}

impl Checkpointer {
    /// Opens (creating if needed) the checkpoint directory `dir`, loads and verifies the
    /// current generation (if any), and removes orphans. See [`Checkpointer::open_with`].
    pub fn open(
        fs: DynFs,
        dir: &Path,
        config: CheckpointConfig,
    ) -> Result<(Checkpointer, Option<LoadedGeneration>)> {
        Checkpointer::open_with(fs, dir, config, LoadOptions::default())
    }

    /// As [`Checkpointer::open`], with load options.
    pub fn open_with(
        fs: DynFs,
        dir: &Path,
        config: CheckpointConfig,
        options: LoadOptions,
    ) -> Result<(Checkpointer, Option<LoadedGeneration>)> {
        config.validate()?;
        create_dir_all_durable(fs.as_ref(), dir)?;
        let mut cp = Checkpointer {
            fs,
            dir: dir.to_path_buf(),
            config,
            current: None,
            retained: Vec::new(),
            damaged: Vec::new(),
            next_generation: 1,
            failstop: FailStop::new(),
        };
        let names = cp.fs.list_dir(dir)?;
        let manifest_gens: BTreeSet<u64> = names
            .iter()
            .filter(|n| n.starts_with(MANIFEST_PREFIX))
            .filter_map(|n| generation_of(n))
            .collect();
        let newest_seen = names.iter().filter_map(|n| generation_of(n)).max();
        let has_current = names.iter().any(|n| n == CURRENT_NAME);

        let loaded = if has_current {
            match cp.load_current() {
                Ok(g) => Some(g),
                Err(cause) => {
                    let generation = match &cause {
                        Error::FileMissing { generation, .. }
                        | Error::FileCorrupt { generation, .. } => Some(*generation),
                        _ => None,
                    };
                    if !options.fallback_to_previous {
                        let previous = manifest_gens
                            .iter()
                            .rev()
                            .copied()
                            .find(|g| generation.is_none_or(|cur| *g < cur));
                        return Err(Error::CurrentDamaged {
                            dir: cp.dir.clone(),
                            generation,
                            previous,
                            cause: Box::new(cause),
                        });
                    }
                    Some(cp.load_fallback(&manifest_gens, generation)?)
                }
            }
        } else if manifest_gens.iter().any(|&g| g > 1) {
            // `CURRENT` is only ever replaced atomically, so it cannot vanish once generation
            // 1 was published: its absence next to later generations is damage.
            if !options.fallback_to_previous {
                return Err(Error::CurrentMissing {
                    dir: cp.dir.clone(),
                    newest: manifest_gens.iter().max().copied().unwrap_or(0),
                });
            }
            Some(cp.load_fallback(&manifest_gens, None)?)
        } else {
            // No generation was ever published (a first checkpoint may have crashed before
            // its rename: its files are orphans).
            None
        };

        match &loaded {
            None => {
                cp.next_generation = 1;
                cp.remove_orphans(&names, &BTreeSet::new(), &BTreeSet::new())?;
            }
            Some(g) => {
                let current_gen = g.generation();
                // Retained: the newest `retain` generations up to the loaded one whose
                // manifests still read (their files are verified when loaded).
                let mut retained = vec![Retained::of(&g.manifest)];
                // Every older generation that left a file behind is a candidate, newest
                // first, until the window is full: one that cannot be read takes its place
                // in the window and is reported, never silently replaced by an older one.
                // Files the loaded generation carries over from older ones are its own, not
                // traces of those generations: a copy holding only the current generation
                // (an imported snapshot) has them without the older manifests, and that is
                // no damage.
                let carried: BTreeSet<String> = g
                    .manifest
                    .files
                    .iter()
                    .map(|f| data_file_name(f.origin_generation, &f.name))
                    .collect();
                let older_gens: BTreeSet<u64> = names
                    .iter()
                    .filter(|n| !carried.contains(n.as_str()))
                    .filter_map(|n| generation_of(n))
                    .filter(|&x| x < current_gen)
                    .collect();
                let mut damaged = Vec::new();
                for &older in older_gens.iter().rev() {
                    if retained.len() + damaged.len() >= config.retain_generations as usize {
                        break;
                    }
                    let path = cp.dir.join(manifest_file_name(older));
                    match cp.read_manifest(&path) {
                        Ok(m) if m.generation == older && m.wal_lsn <= g.wal_lsn() => {
                            retained.push(Retained::of(&m));
                        }
                        Ok(m) => damaged.push((
                            older,
                            format!(
                                "{}: names generation {} at LSN {}, beside current generation \
                                 {current_gen} at LSN {}",
                                path.display(),
                                m.generation,
                                m.wal_lsn,
                                g.wal_lsn()
                            ),
                        )),
                        Err(e) => damaged.push((older, e.to_string())),
                    }
                }
                cp.damaged = damaged;
                retained.reverse();
                cp.retained = retained;
                cp.current = Some(g.manifest.clone());
                if g.fell_back_from.is_some() {
                    // Keep the damaged generation's files for inspection; number past them.
                    cp.next_generation = newest_seen.unwrap_or(current_gen).max(current_gen) + 1;
                } else {
                    cp.next_generation = current_gen + 1;
                    let keep: BTreeSet<u64> = cp
                        .retained
                        .iter()
                        .map(|r| r.generation)
                        .chain(cp.damaged.iter().map(|(g, _)| *g))
                        .collect();
                    let named: BTreeSet<&str> = cp
                        .retained
                        .iter()
                        .flat_map(|r| r.data_files.iter().map(String::as_str))
                        .collect();
                    cp.remove_orphans(&names, &keep, &named)?;
                }
            }
        }
        Ok((cp, loaded))
    }

    /// Removes our files whose generation is not in `keep` and that no retained manifest
    /// names (`named`: files carried over from older generations), and the temporary
    /// manifest. Not synced: see the crate docs.
    fn remove_orphans(
        &self,
        names: &[String],
        keep: &BTreeSet<u64>,
        named: &BTreeSet<&str>,
    ) -> Result<()> {
        for name in names {
            let orphan = match generation_of(name) {
                Some(g) => !keep.contains(&g) && !named.contains(name.as_str()),
                None => *name == vellum_fs::tmp_path(Path::new(CURRENT_NAME)).to_string_lossy(),
            };
            if orphan {
                self.fs.remove_file(&self.dir.join(name))?;
            }
        }
        Ok(())
    }

    fn load_current(&self) -> Result<LoadedGeneration> {
        let manifest = self.read_manifest(&self.dir.join(CURRENT_NAME))?;
        self.load_manifest(manifest)
    }

    fn load_fallback(
        &self,
        manifest_gens: &BTreeSet<u64>,
        damaged: Option<u64>,
    ) -> Result<LoadedGeneration> {
        let mut tried = Vec::new();
        for &g in manifest_gens.iter().rev() {
            if damaged.is_some_and(|d| g >= d) {
                continue;
            }
            tried.push(g);
            if let Ok(mut loaded) = self.load_generation(g) {
                loaded.fell_back_from = Some(damaged);
                return Ok(loaded);
            }
        }
        Err(Error::NoIntactGeneration {
            dir: self.dir.clone(),
            tried,
        })
    }

    fn read_manifest(&self, path: &Path) -> Result<Manifest> {
        let file = self.fs.open(path)?;
        let len = file.len()?;
        if len > manifest::MAX_MANIFEST_BYTES as u64 {
            return Err(Error::ManifestCorrupt {
                path: path.to_path_buf(),
                detail: ManifestError::TooLong {
                    len: usize::try_from(len).unwrap_or(usize::MAX),
                    max: manifest::MAX_MANIFEST_BYTES,
                },
            });
        }
        let mut bytes = vec![0u8; len as usize];
        file.read_at(&mut bytes, 0)?;
        Manifest::decode(&bytes).map_err(|detail| Error::ManifestCorrupt {
            path: path.to_path_buf(),
            detail,
        })
    }

    /// Loads and verifies a retained generation by number (from its manifest copy).
    pub fn load_generation(&self, generation: u64) -> Result<LoadedGeneration> {
        let path = self.dir.join(manifest_file_name(generation));
        let manifest = self.read_manifest(&path)?;
        if manifest.generation != generation {
            return Err(Error::FileCorrupt {
                path,
                generation,
                reason: format!("it names generation {}", manifest.generation),
            });
        }
        self.load_manifest(manifest)
    }

    fn load_manifest(&self, manifest: Manifest) -> Result<LoadedGeneration> {
        let mut files = Vec::with_capacity(manifest.files.len());
        for entry in &manifest.files {
            let bytes = self.read_entry(entry)?;
            files.push((entry.name.clone(), bytes));
        }
        Ok(LoadedGeneration {
            manifest,
            files,
            fell_back_from: None,
        })
    }

    /// Commits `files` and `metadata` as the next generation covering WAL LSN `wal_lsn`.
    /// When this returns `Ok`, the new generation survives any crash; if it fails or the power
    /// is lost before, a reopen sees the previous generation. An I/O error stops this
    /// checkpointer (fail-stop): reopen to continue.
    pub fn commit(
        &mut self,
        wal_lsn: u64,
        metadata: &[u8],
        files: &[FileSpec<'_>],
    ) -> Result<CommitInfo> {
        self.commit_carrying(wal_lsn, metadata, files, &[])
    }

    /// As [`Checkpointer::commit`], and the new generation also holds the current
    /// generation's files named in `carry`, unchanged and not written again: its manifest
    /// names the file the older generation wrote (same bytes, same checksums), and
    /// retention keeps that file while any retained generation names it. This is how a
    /// checkpoint's cost follows what changed: a large file that did not change since the
    /// last generation costs one manifest record. A name in `carry` that the current
    /// generation does not hold, or that `files` also names, is
    /// [`Error::InvalidRequest`].
    pub fn commit_carrying(
        &mut self,
        wal_lsn: u64,
        metadata: &[u8],
        files: &[FileSpec<'_>],
        carry: &[&str],
    ) -> Result<CommitInfo> {
        self.failstop.check()?;
        if let Some(cur) = &self.current
            && wal_lsn < cur.wal_lsn
        {
            return Err(Error::LsnBackwards {
                dir: self.dir.clone(),
                generation: cur.generation,
                current: cur.wal_lsn,
                requested: wal_lsn,
            });
        }
        for f in files {
            check_codec(f.codec)?;
        }
        let generation = self.next_generation;
        let mut entries: Vec<FileEntry> = files
            .iter()
            .map(|f| FileEntry {
                name: f.name.to_owned(),
                codec: f.codec,
                raw_len_bytes: f.bytes.len() as u64,
                raw_crc32: 0,
                stored_len_bytes: 0,
                stored_crc32: 0,
                origin_generation: generation,
            })
            .collect();
        for &name in carry {
            let carried = self.current.as_ref().and_then(|m| m.file(name));
            match carried {
                Some(entry) => entries.push(entry.clone()),
                None => {
                    return Err(Error::InvalidRequest {
                        dir: self.dir.clone(),
                        detail: ManifestError::CarryMissing {
                            name: name.to_owned(),
                        },
                    });
                }
            }
        }
        let mut manifest = Manifest {
            generation,
            wal_lsn,
            metadata: metadata.to_vec(),
            files: entries,
        };
        manifest
            .check_limits()
            .map_err(|detail| Error::InvalidRequest {
                dir: self.dir.clone(),
                detail,
            })?;
        match self.write_generation(&mut manifest, files) {
            Ok(()) => {}
            Err(e) => {
                if !matches!(e, Error::Fs(ref fe) if fe.is_poisoned()) {
                    self.failstop.poison(&e);
                }
                return Err(e);
            }
        }
        self.next_generation = generation + 1;
        self.retained.push(Retained::of(&manifest));
        self.current = Some(manifest);
        self.apply_retention()?;
        let oldest = &self.retained[0];
        Ok(CommitInfo {
            generation,
            wal_lsn,
            oldest_retained_generation: oldest.generation,
            oldest_retained_wal_lsn: oldest.wal_lsn,
        })
    }

    fn write_generation(&self, manifest: &mut Manifest, files: &[FileSpec<'_>]) -> Result<()> {
        let fs = self.fs.as_ref();
        let generation = manifest.generation;
        fs.fail_point(crate::fail_points::BEFORE_FILES)?;
        for (spec, entry) in files.iter().zip(&mut manifest.files) {
            let path = self.dir.join(data_file_name(generation, spec.name));
            let file = fs.create(&path)?;
            let (stored_len, stored_crc) = match codec::encode_into(
                spec.codec,
                spec.bytes,
                codec::FileSink::new(file.as_ref()),
            ) {
                Ok(v) => v,
                Err(codec::EncodeError::Fs(e)) => return Err(e.into()),
                Err(codec::EncodeError::Codec(error)) => {
                    return Err(Error::Compress {
                        path,
                        codec: spec.codec,
                        error,
                    });
                }
            };
            // Data and length durable before anything names the file.
            file.sync_data()?;
            entry.raw_crc32 = crc32fast::hash(spec.bytes);
            entry.stored_len_bytes = stored_len;
            entry.stored_crc32 = stored_crc;
            fs.fail_point(crate::fail_points::AFTER_FILE)?;
        }
        let bytes = manifest.encode();
        let copy = fs.create(&self.dir.join(manifest_file_name(generation)))?;
        copy.write_at(&bytes, 0)?;
        // The copy is what a later fallback to this generation reads: durable before it can
        // be needed.
        copy.sync_data()?;
        drop(copy);
        // Every new name above durable before the manifest that names them is published.
        fs.sync_dir(&self.dir)?;
        fs.fail_point(crate::fail_points::BEFORE_PUBLISH)?;
        atomic_replace(fs, &self.dir.join(CURRENT_NAME), &bytes)?;
        fs.fail_point(crate::fail_points::AFTER_PUBLISH)?;
        Ok(())
    }

    /// Drops generations beyond the retention count, and the files of every generation that
    /// is neither retained nor newer than the current one (for example a damaged generation
    /// skipped by a fallback). Removals are not synced: see the crate docs.
    fn apply_retention(&mut self) -> Result<()> {
        let keep = self.config.retain_generations as usize;
        if self.retained.len() > keep {
            let excess = self.retained.len() - keep;
            self.retained.drain(..excess);
        }
        let current = self.current_generation().unwrap_or(0);
        let retained: BTreeSet<u64> = self.retained.iter().map(|r| r.generation).collect();
        // Files an expired generation wrote and a retained one carries over stay.
        let named: BTreeSet<&str> = self
            .retained
            .iter()
            .flat_map(|r| r.data_files.iter().map(String::as_str))
            .collect();
        let names = self
            .failstop
            .guard(self.fs.list_dir(&self.dir))
            .map_err(Error::from)?;
        for name in names {
            if generation_of(&name).is_some_and(|g| g < current && !retained.contains(&g))
                && !named.contains(name.as_str())
            {
                self.failstop
                    .guard(self.fs.remove_file(&self.dir.join(&name)))?;
            }
        }
        Ok(())
    }

    /// The checkpoint directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The current generation's manifest, if any generation exists.
    pub fn current(&self) -> Option<&Manifest> {
        self.current.as_ref()
    }

    /// The current generation number.
    pub fn current_generation(&self) -> Option<u64> {
        self.current.as_ref().map(|m| m.generation)
    }

    /// The files that make the current generation, as names in [`Checkpointer::dir`]:
    /// [`CURRENT_NAME`], the generation's copy of its manifest (what a fallback to it reads),
    /// then each committed file in manifest order. Empty when no generation exists. Copying
    /// these while no commit runs copies the generation; [`CheckpointFileName::parse`]
    /// recognises each of them.
    ///
    /// [`CheckpointFileName::parse`]: crate::CheckpointFileName::parse
    pub fn current_generation_files(&self) -> Vec<String> {
        let Some(m) = &self.current else {
            return Vec::new();
        };
        let mut files = Vec::with_capacity(m.files.len() + 2);
        files.push(CURRENT_NAME.to_owned());
        files.push(manifest_file_name(m.generation));
        files.extend(m.data_file_names());
        files
    }

    /// Retained generations, oldest first (the current one last).
    pub fn retained_generations(&self) -> Vec<u64> {
        self.retained.iter().map(|r| r.generation).collect()
    }

    /// Older generations the retention window expected but open could not read (manifest
    /// missing, truncated or damaged), as (generation, what is wrong). Their files are kept
    /// for inspection; a fallback cannot use them.
    pub fn damaged_generations(&self) -> &[(u64, String)] {
        &self.damaged
    }

    /// The oldest retained generation.
    pub fn oldest_retained_generation(&self) -> Option<u64> {
        self.retained.first().map(|r| r.generation)
    }

    /// The WAL LSN the oldest retained generation covers. The WAL must keep every record
    /// after it, so that any retained generation can be rolled forward: truncate only below
    /// `oldest_retained_wal_lsn + 1`.
    pub fn oldest_retained_wal_lsn(&self) -> Option<u64> {
        self.retained.first().map(|r| r.wal_lsn)
    }

    /// Statistics of the current generation.
    pub fn stats(&self) -> Option<CheckpointStats> {
        let m = self.current.as_ref()?;
        let files: Vec<FileStats> = m
            .files
            .iter()
            .map(|f| FileStats {
                name: f.name.clone(),
                codec: f.codec,
                raw_len_bytes: f.raw_len_bytes,
                stored_len_bytes: f.stored_len_bytes,
            })
            .collect();
        Some(CheckpointStats {
            generation: m.generation,
            wal_lsn: m.wal_lsn,
            raw_bytes_total: files.iter().map(|f| f.raw_len_bytes).sum(),
            stored_bytes_total: files.iter().map(|f| f.stored_len_bytes).sum(),
            files,
            retained_generations: self.retained_generations(),
            oldest_retained_wal_lsn: self.oldest_retained_wal_lsn().unwrap_or(0),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &CheckpointConfig {
        &self.config
    }
}
