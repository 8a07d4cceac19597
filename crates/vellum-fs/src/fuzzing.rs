//! Fuzz target logic, public so `fuzz/` and the corpus-replay tests share it. Not part of
//! the stable API.

use std::path::{Path, PathBuf};

use crate::sim::{CrashModel, Fault, FaultRule, SimFs};
use crate::{Fs, OpKind};

const NAMES: [&str; 5] = ["/a", "/b", "/d/c", "/d/e", "/d"];

/// Interprets `data` as operations on a fresh [`SimFs`], cuts the power, and reads back every
/// file of a few crash images. Errors from operations are expected (missing files, injected
/// faults); panics are bugs.
pub fn fs_ops(data: &[u8]) {
    let fs = SimFs::new();
    let mut bytes = data.iter().copied();
    let mut next = move || bytes.next();
    let path = |b: u8| PathBuf::from(NAMES[b as usize % NAMES.len()]);
    while let Some(op) = next() {
        let a = next().unwrap_or(0);
        let b = next().unwrap_or(0);
        let n = u64::from(next().unwrap_or(0)) * 37;
        let _ = match op % 16 {
            0 => fs.create(&path(a)).map(drop),
            1 => fs.create_new(&path(a)).map(drop),
            2 => fs
                .open(&path(a))
                .and_then(|f| f.write_at(&vec![b; (n % 3000) as usize], n)),
            3 => fs
                .open(&path(a))
                .and_then(|f| f.append(&vec![b; n as usize % 2000]).map(drop)),
            4 => fs.open(&path(a)).and_then(|f| f.set_len(n)),
            5 => fs.open(&path(a)).and_then(|f| f.sync_data()),
            6 => fs.rename(&path(a), &path(b)),
            7 => fs.remove_file(&path(a)),
            8 => fs.create_dir_all(Path::new("/d")),
            9 => fs.sync_dir(Path::new("/")),
            10 => fs.sync_dir(Path::new("/d")),
            11 => fs.remove_dir(&path(a)),
            12 => {
                let mut buf = vec![0; (n % 512) as usize];
                fs.open(&path(a))
                    .and_then(|f| f.read_at(&mut buf, u64::from(b)))
            }
            13 => {
                fs.inject(FaultRule::nth_of(
                    OpKind::SyncData,
                    u64::from(b % 4) + 1,
                    Fault::Eio,
                ));
                Ok(())
            }
            14 => fs.open(&path(a)).and_then(|f| f.allocate(n)),
            _ => fs.open(&path(a)).and_then(|f| {
                let len = f.len()?;
                if len == 0 {
                    return Ok(());
                }
                let map = f.map_mut(len.min(8192) as usize)?;
                // SAFETY: no slice of the map exists; the offset is in bounds.
                unsafe { map.write(0, &[b]) };
                if a % 2 == 0 { map.flush() } else { Ok(()) }
            }),
        };
    }
    fs.cut_power();
    for image in fs.crash_images(&CrashModel::torn_512(), 8, u64::from(data.len() as u32)) {
        for p in image.all_paths() {
            if image.is_dir(&p).unwrap_or(true) {
                continue;
            }
            let file = image.open(&p).expect("a listed file opens");
            let len = file.len().expect("length of an image file");
            let mut buf = vec![0; len as usize];
            file.read_at(&mut buf, 0)
                .expect("an image file reads back whole");
        }
    }
}
