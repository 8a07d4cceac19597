//! Differential test: random operation sequences (no crash) give the same observable results
//! on the simulated and the real file system.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use vellum_fs::{Error, Fs, RealFs, SimFs};

const NAMES: [&str; 4] = ["a", "b", "sub/c", "sub/d"];

#[derive(Debug, Clone)]
enum Op {
    Create(usize),
    CreateNew(usize),
    WriteAt {
        file: usize,
        offset: u16,
        len: u16,
        byte: u8,
    },
    Append {
        file: usize,
        len: u16,
        byte: u8,
    },
    SetLen {
        file: usize,
        len: u16,
    },
    Allocate {
        file: usize,
        len: u16,
    },
    ReadAt {
        file: usize,
        offset: u16,
        len: u16,
    },
    Len(usize),
    SyncData(usize),
    Rename(usize, usize),
    Remove(usize),
    MkSub,
    RemoveSub,
    SyncDir,
    List,
    Exists(usize),
    MapRead(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let f = 0..NAMES.len();
    prop_oneof![
        f.clone().prop_map(Op::Create),
        f.clone().prop_map(Op::CreateNew),
        (f.clone(), 0u16..5000, 0u16..3000, any::<u8>()).prop_map(|(file, offset, len, byte)| {
            Op::WriteAt {
                file,
                offset,
                len,
                byte,
            }
        }),
        (f.clone(), 0u16..3000, any::<u8>()).prop_map(|(file, len, byte)| Op::Append {
            file,
            len,
            byte
        }),
        (f.clone(), 0u16..6000).prop_map(|(file, len)| Op::SetLen { file, len }),
        (f.clone(), 0u16..6000).prop_map(|(file, len)| Op::Allocate { file, len }),
        (f.clone(), 0u16..6000, 0u16..2000).prop_map(|(file, offset, len)| Op::ReadAt {
            file,
            offset,
            len
        }),
        f.clone().prop_map(Op::Len),
        f.clone().prop_map(Op::SyncData),
        (f.clone(), f.clone()).prop_map(|(a, b)| Op::Rename(a, b)),
        f.clone().prop_map(Op::Remove),
        Just(Op::MkSub),
        Just(Op::RemoveSub),
        Just(Op::SyncDir),
        Just(Op::List),
        f.clone().prop_map(Op::Exists),
        f.prop_map(Op::MapRead),
    ]
}

/// What an operation showed: its value, or the kind of error.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Unit,
    Bytes(Vec<u8>),
    Len(u64),
    Names(Vec<String>),
    Bool(bool),
    Err(String),
}

fn err_kind(e: &Error) -> String {
    match e {
        Error::ReadPastEnd { .. } => "read past end".into(),
        other => format!("{:?}", other.io_kind()),
    }
}

fn apply(fs: &dyn Fs, root: &Path, op: &Op) -> Seen {
    let p = |i: usize| -> PathBuf { root.join(NAMES[i]) };
    let r = (|| -> vellum_fs::Result<Seen> {
        Ok(match op {
            Op::Create(i) => {
                fs.create(&p(*i))?;
                Seen::Unit
            }
            Op::CreateNew(i) => {
                fs.create_new(&p(*i))?;
                Seen::Unit
            }
            Op::WriteAt {
                file,
                offset,
                len,
                byte,
            } => {
                fs.open(&p(*file))?
                    .write_at(&vec![*byte; *len as usize], u64::from(*offset))?;
                Seen::Unit
            }
            Op::Append { file, len, byte } => {
                Seen::Len(fs.open(&p(*file))?.append(&vec![*byte; *len as usize])?)
            }
            Op::SetLen { file, len } => {
                fs.open(&p(*file))?.set_len(u64::from(*len))?;
                Seen::Unit
            }
            Op::Allocate { file, len } => {
                fs.open(&p(*file))?.allocate(u64::from(*len))?;
                Seen::Unit
            }
            Op::ReadAt { file, offset, len } => {
                let mut buf = vec![0; *len as usize];
                fs.open(&p(*file))?.read_at(&mut buf, u64::from(*offset))?;
                Seen::Bytes(buf)
            }
            Op::Len(i) => Seen::Len(fs.open(&p(*i))?.len()?),
            Op::SyncData(i) => {
                fs.open(&p(*i))?.sync_data()?;
                Seen::Unit
            }
            Op::Rename(a, b) => {
                fs.rename(&p(*a), &p(*b))?;
                Seen::Unit
            }
            Op::Remove(i) => {
                fs.remove_file(&p(*i))?;
                Seen::Unit
            }
            Op::MkSub => {
                fs.create_dir_all(&root.join("sub"))?;
                Seen::Unit
            }
            Op::RemoveSub => {
                fs.remove_dir(&root.join("sub"))?;
                Seen::Unit
            }
            Op::SyncDir => {
                fs.sync_dir(root)?;
                Seen::Unit
            }
            Op::List => {
                let mut names = fs.list_dir(root)?;
                if fs.is_dir(&root.join("sub"))? {
                    names.extend(
                        fs.list_dir(&root.join("sub"))?
                            .into_iter()
                            .map(|n| format!("sub/{n}")),
                    );
                }
                Seen::Names(names)
            }
            Op::Exists(i) => Seen::Bool(fs.exists(&p(*i))?),
            Op::MapRead(i) => Seen::Bytes(fs.open(&p(*i))?.map_read()?.to_vec()),
        })
    })();
    r.unwrap_or_else(|e| Seen::Err(err_kind(&e)))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_look_the_same_on_the_simulated_and_the_real_file_system(
        ops in proptest::collection::vec(op(), 1..60)
    ) {
        let dir = tempfile::tempdir().unwrap();
        let real = RealFs::new();
        let sim = SimFs::new();
        sim.create_dir_all(Path::new("/root")).unwrap();
        for (i, op) in ops.iter().enumerate() {
            let a = apply(&real, dir.path(), op);
            let b = apply(&sim, Path::new("/root"), op);
            prop_assert_eq!(a, b, "operation {} ({:?}) differs", i, op);
        }
    }
}
