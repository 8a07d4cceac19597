//! The Raft log's small state file (docs/format/raft-state.md): the vote, the last purged
//! log id and the last committed log id known when it was written. Published whole with
//! `atomic_replace`, so a crash leaves the old file or the new one.

use std::path::Path;

use openraft::{CommittedLeaderId, Vote};
use vellum_fs::{Fs, atomic_replace};

use crate::error::{Error, Result};
use crate::types::{LogId, NodeId};

/// The file's name in the Raft directory.
pub const STATE_FILE: &str = "raft-state";
/// Magic: "VLMRAFTS".
pub const STATE_MAGIC: [u8; 8] = *b"VLMRAFTS";
/// Format version.
pub const STATE_VERSION: u32 = 1;
const VOTE_BYTES: usize = 1 + 8 + 8 + 1;
const LOG_ID_BYTES: usize = 1 + 8 + 8 + 8;
/// The whole file: magic, version, vote, purged, committed, CRC-32.
pub const STATE_FILE_BYTES: usize = 8 + 4 + VOTE_BYTES + 2 * LOG_ID_BYTES + 4;

/// What the file holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RaftState {
    /// The vote (term, node, committed).
    pub vote: Option<Vote<NodeId>>,
    /// Every entry up to this id is purged (or covered by a snapshot).
    pub purged: Option<LogId>,
    /// The last committed id known when the file was written (a lower bound: openraft
    /// commits again whatever it had committed past it).
    pub committed: Option<LogId>,
}

impl RaftState {
    /// The file's bytes.
    pub fn encode(&self) -> [u8; STATE_FILE_BYTES] {
        let mut b = Vec::with_capacity(STATE_FILE_BYTES);
        b.extend_from_slice(&STATE_MAGIC);
        b.extend_from_slice(&STATE_VERSION.to_le_bytes());
        match &self.vote {
            Some(v) => {
                b.push(1);
                b.extend_from_slice(&v.leader_id.term.to_le_bytes());
                b.extend_from_slice(&v.leader_id.node_id.to_le_bytes());
                b.push(u8::from(v.committed));
            }
            None => b.extend_from_slice(&[0; VOTE_BYTES]),
        }
        for id in [&self.purged, &self.committed] {
            match id {
                Some(id) => {
                    b.push(1);
                    b.extend_from_slice(&id.leader_id.term.to_le_bytes());
                    b.extend_from_slice(&id.leader_id.node_id.to_le_bytes());
                    b.extend_from_slice(&id.index.to_le_bytes());
                }
                None => b.extend_from_slice(&[0; LOG_ID_BYTES]),
            }
        }
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b.try_into()
            .expect("the layout adds up to STATE_FILE_BYTES")
    }

    /// Decodes the file's bytes; what is wrong is named with its offset.
    pub fn decode(b: &[u8], path: &Path) -> Result<RaftState> {
        let bad = |offset: usize, reason: &str| Error::StateFile {
            path: path.to_path_buf(),
            offset: offset as u64,
            reason: reason.to_owned(),
        };
        if b.len() != STATE_FILE_BYTES {
            return Err(bad(
                0,
                &format!("{} bytes, not {STATE_FILE_BYTES}", b.len()),
            ));
        }
        if b[..8] != STATE_MAGIC {
            return Err(bad(0, "bad magic"));
        }
        let crc_at = STATE_FILE_BYTES - 4;
        if u32_at(b, crc_at) != crc32fast::hash(&b[..crc_at]) {
            return Err(bad(crc_at, "checksum mismatch"));
        }
        if u32_at(b, 8) != STATE_VERSION {
            return Err(bad(8, "unsupported version"));
        }
        let flag = |at: usize| match b[at] {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(bad(at, "flag byte is neither 0 nor 1")),
        };
        let mut at = 12;
        let vote = if flag(at)? {
            let mut v = Vote::new(u64_at(b, at + 1), u64_at(b, at + 9));
            v.committed = flag(at + 17)?;
            Some(v)
        } else {
            None
        };
        at += VOTE_BYTES;
        let mut ids = [None, None];
        for id in &mut ids {
            if flag(at)? {
                *id = Some(LogId::new(
                    CommittedLeaderId::new(u64_at(b, at + 1), u64_at(b, at + 9)),
                    u64_at(b, at + 17),
                ));
            }
            at += LOG_ID_BYTES;
        }
        Ok(RaftState {
            vote,
            purged: ids[0],
            committed: ids[1],
        })
    }

    /// Reads the file in `dir` (the default state if there is none).
    pub fn load(fs: &dyn Fs, dir: &Path) -> Result<RaftState> {
        let path = dir.join(STATE_FILE);
        if !fs.exists(&path)? {
            return Ok(RaftState::default());
        }
        let file = fs.open(&path)?;
        let len = usize::try_from(file.len()?).unwrap_or(usize::MAX);
        if len != STATE_FILE_BYTES {
            return RaftState::decode(&vec![0; len.min(STATE_FILE_BYTES + 1)], &path);
        }
        let mut b = vec![0u8; len];
        file.read_at(&mut b, 0)?;
        RaftState::decode(&b, &path)
    }

    /// Publishes it in `dir`, durably and atomically.
    pub fn store(&self, fs: &dyn Fs, dir: &Path) -> Result<()> {
        Ok(atomic_replace(fs, &dir.join(STATE_FILE), &self.encode())?)
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}
